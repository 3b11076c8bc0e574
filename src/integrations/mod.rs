//! The registry of integrations (Keptn's uniform API) and their log entries, kept in memory and in
//! the snapshot store (`integration/<id>`, `integration-log/<id>`).
//!
//! Registrations expire: one that neither registers again nor pings within the TTL is removed, as Keptn
//! does with a TTL index. Operations are rare (a ping every few seconds per integration), so each one
//! writes through to the store before it answers, one at a time.
//!
//! When several instances share the store (cluster mode) the store is the authority: every operation
//! reads the registrations (and the logs it touches) from it first, so an integration that pings one
//! instance is never expired by another from a stale copy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::model::text::char_prefix;
use crate::model::uniform::{EventSubscription, Integration, IntegrationQuery, LogEntry};
use crate::store::{versioned, SnapshotStore};

/// An integration's log entries as stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredLogs {
    logs: Vec<LogEntry>,
}

const INTEGRATION_PREFIX: &str = "integration/";
const LOG_PREFIX: &str = "integration-log/";
/// Log entries older than this are dropped (Keptn's `LOG_TTL` default, 120 h).
const LOG_TTL: Duration = Duration::from_secs(120 * 3600);
/// Most log entries kept per integration; the oldest go first.
const LOGS_PER_INTEGRATION: usize = 1_000;
/// Longest log message kept, in bytes; longer ones are cut (at a character boundary).
const MAX_LOG_MESSAGE_BYTES: usize = 4096;
/// Longest value of the other log fields (ids, task name).
const MAX_LOG_FIELD_BYTES: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntegrationError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
}

impl From<crate::store::Error> for IntegrationError {
    fn from(error: crate::store::Error) -> Self {
        IntegrationError::Unavailable(error.to_string())
    }
}

type Result<T> = std::result::Result<T, IntegrationError>;

pub struct Integrations {
    store: Arc<dyn SnapshotStore>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    /// Held across the store write of each change, so changes are stored in the order they are made.
    entries: Mutex<HashMap<String, Integration>>,
    logs: Mutex<HashMap<String, Vec<LogEntry>>>,
    /// Other instances change the store too.
    shared: std::sync::atomic::AtomicBool,
}

fn not_found() -> IntegrationError {
    IntegrationError::NotFound("uniform integration not found".into())
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Integrations {
    /// Loads the stored registrations and logs.
    pub async fn load(
        store: Arc<dyn SnapshotStore>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> crate::store::Result<Self> {
        let entries = read_entries(store.as_ref()).await?;
        let logs = read_logs(store.as_ref()).await?;
        Ok(Self {
            store,
            clock,
            ttl,
            entries: Mutex::new(entries),
            logs: Mutex::new(logs),
            shared: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Other instances share the store (cluster mode): it is read before every operation.
    pub fn set_shared(&self) {
        self.shared.store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_shared(&self) -> bool {
        self.shared.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The registrations, read again from the store when it is shared.
    async fn entries(&self) -> Result<tokio::sync::MutexGuard<'_, HashMap<String, Integration>>> {
        let mut entries = self.entries.lock().await;
        if self.is_shared() {
            *entries = read_entries(self.store.as_ref()).await?;
        }
        Ok(entries)
    }

    fn expired(&self, integration: &Integration, now: DateTime<Utc>) -> bool {
        (now - integration.metadata.lastseen).to_std().is_ok_and(|age| age > self.ttl)
    }

    async fn save(&self, integration: &Integration) -> Result<()> {
        let bytes = versioned::encode(integration);
        self.store.put(&format!("{INTEGRATION_PREFIX}{}", integration.id), bytes).await?;
        Ok(())
    }

    /// Removes expired registrations; returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let now = self.clock.now();
        let mut entries = self.entries().await?;
        let expired: Vec<String> =
            entries.values().filter(|integration| self.expired(integration, now)).map(|i| i.id.clone()).collect();
        for id in &expired {
            self.store.delete(&format!("{INTEGRATION_PREFIX}{id}")).await?;
            entries.remove(id);
            tracing::info!(integration = %id, "integration expired");
        }
        Ok(expired.len())
    }

    /// Registrations matching `query`, by name.
    pub async fn list(&self, query: &IntegrationQuery) -> Result<Vec<Integration>> {
        let now = self.clock.now();
        let entries = self.entries().await?;
        let mut found: Vec<Integration> = entries
            .values()
            .filter(|integration| !self.expired(integration, now) && integration.matches(query))
            .cloned()
            .collect();
        found.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
        Ok(found)
    }

    /// Registers `integration`; `Ok((id, true))` for a new one, `(id, false)` when it was known (its
    /// metadata is refreshed and new subscriptions are added).
    pub async fn register(&self, mut integration: Integration) -> Result<(String, bool)> {
        integration.validate_registration().map_err(IntegrationError::BadRequest)?;
        integration.metadata.lastseen = self.clock.now();
        let mut entries = self.entries().await?;
        let (updated, created) = match entries.get(&integration.id) {
            Some(existing) => {
                let mut updated = existing.clone();
                let subscriptions = std::mem::take(&mut integration.subscriptions);
                updated.metadata = integration.metadata;
                updated.merge_subscriptions(subscriptions, &mut new_id);
                (updated, false)
            }
            None => {
                // Ids a client already holds (re-registration after expiry) are kept.
                for subscription in integration.subscriptions.iter_mut().filter(|s| s.id.is_empty()) {
                    subscription.id = new_id();
                }
                (integration, true)
            }
        };
        self.save(&updated).await?;
        let id = updated.id.clone();
        entries.insert(id.clone(), updated);
        Ok((id, created))
    }

    pub async fn unregister(&self, id: &str) -> Result<()> {
        let mut entries = self.entries().await?;
        self.store.delete(&format!("{INTEGRATION_PREFIX}{id}")).await?;
        entries.remove(id);
        Ok(())
    }

    /// Marks `id` as alive; returns it with its subscriptions.
    pub async fn ping(&self, id: &str) -> Result<Integration> {
        self.change(id, |_| Ok(())).await
    }

    /// Applies `edit` to a live registration, refreshes its `lastseen` and stores it.
    async fn change<T>(&self, id: &str, edit: impl FnOnce(&mut Integration) -> Result<T>) -> Result<Integration> {
        let now = self.clock.now();
        let mut entries = self.entries().await?;
        let Some(existing) = entries.get(id).filter(|integration| !self.expired(integration, now)) else {
            return Err(not_found());
        };
        let mut updated = existing.clone();
        edit(&mut updated)?;
        updated.metadata.lastseen = now;
        self.save(&updated).await?;
        entries.insert(id.to_owned(), updated.clone());
        Ok(updated)
    }

    pub async fn subscriptions(&self, id: &str) -> Result<Vec<EventSubscription>> {
        let now = self.clock.now();
        let entries = self.entries().await?;
        entries
            .get(id)
            .filter(|integration| !self.expired(integration, now))
            .map(|integration| integration.subscriptions.clone())
            .ok_or_else(not_found)
    }

    pub async fn subscription(&self, id: &str, subscription_id: &str) -> Result<EventSubscription> {
        self.subscriptions(id)
            .await?
            .into_iter()
            .find(|subscription| subscription.id == subscription_id)
            .ok_or_else(|| IntegrationError::NotFound("subscription not found".into()))
    }

    /// Adds a subscription with a new id; returns the id.
    pub async fn add_subscription(&self, id: &str, mut subscription: EventSubscription) -> Result<String> {
        let subscription_id = new_id();
        subscription.id = subscription_id.clone();
        self.change(id, |integration| {
            subscription.validate(&integration.name).map_err(IntegrationError::BadRequest)?;
            integration.subscriptions.push(subscription);
            Ok(())
        })
        .await?;
        Ok(subscription_id)
    }

    /// Creates or replaces the subscription `subscription_id`.
    pub async fn put_subscription(
        &self,
        id: &str,
        subscription_id: &str,
        mut subscription: EventSubscription,
    ) -> Result<()> {
        subscription.id = subscription_id.to_owned();
        self.change(id, |integration| {
            subscription.validate(&integration.name).map_err(IntegrationError::BadRequest)?;
            match integration.subscriptions.iter_mut().find(|existing| existing.id == subscription.id) {
                Some(existing) => *existing = subscription,
                None => integration.subscriptions.push(subscription),
            }
            Ok(())
        })
        .await
        .map(drop)
    }

    pub async fn delete_subscription(&self, id: &str, subscription_id: &str) -> Result<()> {
        self.change(id, |integration| {
            integration.subscriptions.retain(|subscription| subscription.id != subscription_id);
            Ok(())
        })
        .await
        .map(drop)
    }

    /// Stores log entries of registered integrations (a zero or future time becomes now, long messages
    /// are cut); entries beyond the per-integration bound or older than the log TTL are dropped. Nothing
    /// is stored when an entry is refused.
    pub async fn add_logs(&self, entries: Vec<LogEntry>) -> Result<()> {
        let now = self.clock.now();
        {
            let registered = self.entries().await?;
            for entry in &entries {
                if entry.integrationid.is_empty() {
                    return Err(IntegrationError::BadRequest("log entry without integrationid".into()));
                }
                if !registered.contains_key(&entry.integrationid) {
                    return Err(IntegrationError::BadRequest(format!(
                        "log entry for unknown integration '{}': register it first",
                        char_prefix(&entry.integrationid, MAX_LOG_FIELD_BYTES)
                    )));
                }
                let oversized = [&entry.shkeptncontext, &entry.task, &entry.triggeredid, &entry.gitcommitid]
                    .iter()
                    .any(|field| field.len() > MAX_LOG_FIELD_BYTES);
                if oversized {
                    return Err(IntegrationError::BadRequest(format!(
                        "log entry fields other than message are limited to {MAX_LOG_FIELD_BYTES} bytes"
                    )));
                }
            }
        }
        let mut logs = self.logs.lock().await;
        let mut touched = Vec::new();
        for mut entry in entries {
            // A zero time means "now"; a time in the future would outlive the TTL.
            if entry.time <= DateTime::<Utc>::UNIX_EPOCH || entry.time > now {
                entry.time = now;
            }
            if entry.message.len() > MAX_LOG_MESSAGE_BYTES {
                entry.message = format!("{}…", char_prefix(&entry.message, MAX_LOG_MESSAGE_BYTES));
            }
            if !touched.contains(&entry.integrationid) {
                touched.push(entry.integrationid.clone());
            }
            logs.entry(entry.integrationid.clone()).or_default().push(entry);
        }
        for integration in touched {
            if self.is_shared() {
                // Another instance may have stored entries of this integration meanwhile.
                let key = format!("{LOG_PREFIX}{integration}");
                let stored = match self.store.get(&key).await? {
                    Some(bytes) => {
                        versioned::decode::<StoredLogs>(&bytes).map(|stored| stored.logs).unwrap_or_default()
                    }
                    None => Vec::new(),
                };
                let list = logs.entry(integration.clone()).or_default();
                let known: std::collections::HashSet<(DateTime<Utc>, String)> =
                    list.iter().map(|entry| (entry.time, entry.message.clone())).collect();
                list.extend(stored.into_iter().filter(|entry| !known.contains(&(entry.time, entry.message.clone()))));
            }
            let list = logs.entry(integration.clone()).or_default();
            list.retain(|entry| (now - entry.time).to_std().map_or(true, |age| age <= LOG_TTL));
            list.sort_by_key(|entry| entry.time);
            let excess = list.len().saturating_sub(LOGS_PER_INTEGRATION);
            list.drain(..excess);
            let bytes = versioned::encode(&StoredLogs { logs: list.clone() });
            self.store.put(&format!("{LOG_PREFIX}{integration}"), bytes).await?;
        }
        Ok(())
    }

    /// Log entries newest first, filtered by integration and time (`from` < time < `before`).
    pub async fn logs(
        &self,
        integration: Option<&str>,
        from: Option<DateTime<Utc>>,
        before: Option<DateTime<Utc>>,
    ) -> Result<Vec<LogEntry>> {
        let now = self.clock.now();
        let mut logs = self.logs.lock().await;
        if self.is_shared() {
            *logs = read_logs(self.store.as_ref()).await?;
        }
        let mut found: Vec<LogEntry> = logs
            .iter()
            .filter(|(id, _)| integration.is_none_or(|wanted| wanted == id.as_str()))
            .flat_map(|(_, entries)| entries.iter())
            .filter(|entry| (now - entry.time).to_std().map_or(true, |age| age <= LOG_TTL))
            .filter(|entry| {
                from.is_none_or(|from| entry.time > from) && before.is_none_or(|before| entry.time < before)
            })
            .cloned()
            .collect();
        found.sort_by_key(|entry| std::cmp::Reverse(entry.time));
        Ok(found)
    }

    /// Sweeps expired registrations every few seconds, for the life of the process.
    pub fn start_sweeping(self: &Arc<Self>) {
        let registry = Arc::clone(self);
        let period = (self.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if let Err(error) = registry.sweep().await {
                    tracing::warn!(%error, "cannot remove expired integrations");
                }
            }
        });
    }
}

async fn read_entries(store: &dyn SnapshotStore) -> crate::store::Result<HashMap<String, Integration>> {
    let mut entries = HashMap::new();
    for (key, bytes) in store.scan_prefix(INTEGRATION_PREFIX).await? {
        match versioned::decode::<Integration>(&bytes) {
            Ok(integration) => {
                entries.insert(integration.id.clone(), integration);
            }
            Err(error) => tracing::error!(key, %error, "stored integration cannot be read; ignored"),
        }
    }
    Ok(entries)
}

async fn read_logs(store: &dyn SnapshotStore) -> crate::store::Result<HashMap<String, Vec<LogEntry>>> {
    let mut logs = HashMap::new();
    for (key, bytes) in store.scan_prefix(LOG_PREFIX).await? {
        match versioned::decode::<StoredLogs>(&bytes) {
            Ok(stored) => {
                logs.insert(key[LOG_PREFIX.len()..].to_owned(), stored.logs);
            }
            Err(error) => tracing::error!(key, %error, "stored integration logs cannot be read; ignored"),
        }
    }
    Ok(logs)
}
