//! Keptn 1.x's data as it lies in its MongoDB and its Kubernetes secrets, turned into what Keelson's
//! API takes. Pure functions: the driver in [`super`] reads and sends.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use mongodb::bson::{Bson, Document};
use serde_json::{json, Map, Value};

/// The label Keptn's secret-service puts on the secrets it manages, and the one naming their scope.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
const SECRET_SERVICE: &str = "keptn-secret-service";
const SCOPE_LABEL: &str = "app.kubernetes.io/scope";
const DEFAULT_SCOPE: &str = "keptn-default";
/// Keptn keeps a project's upstream credentials in the secret `git-credentials-<project>`.
const GIT_CREDENTIALS_PREFIX: &str = "git-credentials-";
const GIT_CREDENTIALS_KEY: &str = "git-credentials";

/// A project as Keptn's `keptnProjectsMV` collection holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptnProject {
    pub name: String,
    pub creation_date: Option<String>,
    /// Every service of any stage (Keptn creates a service in all stages).
    pub services: Vec<String>,
    /// `gitCredentials` without secrets, as Keptn stored it (JSON).
    pub git_remote: Option<Value>,
}

/// Reads one `keptnProjectsMV` document.
pub fn project_from_document(document: &Document) -> Result<KeptnProject, String> {
    let name = document.get_str("projectName").map_err(|_| "a project document has no projectName".to_owned())?;
    let creation_date = document.get_str("creationDate").ok().map(str::to_owned);
    let mut services = BTreeSet::new();
    if let Ok(stages) = document.get_array("stages") {
        for stage in stages.iter().filter_map(Bson::as_document) {
            if let Ok(list) = stage.get_array("services") {
                for service in list.iter().filter_map(Bson::as_document) {
                    if let Ok(service_name) = service.get_str("serviceName") {
                        services.insert(service_name.to_owned());
                    }
                }
            }
        }
    }
    let git_remote = match document.get("gitCredentials") {
        Some(Bson::Document(credentials)) => Some(Bson::Document(credentials.clone()).into_relaxed_extjson()),
        _ => None,
    };
    Ok(KeptnProject { name: name.to_owned(), creation_date, services: services.into_iter().collect(), git_remote })
}

/// A Kubernetes secret from `kubectl get secrets -o json`.
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSecret {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub data: BTreeMap<String, Vec<u8>>,
}

/// Reads a `kubectl get secrets -o json` answer: a `List`/`SecretList` with `items`, or one `Secret`.
pub fn parse_secrets(text: &str) -> Result<Vec<KubernetesSecret>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let items: Vec<&Value> = match value.get("items") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(_) => return Err("`items` is not a list".into()),
        None if value.get("kind").and_then(Value::as_str) == Some("Secret") => vec![&value],
        None => return Err("expected the JSON of `kubectl get secrets -o json` (a list with items)".into()),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| secret_from_json(item).map_err(|e| format!("item {index}: {e}")))
        .collect()
}

fn secret_from_json(item: &Value) -> Result<KubernetesSecret, String> {
    let metadata = &item["metadata"];
    let name = metadata["name"].as_str().filter(|name| !name.is_empty()).ok_or("no metadata.name")?.to_owned();
    let strings = |value: &Value| -> BTreeMap<String, String> {
        value
            .as_object()
            .map(|map| map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
            .unwrap_or_default()
    };
    let labels = strings(&metadata["labels"]);
    let mut data = BTreeMap::new();
    for (key, encoded) in strings(&item["data"]) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| format!("secret {name}: data.{key} is not base64"))?;
        data.insert(key, bytes);
    }
    for (key, text) in strings(&item["stringData"]) {
        data.insert(key, text.into_bytes());
    }
    Ok(KubernetesSecret { name, labels, data })
}

/// A secret of Keptn's secret-service, for Keelson's secrets API.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptnSecret {
    pub name: String,
    pub scope: String,
    pub data: BTreeMap<String, String>,
}

/// The secrets Keptn's secret-service manages (by its label); other secrets are left out.
pub fn keptn_secrets(secrets: &[KubernetesSecret]) -> Vec<Result<KeptnSecret, String>> {
    secrets
        .iter()
        .filter(|secret| secret.labels.get(MANAGED_BY).map(String::as_str) == Some(SECRET_SERVICE))
        .map(|secret| {
            let scope = secret.labels.get(SCOPE_LABEL).cloned().unwrap_or_else(|| DEFAULT_SCOPE.to_owned());
            let mut data = BTreeMap::new();
            for (key, bytes) in &secret.data {
                let text = String::from_utf8(bytes.clone())
                    .map_err(|_| format!("secret {}: the value of {key} is not text", secret.name))?;
                data.insert(key.clone(), text);
            }
            Ok(KeptnSecret { name: secret.name.clone(), scope, data })
        })
        .collect()
}

/// The `gitCredentials` of `project` for Keelson's API, from the secret `git-credentials-<project>`
/// (Keptn 1.x's layout, or the older `remoteURI`/`token` one), else from the project document
/// (no token: a public upstream). Keptn stores the certificate and private key decoded; the API
/// takes them base64-encoded.
pub fn git_credentials(project: &KeptnProject, secrets: &[KubernetesSecret]) -> Result<Value, String> {
    let secret_name = format!("{GIT_CREDENTIALS_PREFIX}{}", project.name);
    let stored = match secrets.iter().find(|secret| secret.name == secret_name) {
        Some(secret) => {
            let bytes = secret
                .data
                .get(GIT_CREDENTIALS_KEY)
                .ok_or_else(|| format!("secret {secret_name} has no key {GIT_CREDENTIALS_KEY}"))?;
            serde_json::from_slice::<Value>(bytes).map_err(|e| format!("secret {secret_name}: not JSON: {e}"))?
        }
        None => project.git_remote.clone().ok_or_else(|| {
            format!("project {} has no git upstream in Keptn, and there is no secret {secret_name}", project.name)
        })?,
    };
    let text = |value: &Value| value.as_str().filter(|text| !text.is_empty()).map(str::to_owned);
    let remote_url = text(&stored["remoteURL"])
        .or_else(|| text(&stored["remoteURI"]))
        .ok_or_else(|| format!("project {}: the git credentials name no remoteURL", project.name))?;
    let encode = |value: &Value| text(value).map(|text| base64::engine::general_purpose::STANDARD.encode(text));
    let mut credentials = Map::new();
    credentials.insert("remoteURL".into(), json!(remote_url));
    if let Some(user) = text(&stored["user"]) {
        credentials.insert("user".into(), json!(user));
    }
    let https = &stored["https"];
    let token = text(&https["token"]).or_else(|| text(&stored["token"]));
    let proxy = https.get("proxy").filter(|proxy| text(&proxy["url"]).is_some());
    if token.is_some() || https.is_object() {
        let mut section = Map::new();
        section.insert("token".into(), json!(token.unwrap_or_default()));
        if let Some(certificate) = encode(&https["certificate"]) {
            section.insert("certificate".into(), json!(certificate));
        }
        section.insert("insecureSkipTLS".into(), json!(https["insecureSkipTLS"].as_bool().unwrap_or(false)));
        if let Some(proxy) = proxy {
            let mut proxy_section = Map::new();
            for key in ["url", "scheme", "user", "password"] {
                if let Some(value) = text(&proxy[key]) {
                    proxy_section.insert(key.into(), json!(value));
                }
            }
            section.insert("proxy".into(), Value::Object(proxy_section));
        }
        credentials.insert("https".into(), Value::Object(section));
    }
    if let Some(private_key) = encode(&stored["ssh"]["privateKey"]) {
        let mut section = Map::new();
        section.insert("privateKey".into(), json!(private_key));
        if let Some(pass) = text(&stored["ssh"]["privateKeyPass"]) {
            section.insert("privateKeyPass".into(), json!(pass));
        }
        credentials.insert("ssh".into(), Value::Object(section));
    }
    Ok(Value::Object(credentials))
}

/// One document of Keptn's event history (`<project>` collection) as a CloudEvent's JSON, or `None`
/// when it is not an event (no `id` or `type`).
pub fn event_from_document(mut document: Document) -> Option<Value> {
    document.remove("_id");
    // Written by some datastore versions as a BSON date rather than a string.
    if let Some(Bson::DateTime(time)) = document.get("time") {
        let text = time.try_to_rfc3339_string().ok()?;
        document.insert("time", text);
    }
    let value = Bson::Document(document).into_relaxed_extjson();
    let has = |key: &str| value.get(key).and_then(Value::as_str).is_some_and(|text| !text.is_empty());
    (has("id") && has("type")).then_some(value)
}

/// States of Keptn's sequence executions that are not over.
pub const OPEN_SEQUENCE_STATES: &[&str] = &["triggered", "started", "waiting", "paused", "waitingForApproval"];

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    fn secret(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> Value {
        let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        json!({
            "kind": "Secret",
            "metadata": { "name": name, "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>() },
            "data": data.iter().map(|(k, v)| (k.to_string(), json!(b64(v)))).collect::<Map<_, _>>(),
        })
    }

    #[test]
    fn projects_are_read_from_the_materialized_view() {
        let document = doc! {
            "projectName": "sockshop", "creationDate": "1690000000000000000", "shipyard": "…",
            "gitCredentials": { "remoteURL": "https://git.example/sockshop.git", "user": "keptn" },
            "stages": [
                { "stageName": "dev", "services": [{ "serviceName": "carts" }, { "serviceName": "orders" }] },
                { "stageName": "prod", "services": [{ "serviceName": "carts" }] },
            ],
        };
        let project = project_from_document(&document).unwrap();
        assert_eq!(project.name, "sockshop");
        assert_eq!(project.services, ["carts", "orders"]);
        assert_eq!(project.creation_date.as_deref(), Some("1690000000000000000"));
        assert_eq!(project.git_remote.unwrap()["user"], "keptn");
        assert!(project_from_document(&doc! { "stages": [] }).is_err());
    }

    #[test]
    fn secrets_of_the_secret_service_keep_their_scope_and_others_are_left_out() {
        let list = json!({ "kind": "List", "items": [
            secret("dynatrace", &[(MANAGED_BY, SECRET_SERVICE), (SCOPE_LABEL, "keptn-webhook-service")], &[("token", "dt0c01")]),
            secret("slack", &[(MANAGED_BY, SECRET_SERVICE)], &[("url", "https://hooks")]),
            secret("keptn-api-token", &[], &[("keptn-api-token", "t")]),
        ]});
        let secrets = parse_secrets(&list.to_string()).unwrap();
        let imported: Vec<_> = keptn_secrets(&secrets).into_iter().map(Result::unwrap).collect();
        assert_eq!(imported.len(), 2);
        assert_eq!(imported[0].name, "dynatrace");
        assert_eq!(imported[0].scope, "keptn-webhook-service");
        assert_eq!(imported[0].data["token"], "dt0c01");
        assert_eq!(imported[1].scope, DEFAULT_SCOPE);
        assert!(parse_secrets("[1]").is_err());
        assert!(parse_secrets(r#"{"items":[{"metadata":{"name":"x"},"data":{"k":"%%%"}}]}"#).is_err());
    }

    #[test]
    fn git_credentials_come_from_the_secret_in_either_layout() {
        let project = KeptnProject {
            name: "sockshop".into(),
            creation_date: None,
            services: vec![],
            git_remote: Some(json!({ "remoteURL": "https://git.example/public.git" })),
        };
        let current = json!({ "remoteURL": "https://git.example/s.git", "user": "keptn",
            "https": { "token": "ghp_1", "certificate": "-----BEGIN CERTIFICATE-----", "insecureSkipTLS": true } });
        let secrets =
            parse_secrets(&json!({ "items": [secret("git-credentials-sockshop", &[], &[("git-credentials", &current.to_string())])] }).to_string())
                .unwrap();
        let credentials = git_credentials(&project, &secrets).unwrap();
        assert_eq!(credentials["remoteURL"], "https://git.example/s.git");
        assert_eq!(credentials["https"]["token"], "ghp_1");
        assert_eq!(credentials["https"]["insecureSkipTLS"], true);
        let certificate = base64::engine::general_purpose::STANDARD
            .decode(credentials["https"]["certificate"].as_str().unwrap())
            .unwrap();
        assert_eq!(certificate, b"-----BEGIN CERTIFICATE-----");

        let legacy = json!({ "remoteURI": "https://git.example/old.git", "user": "u", "token": "t" });
        let secrets = parse_secrets(
            &json!({ "items": [secret("git-credentials-sockshop", &[], &[("git-credentials", &legacy.to_string())])] })
                .to_string(),
        )
        .unwrap();
        let credentials = git_credentials(&project, &secrets).unwrap();
        assert_eq!(credentials["remoteURL"], "https://git.example/old.git");
        assert_eq!(credentials["https"]["token"], "t");

        // No secret: the upstream Keptn shows, without a token.
        let credentials = git_credentials(&project, &[]).unwrap();
        assert_eq!(credentials, json!({ "remoteURL": "https://git.example/public.git" }));
        let without = KeptnProject { git_remote: None, ..project };
        assert!(git_credentials(&without, &[]).unwrap_err().contains("git-credentials-sockshop"));
    }

    #[test]
    fn history_documents_become_events() {
        let event = event_from_document(doc! {
            "_id": mongodb::bson::oid::ObjectId::new(), "id": "e1", "type": "sh.keptn.event.dev.delivery.triggered",
            "time": "2023-01-02T03:04:05.000Z", "shkeptncontext": "c1", "data": { "project": "sockshop", "n": 1_i64 },
        })
        .unwrap();
        assert!(event.get("_id").is_none());
        assert_eq!(event["data"]["n"], 1);
        assert_eq!(event["time"], "2023-01-02T03:04:05.000Z");
        let dated =
            event_from_document(doc! { "id": "e2", "type": "t", "time": mongodb::bson::DateTime::from_millis(0) })
                .unwrap();
        assert_eq!(dated["time"], "1970-01-01T00:00:00Z");
        assert!(event_from_document(doc! { "triggeredid": "x" }).is_none());
    }
}
