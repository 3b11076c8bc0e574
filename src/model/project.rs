//! Projects, stages and services: the stored record and Keptn's "expanded" wire views.

use super::verdict::TaskResult;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::clock::unix_nanos_string;
use super::event::CloudEvent;
use super::event_type::{self, EventType};
use super::shipyard::Shipyard;

/// Git upstream credentials as a client sends them (`GitAuthCredentials`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GitCredentials {
    #[serde(rename = "remoteURL", default)]
    pub remote_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpsCredentials>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<SshCredentials>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpsCredentials {
    #[serde(default)]
    pub token: String,
    /// Base64 PEM of a CA certificate to trust for this remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, rename = "insecureSkipTLS")]
    pub insecure_skip_tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyCredentials>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProxyCredentials {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SshCredentials {
    /// Base64 of the private key.
    #[serde(default)]
    pub private_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pass: Option<String>,
}

/// The part of [`GitCredentials`] that may be shown (`GitAuthCredentialsSecure`): no token, key or password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitCredentialsSecure {
    #[serde(rename = "remoteURL")]
    pub remote_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<HttpsSecure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpsSecure {
    #[serde(rename = "insecureSkipTLS")]
    pub insecure_skip_tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySecure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProxySecure {
    pub url: String,
    pub scheme: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl GitCredentials {
    /// The view of these credentials that is safe to return from the API.
    pub fn secure(&self) -> GitCredentialsSecure {
        GitCredentialsSecure {
            remote_url: without_password(&self.remote_url),
            user: self.user.clone(),
            https: self.https.as_ref().map(|https| HttpsSecure {
                insecure_skip_tls: https.insecure_skip_tls,
                proxy: https.proxy.as_ref().map(|proxy| ProxySecure {
                    url: proxy.url.clone(),
                    scheme: proxy.scheme.clone(),
                    user: proxy.user.clone(),
                }),
            }),
        }
    }

    /// The checks Keptn runs on credentials before it touches a remote.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.remote_url.as_str();
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://") || url.starts_with("ssh://")) {
            return Err(format!("Invalid RemoteURL: {url}: it must start with http://, https:// or ssh://"));
        }
        if self.https.is_some() && self.ssh.is_some() {
            return Err("https and ssh credentials cannot be used together".to_owned());
        }
        if let Some(certificate) = self.https.as_ref().and_then(|https| https.certificate.as_deref()) {
            decode_base64(certificate).map_err(|_| "certificate is not base64 encoded".to_owned())?;
        }
        if let Some(ssh) = &self.ssh {
            decode_base64(&ssh.private_key).map_err(|_| "ssh private key is not base64 encoded".to_owned())?;
        }
        Ok(())
    }
}

/// `url` without user-info, so that it can be shown: tokens are often given as the user name.
pub fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() || !parsed.username().is_empty() => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim())
}

/// What Keelson stores about a project. Credentials are kept apart (see `projects::credentials`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRecord {
    pub name: String,
    /// Unix nanoseconds, as Keptn writes `creationDate`.
    pub creation_date: String,
    /// The shipyard as YAML text, exactly as uploaded.
    pub shipyard: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_remote: Option<GitCredentialsSecure>,
    /// Stages in shipyard order.
    pub stages: Vec<StageRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRecord {
    pub name: String,
    pub parent_stages: Vec<String>,
    pub services: Vec<ServiceRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
/// A service in a stage as the project record keeps it; what its task events told is its
/// [`ServiceActivity`], kept apart.
pub struct ServiceRecord {
    pub name: String,
    pub creation_date: String,
}

/// What the task events of a service in a stage tell (Keptn's `lastEventTypes` and `deployedImage`),
/// kept apart from the project record because it changes with every task event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceActivity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_image: Option<String>,
    #[serde(default)]
    pub last_event_types: BTreeMap<String, EventContextInfo>,
}

impl ServiceActivity {
    /// Takes in a task event (`.triggered`, `.started` or `.finished`) of this service in this stage;
    /// `input` is the data of the trigger of the sequence it belongs to. Returns whether anything
    /// changed. A successful (`pass` or `warning`) `deployment.finished` makes the sequence's image the
    /// deployed one.
    pub fn observe(&mut self, event: &CloudEvent, input: &serde_json::Value) -> bool {
        let EventType::Task { task, kind } = event_type::parse(&event.event_type) else { return false };
        if !matches!(kind, event_type::TRIGGERED | event_type::STARTED | event_type::FINISHED) {
            return false;
        }
        let info = EventContextInfo {
            event_id: event.id.clone(),
            keptn_context: event.shkeptncontext.clone(),
            time: event.time.map(unix_nanos_string).unwrap_or_default(),
        };
        let mut changed = self.last_event_types.get(&event.event_type) != Some(&info);
        if changed {
            self.last_event_types.insert(event.event_type.clone(), info);
        }
        let result = event.data.get("result").and_then(|r| r.as_str()).unwrap_or_default();
        let succeeded = TaskResult::from_reported(result) != TaskResult::Fail;
        if task == "deployment" && kind == event_type::FINISHED && succeeded {
            let image = input.pointer("/configurationChange/values/image").and_then(|image| image.as_str());
            if let Some(image) = image.filter(|image| !image.is_empty()) {
                changed |= self.deployed_image.as_deref() != Some(image);
                self.deployed_image = Some(image.to_owned());
            }
        }
        changed
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventContextInfo {
    pub event_id: String,
    pub keptn_context: String,
    pub time: String,
}

impl ProjectRecord {
    /// A new project with the stages of `shipyard` and no services.
    pub fn new(name: &str, creation_date: String, shipyard_text: String, shipyard: &Shipyard) -> Self {
        let stages = shipyard
            .spec
            .stages
            .iter()
            .map(|stage| StageRecord {
                name: stage.name.clone(),
                parent_stages: shipyard.parent_stages(&stage.name),
                services: Vec::new(),
            })
            .collect();
        Self { name: name.to_owned(), creation_date, shipyard: shipyard_text, git_remote: None, stages }
    }

    pub fn stage(&self, name: &str) -> Option<&StageRecord> {
        self.stages.iter().find(|stage| stage.name == name)
    }

    pub fn has_service(&self, service: &str) -> bool {
        self.stages.iter().any(|stage| stage.service(service).is_some())
    }

    /// Replaces the shipyard, keeping services; stage order follows the new file.
    pub fn replace_shipyard(&mut self, shipyard_text: String, shipyard: &Shipyard) {
        let mut old_stages = std::mem::take(&mut self.stages);
        self.stages = shipyard
            .spec
            .stages
            .iter()
            .map(|stage| {
                let services = old_stages
                    .iter_mut()
                    .find(|old| old.name == stage.name)
                    .map(|old| std::mem::take(&mut old.services))
                    .unwrap_or_default();
                StageRecord { name: stage.name.clone(), parent_stages: shipyard.parent_stages(&stage.name), services }
            })
            .collect();
        self.shipyard = shipyard_text;
    }

    /// Adds a service to every stage.
    pub fn add_service(&mut self, service: &str, creation_date: &str) {
        for stage in &mut self.stages {
            stage.services.push(ServiceRecord { name: service.to_owned(), creation_date: creation_date.to_owned() });
            stage.services.sort_by(|a, b| a.name.cmp(&b.name));
        }
    }

    /// Removes a service from every stage; returns whether it existed.
    pub fn remove_service(&mut self, service: &str) -> bool {
        let mut removed = false;
        for stage in &mut self.stages {
            let before = stage.services.len();
            stage.services.retain(|existing| existing.name != service);
            removed |= stage.services.len() != before;
        }
        removed
    }

    /// The project as the API shows it, with each service's activity from `activity(stage, service)`.
    pub fn expand(&self, activity: &dyn Fn(&str, &str) -> Option<Arc<ServiceActivity>>) -> ExpandedProject {
        let shipyard_version = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&self.shipyard)
            .ok()
            .and_then(|value| value.get("apiVersion").and_then(|v| v.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "spec.keptn.sh/0.1.7".to_owned());
        ExpandedProject {
            creation_date: self.creation_date.clone(),
            project_name: self.name.clone(),
            shipyard: self.shipyard.clone(),
            shipyard_version,
            stages: self.stages.iter().map(|stage| stage.expand(activity)).collect(),
            git_credentials: self.git_remote.clone(),
            is_upstream_auto_provisioned: false,
        }
    }
}

impl StageRecord {
    pub fn service(&self, name: &str) -> Option<&ServiceRecord> {
        // Kept sorted by name (a stage may hold thousands of services and this runs per task event);
        // the scan covers a record stored unsorted.
        match self.services.binary_search_by(|service| service.name.as_str().cmp(name)) {
            Ok(index) => Some(&self.services[index]),
            Err(_) => self.services.iter().find(|service| service.name == name),
        }
    }

    pub fn expand(&self, activity: &dyn Fn(&str, &str) -> Option<Arc<ServiceActivity>>) -> ExpandedStage {
        ExpandedStage {
            stage_name: self.name.clone(),
            parent_stages: self.parent_stages.clone(),
            services: self
                .services
                .iter()
                .map(|service| service.expand(activity(&self.name, &service.name).as_deref()))
                .collect(),
        }
    }
}

impl ServiceRecord {
    pub fn expand(&self, activity: Option<&ServiceActivity>) -> ExpandedService {
        ExpandedService {
            service_name: self.name.clone(),
            creation_date: self.creation_date.clone(),
            deployed_image: activity.and_then(|a| a.deployed_image.clone()),
            last_event_types: activity.map(|a| a.last_event_types.clone()).unwrap_or_default(),
            open_remediations: Vec::new(),
        }
    }
}

/// `ExpandedProject` as Keptn's API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpandedProject {
    pub creation_date: String,
    pub project_name: String,
    pub shipyard: String,
    pub shipyard_version: String,
    pub stages: Vec<ExpandedStage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_credentials: Option<GitCredentialsSecure>,
    pub is_upstream_auto_provisioned: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpandedStage {
    pub stage_name: String,
    pub parent_stages: Vec<String>,
    pub services: Vec<ExpandedService>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExpandedService {
    pub service_name: String,
    pub creation_date: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_image: Option<String>,
    pub last_event_types: BTreeMap<String, EventContextInfo>,
    pub open_remediations: Vec<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::shipyard;

    fn two_stage() -> (String, Shipyard) {
        let text = "apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n  - name: prod\n    sequences:\n    - name: delivery\n      triggeredOn:\n      - event: dev.delivery.finished\n      tasks:\n      - name: deployment\n".to_owned();
        let parsed = shipyard::parse(&text).unwrap();
        (text, parsed)
    }

    #[test]
    fn services_are_found_in_sorted_and_unsorted_stages() {
        let (text, parsed) = two_stage();
        let mut record = ProjectRecord::new("p", "1".into(), text, &parsed);
        for index in (0..50).rev() {
            record.add_service(&format!("svc-{index:02}"), "2");
        }
        let stage = &record.stages[0];
        assert!((0..50).all(|index| stage.service(&format!("svc-{index:02}")).is_some()));
        assert!(stage.service("svc-50").is_none());
        // A record stored unsorted is still searched correctly.
        let mut unsorted = stage.clone();
        unsorted.services.reverse();
        assert_eq!(unsorted.service("svc-07").map(|s| s.name.as_str()), Some("svc-07"));
        assert!(unsorted.service("nope").is_none());
    }

    #[test]
    fn services_are_added_and_removed_in_every_stage() {
        let (text, parsed) = two_stage();
        let mut record = ProjectRecord::new("p", "1".into(), text, &parsed);
        record.add_service("carts", "2");
        record.add_service("api", "3");
        assert!(record.has_service("carts"));
        let expanded = record.expand(&|_, _| None);
        assert_eq!(expanded.shipyard_version, "spec.keptn.sh/0.2.0");
        assert_eq!(expanded.stages[1].parent_stages, vec!["dev"]);
        let names: Vec<_> = expanded.stages[1].services.iter().map(|s| s.service_name.as_str()).collect();
        assert_eq!(names, ["api", "carts"]);
        assert!(record.remove_service("carts"));
        assert!(!record.remove_service("carts"));
        assert!(!record.has_service("carts"));
    }

    #[test]
    fn secure_view_hides_secrets() {
        let credentials = GitCredentials {
            remote_url: "https://example.invalid/repo.git".into(),
            user: Some("me".into()),
            https: Some(HttpsCredentials { token: "s3cret".into(), ..Default::default() }),
            ssh: None,
        };
        let json = serde_json::to_string(&credentials.secure()).unwrap();
        assert!(!json.contains("s3cret"));
        assert!(json.contains("remoteURL"));
        let in_url = GitCredentials { remote_url: "https://me:pa55@host.invalid/r.git".into(), ..Default::default() };
        assert_eq!(in_url.secure().remote_url, "https://host.invalid/r.git");
        let token_as_user =
            GitCredentials { remote_url: "https://ghp_x@host.invalid/r.git".into(), ..Default::default() };
        assert_eq!(token_as_user.secure().remote_url, "https://host.invalid/r.git");
    }

    #[test]
    fn credential_validation() {
        let mut credentials = GitCredentials { remote_url: "git://host/repo".into(), ..Default::default() };
        assert!(credentials.validate().is_err());
        credentials.remote_url = "https://host/repo".into();
        assert!(credentials.validate().is_ok());
        credentials.https = Some(HttpsCredentials::default());
        credentials.ssh = Some(SshCredentials::default());
        assert!(credentials.validate().is_err());
    }

    fn event(event_type: &str, id: &str, data: serde_json::Value) -> CloudEvent {
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&chrono::Utc);
        CloudEvent::emitted(event_type, id.into(), "ctx".into(), at, data)
    }

    #[test]
    fn activity_records_task_events_and_the_image_of_a_successful_deployment() {
        let input = serde_json::json!({ "configurationChange": { "values": { "image": "carts:0.2" } } });
        let mut activity = ServiceActivity::default();
        assert!(activity.observe(&event("sh.keptn.event.deployment.triggered", "t1", serde_json::json!({})), &input));
        assert!(!activity.observe(&event("sh.keptn.event.dev.delivery.triggered", "s1", serde_json::json!({})), &input));
        assert_eq!(activity.deployed_image, None, "not deployed before it finished");
        let failed = event("sh.keptn.event.deployment.finished", "f1", serde_json::json!({ "result": "fail" }));
        assert!(activity.observe(&failed, &input));
        assert_eq!(activity.deployed_image, None, "a failed deployment deploys nothing");
        let passed = event("sh.keptn.event.deployment.finished", "f2", serde_json::json!({ "result": "pass" }));
        assert!(activity.observe(&passed, &input));
        assert_eq!(activity.deployed_image.as_deref(), Some("carts:0.2"));
        let info = &activity.last_event_types["sh.keptn.event.deployment.finished"];
        assert_eq!((info.event_id.as_str(), info.keptn_context.as_str()), ("f2", "ctx"));
        assert_eq!(info.time, "1767225600000000000");
        assert_eq!(activity.last_event_types.len(), 2, "sequence events are not recorded");
        let tested = event("sh.keptn.event.test.finished", "x", serde_json::json!({ "result": "pass" }));
        activity.observe(&tested, &serde_json::json!({ "configurationChange": { "values": { "image": "other" } } }));
        assert_eq!(activity.deployed_image.as_deref(), Some("carts:0.2"), "only deployments change the image");
    }

    #[test]
    fn service_records_of_earlier_releases_still_read() {
        // They carried (always empty) activity fields, now kept apart.
        let stored = serde_json::json!({
            "name": "carts", "creationDate": "1", "lastEventTypes": {}, "deployedImage": "old:1"
        });
        let record: ServiceRecord = serde_json::from_value(stored).unwrap();
        assert_eq!(record, ServiceRecord { name: "carts".into(), creation_date: "1".into() });
        assert_eq!(record.expand(None).deployed_image, None, "only activity says what is deployed");
    }
}
