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

    pub async fn write_batch_puts_and_deletes_together(store: Arc<dyn SnapshotStore>) {
        store.put("gone", b"old".to_vec()).await.unwrap();
        store.put("kept", b"old".to_vec()).await.unwrap();
        store
            .write_batch(vec![
                ("kept".into(), Some(b"new".to_vec())),
                ("gone".into(), None),
                ("added".into(), Some(vec![0, 1, 2])),
                ("never-there".into(), None),
            ])
            .await
            .unwrap();
        assert_eq!(store.get("kept").await.unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(store.get("gone").await.unwrap(), None);
        assert_eq!(store.get("added").await.unwrap(), Some(vec![0, 1, 2]));
        store.write_batch(Vec::new()).await.unwrap();
    }

    pub async fn conditional_puts_check_presence(store: Arc<dyn SnapshotStore>) {
        assert!(!store.put_if_present("c", b"1".to_vec()).await.unwrap(), "nothing to replace");
        assert_eq!(store.get("c").await.unwrap(), None);
        assert!(store.put_if_absent("c", b"1".to_vec()).await.unwrap());
        assert!(!store.put_if_absent("c", b"2".to_vec()).await.unwrap(), "already there");
        assert_eq!(store.get("c").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert!(store.put_if_present("c", b"3".to_vec()).await.unwrap());
        assert_eq!(store.get("c").await.unwrap().as_deref(), Some(&b"3"[..]));
        // Two writers racing for one key: exactly one wins.
        let (a, b) =
            tokio::join!(store.put_if_absent("race", b"a".to_vec()), store.put_if_absent("race", b"b".to_vec()));
        assert!(a.unwrap() ^ b.unwrap());
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

    fn ids(events: Vec<CloudEvent>) -> Vec<String> {
        events.into_iter().map(|e| e.id).collect()
    }

    fn project_query(project: &str) -> EventQuery {
        EventQuery { project: Some(project.into()), limit: 100, ..Default::default() }
    }

    pub async fn insert_many_stores_each_event_once(store: Arc<dyn EventStore>) {
        let first = Arc::new(event("m1", Some("p"), "sh.keptn.event.x.started", "c1", 1));
        store.insert(&first).await.unwrap();
        let batch: Vec<Arc<CloudEvent>> = vec![
            Arc::clone(&first),
            Arc::new(event("m2", Some("p"), "sh.keptn.event.x.finished", "c1", 2)),
            Arc::new(event("m2", Some("p"), "sh.keptn.event.x.finished", "c1", 2)),
            Arc::new(event("m3", Some("q"), "sh.keptn.event.x.started", "c2", 3)),
        ];
        store.insert_many(&batch).await.unwrap();
        store.insert_many(&batch).await.unwrap();
        assert_eq!(ids(store.find(&project_query("p")).await.unwrap()), ["m2", "m1"]);
        assert_eq!(ids(store.find(&project_query("q")).await.unwrap()), ["m3"]);
        assert_eq!(store.count(&project_query("p")).await.unwrap(), 2);
    }

    pub async fn datastore_filters_page_and_count(store: Arc<dyn EventStore>) {
        let mut events = Vec::new();
        for second in 0..7u32 {
            let mut e = event(&format!("f{second}"), Some("shop"), "sh.keptn.event.deployment.finished", "ctx", second);
            e.data["stage"] = json!(if second % 2 == 0 { "dev" } else { "prod" });
            e.data["result"] = json!(["pass", "warning", "fail"][second as usize % 3]);
            e.source = if second < 3 { "helm".into() } else { "jmeter".into() };
            e.triggeredid = Some(format!("t{}", second % 2));
            events.push(Arc::new(e));
        }
        store.insert_many(&events).await.unwrap();
        let query = |edit: &dyn Fn(&mut EventQuery)| {
            let mut query = project_query("shop");
            edit(&mut query);
            query
        };
        let found = |q: EventQuery| {
            let store = Arc::clone(&store);
            async move { ids(store.find(&q).await.unwrap()) }
        };
        assert_eq!(found(query(&|q| q.stage = Some("prod".into()))).await, ["f5", "f3", "f1"]);
        assert_eq!(found(query(&|q| q.source = Some("helm".into()))).await, ["f2", "f1", "f0"]);
        assert_eq!(found(query(&|q| q.triggered_id = Some("t0".into()))).await, ["f6", "f4", "f2", "f0"]);
        assert_eq!(found(query(&|q| q.event_id = Some("f4".into()))).await, ["f4"]);
        assert_eq!(found(query(&|q| q.service = Some("orders".into()))).await, Vec::<String>::new());
        // Bounds are compared with the stored text, which uses nine fraction digits (the API normalises).
        let from = "2024-05-01T10:00:01.500000000Z".to_owned();
        let before = "2024-05-01T10:00:05.000000000Z".to_owned();
        assert_eq!(
            found(query(&|q| {
                q.from_time = Some(from.clone());
                q.before_time = Some(before.clone());
            }))
            .await,
            ["f4", "f3", "f2"],
            "fromTime and beforeTime compare the stored time text"
        );
        // Paging: offset and limit over the newest-first order, count ignores both.
        let page = query(&|q| {
            q.offset = 2;
            q.limit = 3;
        });
        assert_eq!(found(page.clone()).await, ["f4", "f3", "f2"]);
        assert_eq!(store.count(&page).await.unwrap(), 7);
        // Conditions on any path, "any of" values, combined with indexed fields.
        let results = query(&|q| {
            q.project = None;
            q.conditions = keelson::store::query::parse_filter(
                "data.project:shop AND data.result:pass,warning AND data.stage:dev",
            )
            .unwrap();
        });
        assert_eq!(found(results.clone()).await, ["f6", "f4", "f0"]);
        assert_eq!(store.count(&results).await.unwrap(), 3);
    }

    pub async fn root_events_are_the_first_of_each_context(store: Arc<dyn EventStore>) {
        store.insert(&event("r1", Some("shop"), "sh.keptn.event.dev.delivery.triggered", "ctx-a", 1)).await.unwrap();
        store.insert(&event("r2", Some("shop"), "sh.keptn.event.deployment.triggered", "ctx-a", 2)).await.unwrap();
        store.insert(&event("r3", Some("shop"), "sh.keptn.event.dev.evaluation.triggered", "ctx-b", 3)).await.unwrap();
        let roots = EventQuery { root_only: true, ..project_query("shop") };
        assert_eq!(ids(store.find(&roots).await.unwrap()), ["r3", "r1"]);
        assert_eq!(store.count(&roots).await.unwrap(), 2);
        let one_context = EventQuery { keptn_context: Some("ctx-a".into()), ..roots };
        assert_eq!(ids(store.find(&one_context).await.unwrap()), ["r1"]);
    }

    pub async fn invalidated_results_can_be_excluded(store: Arc<dyn EventStore>) {
        let finished = |id: &str, triggered: &str, second| {
            let mut e = event(id, Some("shop"), "sh.keptn.event.evaluation.finished", "ctx", second);
            e.triggeredid = Some(triggered.into());
            e
        };
        store.insert(&finished("ev1", "trig1", 1)).await.unwrap();
        store.insert(&finished("ev2", "trig2", 2)).await.unwrap();
        let mut invalidation = event("inv", Some("shop"), "sh.keptn.event.evaluation.invalidated", "ctx", 3);
        invalidation.triggeredid = Some("trig1".into());
        store.insert_many(&[Arc::new(invalidation)]).await.unwrap();
        let evaluations =
            EventQuery { event_type: Some("sh.keptn.event.evaluation.finished".into()), ..project_query("shop") };
        assert_eq!(ids(store.find(&evaluations).await.unwrap()), ["ev2", "ev1"]);
        let valid = EventQuery { exclude_invalidated: true, ..evaluations };
        assert_eq!(ids(store.find(&valid).await.unwrap()), ["ev2"]);
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
            #[tokio::test]
            async fn write_batch_puts_and_deletes_together() {
                let (store, _guard) = $make.await;
                snapshot_suite::write_batch_puts_and_deletes_together(store).await
            }
            #[tokio::test]
            async fn conditional_puts_check_presence() {
                let (store, _guard) = $make.await;
                snapshot_suite::conditional_puts_check_presence(store).await
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
            #[tokio::test]
            async fn insert_many_stores_each_event_once() {
                let (store, _guard) = $make.await;
                event_suite::insert_many_stores_each_event_once(store).await
            }
            #[tokio::test]
            async fn datastore_filters_page_and_count() {
                let (store, _guard) = $make.await;
                event_suite::datastore_filters_page_and_count(store).await
            }
            #[tokio::test]
            async fn root_events_are_the_first_of_each_context() {
                let (store, _guard) = $make.await;
                event_suite::root_events_are_the_first_of_each_context(store).await
            }
            #[tokio::test]
            async fn invalidated_results_can_be_excluded() {
                let (store, _guard) = $make.await;
                event_suite::invalidated_results_can_be_excluded(store).await
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

/// The Redis store reconnects by itself: commands fail while the server is down and succeed once it is
/// back, without a new store.
#[tokio::test]
async fn redis_store_reconnects_after_a_restart() {
    let mut server = support::servers::redis_persistent();
    let store = keelson::store::redis::RedisSnapshotStore::connect(&server.url).await.unwrap();
    store.put("k", b"before".to_vec()).await.unwrap();
    server.kill();
    let error = store.put("k", b"during".to_vec()).await.unwrap_err();
    assert!(error.to_string().starts_with("redis is unavailable"), "{error}");
    server.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match store.write_batch(vec![("k".into(), Some(b"after".to_vec()))]).await {
            Ok(()) => break,
            Err(error) => {
                assert!(std::time::Instant::now() < deadline, "no reconnect within 15s: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"after"[..]));
}
