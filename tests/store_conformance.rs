//! One conformance suite per storage trait, run against every backend: embedded SQLite, Redis and a
//! MongoDB-compatible server (SecantusDB), each started for the test on a free port.

mod support;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use keelson::model::event::CloudEvent;
use keelson::store::{EventQuery, EventStore, SnapshotStore};
use serde_json::json;

mod snapshot_suite {
    use super::*;

    pub async fn put_then_get_round_trips(store: Arc<dyn SnapshotStore>) {
        assert_eq!(store.get("project/a").await.unwrap(), None);
        store.put("project/a", b"one".to_vec()).await.unwrap();
        assert_eq!(store.get("project/a").await.unwrap().as_deref(), Some(&b"one"[..]));
        store.put("project/a", b"two".to_vec()).await.unwrap();
        assert_eq!(store.get("project/a").await.unwrap().as_deref(), Some(&b"two"[..]), "put overwrites");
        store.put("bin", vec![0, 255, 10, 13]).await.unwrap();
        assert_eq!(store.get("bin").await.unwrap(), Some(vec![0, 255, 10, 13]), "values are bytes, not text");
    }

    pub async fn delete_is_idempotent(store: Arc<dyn SnapshotStore>) {
        store.put("k", b"v".to_vec()).await.unwrap();
        store.delete("k").await.unwrap();
        assert_eq!(store.get("k").await.unwrap(), None);
        store.delete("k").await.unwrap();
    }

    pub async fn scan_prefix_is_sorted_and_literal(store: Arc<dyn SnapshotStore>) {
        for key in ["p/b", "p/a", "p*/x", "q/a", "p/c/d", "p"] {
            store.put(key, key.as_bytes().to_vec()).await.unwrap();
        }
        let entries = store.scan_prefix("p/").await.unwrap();
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["p/a", "p/b", "p/c/d"]);
        assert_eq!(entries[0].1, b"p/a");
        let starred: Vec<String> = store.scan_prefix("p*").await.unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(starred, ["p*/x"], "glob characters match literally");
        assert!(store.scan_prefix("none/").await.unwrap().is_empty());
    }
}

mod event_suite {
    use super::*;

    fn event(id: &str, project: Option<&str>, event_type: &str, context: &str, second: u32) -> CloudEvent {
        let mut data = json!({ "stage": "dev", "service": "carts", "score": 1.5 });
        if let Some(project) = project {
            data["project"] = json!(project);
        }
        CloudEvent::emitted(
            event_type,
            id.into(),
            context.into(),
            Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, second).unwrap(),
            data,
        )
    }

    pub async fn insert_is_idempotent_by_id(store: Arc<dyn EventStore>) {
        let first = event("e1", Some("sockshop"), "sh.keptn.event.project.create.started", "c1", 1);
        assert!(store.insert(&first).await.unwrap(), "first insert stores");
        let mut changed = first.clone();
        changed.data["score"] = json!(9);
        assert!(!store.insert(&changed).await.unwrap(), "same id is not stored again");
        let stored = store
            .find(&EventQuery { project: Some("sockshop".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(stored, vec![first], "the first version is kept, unchanged");
    }

    pub async fn find_filters_and_orders_newest_first(store: Arc<dyn EventStore>) {
        store.insert(&event("a", Some("p1"), "sh.keptn.event.x.started", "c1", 1)).await.unwrap();
        store.insert(&event("b", Some("p1"), "sh.keptn.event.x.finished", "c1", 3)).await.unwrap();
        store.insert(&event("c", Some("p1"), "sh.keptn.event.x.started", "c2", 2)).await.unwrap();
        store.insert(&event("d", Some("p2"), "sh.keptn.event.x.started", "c3", 4)).await.unwrap();
        store.insert(&event("e", None, "sh.keptn.log.error", "c4", 5)).await.unwrap();

        let ids = |events: Vec<CloudEvent>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let all_p1 =
            store.find(&EventQuery { project: Some("p1".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(ids(all_p1), ["b", "c", "a"]);
        let started = store
            .find(&EventQuery {
                project: Some("p1".into()),
                event_type: Some("sh.keptn.event.x.started".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(started), ["c", "a"]);
        let by_context = store
            .find(&EventQuery { keptn_context: Some("c1".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(ids(by_context), ["b", "a"], "a context is found without naming its project");
        let limited =
            store.find(&EventQuery { project: Some("p1".into()), limit: 1, ..Default::default() }).await.unwrap();
        assert_eq!(ids(limited), ["b"]);
        let unmapped = store
            .find(&EventQuery { keptn_context: Some("c4".into()), limit: 10, ..Default::default() })
            .await
            .unwrap();
        assert_eq!(ids(unmapped), ["e"], "events without a project are kept too");
        let restored =
            store.find(&EventQuery { project: Some("p2".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(restored[0].data["score"], json!(1.5), "data round-trips");
        assert_eq!(restored[0].time, Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 4).unwrap()));
    }
}

macro_rules! snapshot_store_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn put_then_get_round_trips() {
                let (store, _guard) = $make.await;
                snapshot_suite::put_then_get_round_trips(store).await
            }
            #[tokio::test]
            async fn delete_is_idempotent() {
                let (store, _guard) = $make.await;
                snapshot_suite::delete_is_idempotent(store).await
            }
            #[tokio::test]
            async fn scan_prefix_is_sorted_and_literal() {
                let (store, _guard) = $make.await;
                snapshot_suite::scan_prefix_is_sorted_and_literal(store).await
            }
        }
    };
}

macro_rules! event_store_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn insert_is_idempotent_by_id() {
                let (store, _guard) = $make.await;
                event_suite::insert_is_idempotent_by_id(store).await
            }
            #[tokio::test]
            async fn find_filters_and_orders_newest_first() {
                let (store, _guard) = $make.await;
                event_suite::find_filters_and_orders_newest_first(store).await
            }
        }
    };
}

/// Keeps whatever backs a store (a temp dir, a server process) alive for the test.
type Guard = Box<dyn std::any::Any + Send>;

async fn sqlite() -> (keelson::store::sqlite::SqliteStore, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let store = keelson::store::sqlite::SqliteStore::open(&dir.path().join("test.sqlite")).await.unwrap();
    (store, Box::new(dir))
}

async fn sqlite_snapshots() -> (Arc<dyn SnapshotStore>, Guard) {
    let (store, guard) = sqlite().await;
    (Arc::new(store), guard)
}

async fn sqlite_events() -> (Arc<dyn EventStore>, Guard) {
    let (store, guard) = sqlite().await;
    (Arc::new(store), guard)
}

async fn redis_snapshots() -> (Arc<dyn SnapshotStore>, Guard) {
    let server = support::servers::redis();
    let store = keelson::store::redis::RedisSnapshotStore::connect(&server.url).await.unwrap();
    (Arc::new(store), Box::new(server))
}

async fn mongo_events() -> (Arc<dyn EventStore>, Guard) {
    let server = support::servers::secantus();
    let store = keelson::store::mongo::MongoEventStore::connect(&server.url).await.unwrap();
    (Arc::new(store), Box::new(server))
}

snapshot_store_suite!(sqlite_snapshot_store, sqlite_snapshots());
snapshot_store_suite!(redis_snapshot_store, redis_snapshots());
event_store_suite!(sqlite_event_store, sqlite_events());
event_store_suite!(mongo_event_store, mongo_events());
