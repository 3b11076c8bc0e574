//! Integrations (Keptn's "uniform"): execution-plane services that register with the control plane,
//! ping to stay registered, and subscribe to event types with project/stage/service filters.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

/// The webhook service's subscriptions must each name exactly one project (Keptn's rule).
pub const WEBHOOK_SERVICE: &str = "webhook-service";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Integration {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub subscriptions: Vec<EventSubscription>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = IntegrationMetadata)]
pub struct Metadata {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub integrationversion: String,
    #[serde(default)]
    pub distributorversion: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub kubernetesmetadata: KubernetesMetadata,
    #[serde(default = "epoch", with = "crate::model::event::keptn_time_serde")]
    #[schema(value_type = String, format = DateTime)]
    pub lastseen: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KubernetesMetadata {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub podname: String,
    #[serde(default)]
    pub deploymentname: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventSubscription {
    #[serde(default)]
    pub id: String,
    /// An event type, or a NATS subject with `*`/`>` wildcards.
    #[serde(default)]
    pub event: String,
    #[serde(default)]
    pub filter: SubscriptionFilter,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionFilter {
    #[serde(default)]
    pub projects: Vec<String>,
    #[serde(default)]
    pub stages: Vec<String>,
    #[serde(default)]
    pub services: Vec<String>,
}

fn epoch() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// Keptn's integration id: `sha1_hex("<name>-<namespace>-<hostname>")`, stable across re-registrations.
pub fn integration_id(name: &str, namespace: &str, hostname: &str) -> String {
    let digest = Sha1::digest(format!("{name}-{namespace}-{hostname}").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Integration {
    /// Checks a registration; on success its id is set from its name, namespace and host.
    pub fn validate_registration(&mut self) -> Result<(), String> {
        let namespace = &self.metadata.kubernetesmetadata.namespace;
        if self.name.is_empty() || namespace.is_empty() || self.metadata.hostname.is_empty() {
            return Err("incomplete integration ID: name, metadata.kubernetesmetadata.namespace and metadata.hostname must be set".into());
        }
        for subscription in &self.subscriptions {
            subscription.validate(&self.name)?;
        }
        self.id = integration_id(&self.name, namespace, &self.metadata.hostname);
        Ok(())
    }

    /// Whether the integration has a subscription whose filter lists `value` in the field `pick` selects.
    fn any_filter_lists(&self, value: &str, pick: fn(&SubscriptionFilter) -> &Vec<String>) -> bool {
        self.subscriptions.iter().any(|subscription| pick(&subscription.filter).iter().any(|item| item == value))
    }

    /// Keptn's list query: each given value must appear in some subscription's filter.
    pub fn matches(&self, query: &IntegrationQuery) -> bool {
        query.id.as_deref().is_none_or(|id| self.id == id)
            && query.name.as_deref().is_none_or(|name| self.name == name)
            && query.project.as_deref().is_none_or(|project| self.any_filter_lists(project, |f| &f.projects))
            && query.stage.as_deref().is_none_or(|stage| self.any_filter_lists(stage, |f| &f.stages))
            && query.service.as_deref().is_none_or(|service| self.any_filter_lists(service, |f| &f.services))
    }

    /// Adds the subscriptions of a repeated registration that are not there yet (same event and filter).
    pub fn merge_subscriptions(&mut self, incoming: Vec<EventSubscription>, new_id: &mut impl FnMut() -> String) {
        for mut subscription in incoming {
            let known = self
                .subscriptions
                .iter()
                .any(|existing| existing.event == subscription.event && existing.filter == subscription.filter);
            if !known {
                subscription.id = new_id();
                self.subscriptions.push(subscription);
            }
        }
    }
}

impl EventSubscription {
    pub fn validate(&self, integration_name: &str) -> Result<(), String> {
        if self.event.trim().is_empty() {
            return Err("subscription has no event".into());
        }
        if !self.filter.services.is_empty() && self.filter.stages.is_empty() {
            return Err("a subscription filter with services must name stages too".into());
        }
        if integration_name == WEBHOOK_SERVICE && self.filter.projects.len() != 1 {
            return Err("webhook-service subscriptions must name exactly one project".into());
        }
        Ok(())
    }

    /// Whether an event of `event_type` for `project`/`stage`/`service` is what this subscription wants.
    pub fn accepts(&self, event_type: &str, project: &str, stage: &str, service: &str) -> bool {
        let listed = |values: &Vec<String>, value: &str| values.is_empty() || values.iter().any(|item| item == value);
        subject_matches(&self.event, event_type)
            && listed(&self.filter.projects, project)
            && listed(&self.filter.stages, stage)
            && listed(&self.filter.services, service)
    }
}

/// NATS subject matching: `*` matches one token, a final `>` one or more.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    let mut pattern_tokens = pattern.split('.').peekable();
    while let Some(token) = pattern_tokens.next() {
        if token == ">" && pattern_tokens.peek().is_none() {
            return subject_tokens.next().is_some();
        }
        match subject_tokens.next() {
            Some(part) if token == "*" || token == part => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

/// The filters of `GET /uniform/registration`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IntegrationQuery {
    pub id: Option<String>,
    pub name: Option<String>,
    pub project: Option<String>,
    pub stage: Option<String>,
    pub service: Option<String>,
}

/// One log line an integration reported (`POST /log`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    #[serde(default)]
    pub integrationid: String,
    #[serde(default)]
    pub message: String,
    #[serde(default = "epoch", with = "crate::model::event::keptn_time_serde")]
    #[schema(value_type = String, format = DateTime)]
    pub time: DateTime<Utc>,
    #[serde(default)]
    pub shkeptncontext: String,
    #[serde(default)]
    pub task: String,
    #[serde(default)]
    pub triggeredid: String,
    #[serde(default)]
    pub gitcommitid: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_keptn() {
        // sha1("helm-service-keptn-host") computed independently.
        assert_eq!(integration_id("helm-service", "keptn", "host"), {
            let digest = Sha1::digest(b"helm-service-keptn-host");
            digest.iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        assert_eq!(integration_id("a", "b", "c").len(), 40);
        assert_ne!(integration_id("a", "b", "c"), integration_id("a", "b", "d"));
    }

    #[test]
    fn registrations_are_validated() {
        let mut integration = Integration { name: "svc".into(), ..Default::default() };
        assert!(integration.validate_registration().unwrap_err().starts_with("incomplete integration ID"));
        integration.metadata.hostname = "host".into();
        integration.metadata.kubernetesmetadata.namespace = "keptn".into();
        integration.subscriptions =
            vec![EventSubscription { event: "sh.keptn.event.deployment.triggered".into(), ..Default::default() }];
        integration.validate_registration().unwrap();
        assert_eq!(integration.id, integration_id("svc", "keptn", "host"));
        integration.subscriptions[0].filter.services = vec!["carts".into()];
        assert!(integration.validate_registration().unwrap_err().contains("stages"));
        integration.subscriptions[0].event = " ".into();
        assert!(integration.validate_registration().unwrap_err().contains("no event"));
        let webhook = EventSubscription { event: "sh.keptn.event.webhook.triggered".into(), ..Default::default() };
        assert!(webhook.validate(WEBHOOK_SERVICE).unwrap_err().contains("exactly one project"));
    }

    #[test]
    fn subjects_and_filters_match() {
        assert!(subject_matches("sh.keptn.event.deployment.triggered", "sh.keptn.event.deployment.triggered"));
        assert!(subject_matches("sh.keptn.event.*.triggered", "sh.keptn.event.test.triggered"));
        assert!(!subject_matches("sh.keptn.event.*.triggered", "sh.keptn.event.dev.delivery.triggered"));
        assert!(subject_matches("sh.keptn.>", "sh.keptn.event.dev.delivery.triggered"));
        assert!(!subject_matches("sh.keptn.>", "sh.keptn"));
        assert!(!subject_matches("sh.keptn.event.test", "sh.keptn.event.test.triggered"));
        let subscription = EventSubscription {
            id: "s".into(),
            event: "sh.keptn.event.deployment.triggered".into(),
            filter: SubscriptionFilter { projects: vec!["shop".into()], stages: vec![], services: vec![] },
        };
        assert!(subscription.accepts("sh.keptn.event.deployment.triggered", "shop", "dev", "carts"));
        assert!(!subscription.accepts("sh.keptn.event.deployment.triggered", "other", "dev", "carts"));
        assert!(!subscription.accepts("sh.keptn.event.test.triggered", "shop", "dev", "carts"));
    }

    #[test]
    fn repeated_registrations_merge_subscriptions() {
        let subscription = |event: &str| EventSubscription { event: event.into(), ..Default::default() };
        let mut integration = Integration {
            subscriptions: vec![EventSubscription { id: "1".into(), ..subscription("a") }],
            ..Default::default()
        };
        let mut counter = 1;
        let mut next = || {
            counter += 1;
            counter.to_string()
        };
        integration.merge_subscriptions(vec![subscription("a"), subscription("b")], &mut next);
        let ids: Vec<(&str, &str)> =
            integration.subscriptions.iter().map(|s| (s.id.as_str(), s.event.as_str())).collect();
        assert_eq!(ids, [("1", "a"), ("2", "b")]);
    }
}
