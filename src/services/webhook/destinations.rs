//! Where a webhook request may go and which name the service resolves for it.
//!
//! The rules themselves are [`HostPolicy`]'s, shared with the git upstreams of projects; what is the
//! webhook's own is its policy (Keptn's default deny list plus the configured entries) and how a
//! destination's name is looked up. The service checks the URL, resolves [`Destination::lookup`], checks
//! every address it gets, and pins the request to those addresses.

use url::Url;

use crate::config::WebhookSettings;
use crate::model::host_policy::HostPolicy;

/// The destinations webhooks may reach: Keptn's default deny list and `webhook_denied_hosts`, with
/// `webhook_allowed_hosts` as exceptions; denials name `webhook_allowed_hosts`.
pub fn policy(settings: &WebhookSettings) -> HostPolicy {
    HostPolicy::with_defaults(settings.denied_hosts.clone(), settings.allowed_hosts.clone())
}

/// The host and port a request goes to, and the name to resolve for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The URL's host, an IPv6 address without its brackets.
    pub host: String,
    /// The URL's port, or its scheme's.
    pub port: u16,
    /// What to resolve: a name as an absolute name (with a final dot), so the resolver's search
    /// domains (which turn `redis.ns` into `redis.ns.svc.cluster.local`) never apply; hosts allowed by
    /// the configuration, names already ending in a dot, and addresses as written.
    pub lookup: String,
}

impl Destination {
    /// The destination of `url` under `policy`.
    pub fn of(url: &Url, policy: &HostPolicy) -> Self {
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let is_name = url.domain().is_some();
        let allowed = policy
            .allowed
            .iter()
            .any(|entry| entry.eq_ignore_ascii_case(&host) || entry.eq_ignore_ascii_case(&format!("{host}:{port}")));
        let lookup = if is_name && !allowed && !host.ends_with('.') { format!("{host}.") } else { host.clone() };
        Destination { host, port, lookup }
    }
}

#[cfg(test)]
#[path = "destinations_tests.rs"]
mod tests;
