//! Which hosts Keelson may send requests to on a user's behalf: webhook destinations and the git
//! upstreams of projects.
//!
//! A URL's host is checked before it is resolved, and every address it resolves to afterwards, so that
//! neither a name nor an address spelling reaches loopback, link-local, cloud metadata or denied hosts
//! unless the configuration allows that host. Pure: callers resolve names themselves and pass the
//! addresses in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Host names denied by default, as in Keptn's `keptn-webhook-config` ConfigMap. Keptn's list also
/// names `127.0.0.1` and `::1`; here those are covered by the address checks, which also catch the
/// other spellings of loopback (`127.1`, `[0:0::1]`, `::ffff:127.0.0.1`, …).
pub const DEFAULT_DENIED_HOSTS: &[&str] = &[
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "svc.cluster.local",
    "cluster.local",
    "localhost",
];

/// Which hosts outgoing requests may reach: webhook destinations, and git upstreams of projects.
///
/// Entries are `host` or `host:port` (IPv6 addresses in brackets when a port is given), compared
/// case-insensitively; IP entries compare as addresses, so `::1` and `0:0::1` are the same entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// Host names (denying the name and every subdomain) and IP addresses that may not be called.
    pub denied: Vec<String>,
    /// Exact hosts (or host:port) that may be called even if a denial would apply.
    pub allowed: Vec<String>,
    /// The setting that lists `allowed`, named in denial messages as what to change.
    pub allow_setting: &'static str,
}

/// A parsed policy entry.
enum EntryHost {
    Name(String),
    Ip(IpAddr),
}

struct Entry {
    host: EntryHost,
    port: Option<u16>,
}

impl Entry {
    /// `None` for entries that cannot be read (such as a bad port); they never match.
    fn parse(entry: &str) -> Option<Entry> {
        let entry = entry.trim();
        let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
            let (host, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?.parse().ok()?),
            };
            (host, port)
        } else if entry.matches(':').count() == 1 {
            let (host, port) = entry.split_once(':')?;
            (host, Some(port.parse().ok()?))
        } else {
            // No colon, or a bare IPv6 address.
            (entry, None)
        };
        let host = match host.parse::<IpAddr>() {
            Ok(ip) => EntryHost::Ip(canonical(ip)),
            Err(_) => EntryHost::Name(normalise_name(host)),
        };
        match &host {
            EntryHost::Name(name) if name.is_empty() => None,
            _ => Some(Entry { host, port }),
        }
    }

    fn port_matches(&self, url: &Url) -> bool {
        self.port.is_none() || self.port == url.port_or_known_default()
    }
}

fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// IPv6 forms that embed an IPv4 address reach (or may be translated to) that IPv4 host, so they are
/// judged as that host: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`, deprecated but
/// still routed by some stacks), and NAT64 (`64:ff9b::/96` and the local-use `64:ff9b:1::/48`).
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let segments = v6.segments();
    let octets = v6.octets();
    let embedded = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    let compatible = segments[..6].iter().all(|&s| s == 0) && !v6.is_loopback() && !v6.is_unspecified();
    let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let nat64_local = segments[0] == 0x64 && segments[1] == 0xff9b && segments[2] == 1;
    if compatible || nat64 || nat64_local {
        return IpAddr::V4(embedded);
    }
    ip
}

/// The host of `url` as an address, if it is an IP literal.
fn url_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

/// Why an address may not be called, if it may not.
fn address_category(ip: IpAddr) -> Option<&'static str> {
    const METADATA_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
    // AWS's IPv6 instance metadata endpoint: a unique-local address, so not caught by the ranges below.
    const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);
    match canonical(ip) {
        IpAddr::V4(v4) if v4 == METADATA_V4 => Some("the cloud metadata address is"),
        IpAddr::V4(v4) if v4.is_loopback() => Some("loopback addresses are"),
        // All of 0.0.0.0/8 means "this host/network"; 0.0.0.0 reaches local services on Linux.
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("unspecified addresses are"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local addresses are"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("multicast addresses are"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast addresses are"),
        IpAddr::V6(v6) if v6 == METADATA_V6 => Some("the cloud metadata address is"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("loopback addresses are"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified addresses are"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("link-local addresses are"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("multicast addresses are"),
        _ => None,
    }
}

impl HostPolicy {
    /// Keptn's default deny list ([`DEFAULT_DENIED_HOSTS`]) plus `extra_denied`, with `allowed` as
    /// exceptions. The address checks of [`HostPolicy::check_address`] always apply in addition.
    pub fn with_defaults(extra_denied: Vec<String>, allowed: Vec<String>) -> Self {
        let mut denied: Vec<String> = DEFAULT_DENIED_HOSTS.iter().map(|h| h.to_string()).collect();
        denied.extend(extra_denied);
        HostPolicy { denied, allowed, allow_setting: "webhook_allowed_hosts" }
    }

    /// The same policy for destinations that `setting` allows (denials name it).
    pub fn allowed_by(self, setting: &'static str) -> Self {
        HostPolicy { allow_setting: setting, ..self }
    }

    /// What a denial message tells the user to do about it.
    fn allow_hint(&self) -> String {
        format!("(allow the host in {})", self.allow_setting)
    }

    fn is_allowed(&self, url: &Url) -> bool {
        let ip = url_ip(url).map(canonical);
        let name = match url.host() {
            Some(Host::Domain(d)) => Some(normalise_name(d)),
            _ => None,
        };
        self.allowed.iter().filter_map(|a| Entry::parse(a)).any(|entry| {
            let host_matches = match (&entry.host, ip, &name) {
                (EntryHost::Ip(allowed), Some(ip), _) => *allowed == ip,
                (EntryHost::Name(allowed), _, Some(name)) => allowed == name,
                _ => false,
            };
            host_matches && entry.port_matches(url)
        })
    }

    /// Checks the URL's host before it is resolved.
    ///
    /// A host is denied when it equals a denied entry or is a subdomain of one (`a.svc.cluster.local`
    /// under `svc.cluster.local`). Keptn instead refuses any URL whose text *contains* an entry, which
    /// also refuses harmless hosts such as `mylocalhost.example.com` or a path mentioning `localhost`,
    /// while the real protection comes from the address checks. IP literals get the address checks
    /// here. Allowed entries win over every denial.
    pub fn check_url(&self, url: &Url) -> Result<(), String> {
        let Some(host) = url.host() else {
            return Err("request refused: the URL has no host".to_string());
        };
        if self.is_allowed(url) {
            return Ok(());
        }
        match host {
            Host::Domain(domain) => {
                let name = normalise_name(domain);
                for text in &self.denied {
                    let Some(entry) = Entry::parse(text) else { continue };
                    let EntryHost::Name(denied) = &entry.host else { continue };
                    let matches = name == *denied || name.ends_with(&format!(".{denied}"));
                    if matches && entry.port_matches(url) {
                        return Err(format!(
                            "request to {name} refused: the host matches the denied entry {:?} {}",
                            text.trim(),
                            self.allow_hint()
                        ));
                    }
                }
                Ok(())
            }
            Host::Ipv4(_) | Host::Ipv6(_) => {
                let ip = url_ip(url).expect("an IP host");
                self.check_address(url, ip)
            }
        }
    }

    /// Checks one resolved address of `url`'s host: loopback, unspecified, link-local, multicast and
    /// broadcast addresses (also in IPv4-mapped IPv6 form), the cloud metadata addresses and denied IP
    /// entries are refused unless the URL's host (or host:port) is allowed.
    pub fn check_address(&self, url: &Url, address: IpAddr) -> Result<(), String> {
        if self.is_allowed(url) {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default();
        let literal = url_ip(url).is_some_and(|ip| ip == address);
        let subject = if literal {
            format!("request to {host} refused:")
        } else {
            format!("request to {host} refused: it resolves to {address};")
        };
        if let Some(category) = address_category(address) {
            return Err(format!("{subject} {category} denied {}", self.allow_hint()));
        }
        let address = canonical(address);
        for text in &self.denied {
            if let Some(entry @ Entry { host: EntryHost::Ip(denied), .. }) = Entry::parse(text) {
                if denied == address && entry.port_matches(url) {
                    return Err(format!(
                        "{subject} the address matches the denied entry {:?} {}",
                        text.trim(),
                        self.allow_hint()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "host_policy_tests.rs"]
mod tests;
