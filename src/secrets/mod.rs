//! Secrets (Keptn's secret-service): named sets of key/value pairs in a scope, used by webhooks
//! (`{{.env.<name>}}`). Values are encrypted at rest with AES-256-GCM under a key from the configuration
//! and are never returned by the API: listing shows names, scopes and keys only.
//!
//! Stored as `secret/<name>` in the snapshot store. A secret's name is unique across scopes, as a
//! Kubernetes secret's name is unique in its namespace.

mod cipher;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use cipher::{Sealed, SecretKey, SecretKeyError};

use crate::store::{versioned, SnapshotStore};

const PREFIX: &str = "secret/";
/// Keptn's default scope.
pub const DEFAULT_SCOPE: &str = "keptn-default";
/// The scopes of Keptn's `scopes.yaml`.
pub const DEFAULT_SCOPES: &[&str] =
    &[DEFAULT_SCOPE, "keptn-webhook-service", "dynatrace-service", "keptn-prometheus-service"];
/// Kubernetes' limit on secret names and keys.
const MAX_NAME_LENGTH: usize = 253;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("{0}")]
    BadRequest(String),
    #[error("secret already exists")]
    Exists,
    #[error("secret not found")]
    NotFound,
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::store::Error> for SecretError {
    fn from(error: crate::store::Error) -> Self {
        SecretError::Unavailable(error.to_string())
    }
}

type Result<T> = std::result::Result<T, SecretError>;

/// A secret as a client sends it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
pub struct NewSecret {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub data: BTreeMap<String, String>,
}

/// What may be shown of a secret: never its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SecretSummary {
    pub name: String,
    pub scope: String,
    pub keys: Vec<String>,
}

/// The stored form: keys in clear (they are listed), values sealed together.
#[derive(Serialize, Deserialize)]
struct StoredSecret {
    name: String,
    scope: String,
    keys: Vec<String>,
    sealed: cipher::Sealed,
}

pub struct Secrets {
    store: Arc<dyn SnapshotStore>,
    key: SecretKey,
    scopes: Vec<String>,
}

impl Secrets {
    pub fn new(store: Arc<dyn SnapshotStore>, key: SecretKey, scopes: Vec<String>) -> Self {
        Self { store, key, scopes }
    }

    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    fn validate(&self, secret: &mut NewSecret) -> Result<()> {
        if secret.name.is_empty() {
            return Err(SecretError::BadRequest("name of the secret must not be empty".into()));
        }
        if !is_dns_subdomain(&secret.name) {
            return Err(SecretError::BadRequest(format!(
                "invalid secret name '{}': use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, at most {MAX_NAME_LENGTH} characters",
                secret.name
            )));
        }
        if secret.scope.is_empty() {
            secret.scope = DEFAULT_SCOPE.to_owned();
        }
        if !self.scopes.contains(&secret.scope) {
            return Err(SecretError::BadRequest(format!(
                "unknown scope '{}' (known scopes: {})",
                secret.scope,
                self.scopes.join(", ")
            )));
        }
        for key in secret.data.keys() {
            if key.is_empty() || key.len() > MAX_NAME_LENGTH {
                return Err(SecretError::BadRequest(format!(
                    "secret keys must have 1 to {MAX_NAME_LENGTH} characters"
                )));
            }
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                return Err(SecretError::BadRequest(format!(
                    "invalid secret key '{key}': use letters, digits, '-', '_' and '.'"
                )));
            }
        }
        Ok(())
    }

    async fn load(&self, name: &str) -> Result<Option<StoredSecret>> {
        let Some(bytes) = self.store.get(&format!("{PREFIX}{name}")).await? else { return Ok(None) };
        versioned::decode(&bytes)
            .map(Some)
            .map_err(|error| SecretError::Unavailable(format!("stored secret '{name}' is unreadable: {error}")))
    }

    /// Seals and stores a secret: created only if its name is free, or replacing one that exists
    /// (checked by the store itself, so instances sharing it cannot both create one name).
    async fn save(&self, mut secret: NewSecret, create: bool) -> Result<SecretSummary> {
        let keys: Vec<String> = secret.data.keys().cloned().collect();
        let plain = serde_json::to_vec(&secret.data).expect("a string map always serialises");
        // The data map leaves memory as soon as it is sealed.
        secret.data.clear();
        let sealed = self.key.seal(&plain, secret.name.as_bytes());
        let stored =
            StoredSecret { name: secret.name.clone(), scope: secret.scope.clone(), keys: keys.clone(), sealed };
        let key = format!("{PREFIX}{}", secret.name);
        let record = versioned::encode(&stored);
        let written = if create {
            self.store.put_if_absent(&key, record).await?
        } else {
            self.store.put_if_present(&key, record).await?
        };
        if !written {
            return Err(if create { SecretError::Exists } else { SecretError::NotFound });
        }
        Ok(SecretSummary { name: secret.name, scope: secret.scope, keys })
    }

    pub async fn create(&self, mut secret: NewSecret) -> Result<SecretSummary> {
        self.validate(&mut secret)?;
        self.save(secret, true).await
    }

    pub async fn update(&self, mut secret: NewSecret) -> Result<SecretSummary> {
        self.validate(&mut secret)?;
        match self.load(&secret.name).await? {
            Some(existing) if existing.scope == secret.scope => self.save(secret, false).await,
            _ => Err(SecretError::NotFound),
        }
    }

    pub async fn delete(&self, name: &str, scope: &str) -> Result<()> {
        if name.is_empty() || scope.is_empty() {
            return Err(SecretError::BadRequest("name and scope must be given".into()));
        }
        match self.load(name).await? {
            Some(existing) if existing.scope == scope => Ok(self.store.delete(&format!("{PREFIX}{name}")).await?),
            _ => Err(SecretError::NotFound),
        }
    }

    /// Every secret (names, scopes, keys), optionally only those with this name and/or scope.
    pub async fn list(&self, name: Option<&str>, scope: Option<&str>) -> Result<Vec<SecretSummary>> {
        let mut summaries = Vec::new();
        for (key, bytes) in self.store.scan_prefix(PREFIX).await? {
            let stored: StoredSecret = match versioned::decode(&bytes) {
                Ok(stored) => stored,
                Err(error) => {
                    tracing::warn!(key, %error, "unreadable secret record skipped");
                    continue;
                }
            };
            if name.is_some_and(|name| name != stored.name) || scope.is_some_and(|scope| scope != stored.scope) {
                continue;
            }
            summaries.push(SecretSummary { name: stored.name, scope: stored.scope, keys: stored.keys });
        }
        Ok(summaries)
    }

    /// The value of `key` in secret `name`: `Ok(None)` when the secret does not exist, an empty string
    /// when it has no such key (Keptn's webhook behaviour).
    /// The value of `key` in secret `name` of `scope`; a secret of another scope is not there for the
    /// caller (`None`), as each Keptn service reads only its own scope.
    pub async fn value(&self, name: &str, scope: &str, key: &str) -> Result<Option<String>> {
        let Some(stored) = self.load(name).await? else { return Ok(None) };
        if stored.scope != scope {
            return Ok(None);
        }
        let plain = self.key.open(&stored.sealed, name.as_bytes()).map_err(|_| {
            SecretError::Unavailable(format!("secret '{name}' cannot be decrypted with the configured key"))
        })?;
        let data: BTreeMap<String, String> = serde_json::from_slice(&plain)
            .map_err(|error| SecretError::Unavailable(format!("secret '{name}' is unreadable: {error}")))?;
        Ok(Some(data.get(key).cloned().unwrap_or_default()))
    }
}

/// A Kubernetes DNS subdomain name: what Keptn's secret names must be.
fn is_dns_subdomain(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LENGTH
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'.')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    async fn secrets() -> (Secrets, Arc<dyn SnapshotStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn SnapshotStore> = Arc::new(SqliteStore::open(&dir.path().join("s.sqlite")).await.unwrap());
        let scopes = DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect();
        (Secrets::new(Arc::clone(&store), SecretKey::generate(), scopes), store, dir)
    }

    fn secret(name: &str, pairs: &[(&str, &str)]) -> NewSecret {
        NewSecret {
            name: name.into(),
            scope: String::new(),
            data: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[actix_rt::test]
    async fn values_are_encrypted_at_rest_and_readable_through_the_key() {
        let (secrets, store, _dir) = secrets().await;
        let summary = secrets.create(secret("slack", &[("token", "xoxb-very-secret-value")])).await.unwrap();
        assert_eq!(
            summary,
            SecretSummary { name: "slack".into(), scope: DEFAULT_SCOPE.into(), keys: vec!["token".into()] }
        );
        let raw = store.get("secret/slack").await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("xoxb-very-secret-value"));
        assert_eq!(
            secrets.value("slack", DEFAULT_SCOPE, "token").await.unwrap().as_deref(),
            Some("xoxb-very-secret-value")
        );
        assert_eq!(secrets.value("slack", DEFAULT_SCOPE, "other").await.unwrap().as_deref(), Some(""));
        assert_eq!(secrets.value("absent", DEFAULT_SCOPE, "token").await.unwrap(), None);
        // Another service's scope does not see it.
        assert_eq!(secrets.value("slack", "keptn-webhook-service", "token").await.unwrap(), None);
    }

    #[actix_rt::test]
    async fn a_different_key_cannot_read_a_secret() {
        let (secrets, store, _dir) = secrets().await;
        secrets.create(secret("db", &[("password", "hunter2")])).await.unwrap();
        let other = Secrets::new(store, SecretKey::generate(), vec![DEFAULT_SCOPE.into()]);
        assert!(matches!(other.value("db", DEFAULT_SCOPE, "password").await, Err(SecretError::Unavailable(_))));
    }

    #[actix_rt::test]
    async fn create_update_delete_follow_keptns_rules() {
        let (secrets, _store, _dir) = secrets().await;
        secrets.create(secret("a", &[("k", "1")])).await.unwrap();
        assert_eq!(secrets.create(secret("a", &[("k", "2")])).await, Err(SecretError::Exists));
        assert_eq!(secrets.update(secret("b", &[("k", "2")])).await, Err(SecretError::NotFound));
        secrets.update(secret("a", &[("k", "2"), ("j", "3")])).await.unwrap();
        assert_eq!(secrets.value("a", DEFAULT_SCOPE, "k").await.unwrap().as_deref(), Some("2"));
        assert_eq!(secrets.list(None, None).await.unwrap()[0].keys, vec!["j".to_owned(), "k".to_owned()]);
        assert_eq!(secrets.delete("a", "keptn-webhook-service").await, Err(SecretError::NotFound));
        secrets.delete("a", DEFAULT_SCOPE).await.unwrap();
        assert!(secrets.list(None, None).await.unwrap().is_empty());
    }

    #[actix_rt::test]
    async fn bad_names_keys_and_scopes_are_refused() {
        let (secrets, _store, _dir) = secrets().await;
        for bad in ["", "Upper", "-lead", "trail-", "sp ace", &"a".repeat(254)] {
            assert!(matches!(secrets.create(secret(bad, &[])).await, Err(SecretError::BadRequest(_))), "{bad}");
        }
        assert!(matches!(secrets.create(secret("ok", &[("bad key", "v")])).await, Err(SecretError::BadRequest(_))));
        let mut scoped = secret("ok", &[]);
        scoped.scope = "nope".into();
        assert!(
            matches!(secrets.create(scoped).await, Err(SecretError::BadRequest(message)) if message.contains("unknown scope"))
        );
        assert!(secrets.list(None, None).await.unwrap().is_empty());
    }
}
