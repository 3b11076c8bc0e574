//! Cluster mode, end to end: three `keelson` processes sharing nats-server, redis-server, SecantusDB
//! and a git smart-HTTP server, with this test as the execution plane (a NATS queue-group executor).
//! Sequences are triggered round-robin on every instance, the API answers alike on every instance,
//! an owner is killed mid-run, and bad configurations are refused.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::cluster::*;
use support::servers::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_serve_every_project_and_survive_a_killed_owner() {
    let servers = Servers::start();
    let mut nodes: Vec<Node> = ["n1", "n2", "n3"].iter().map(|node| servers.spawn(node, &[])).collect();
    let apis: Vec<Api> = nodes.iter().map(|node| node.api.clone()).collect();
    wait_until_owned_by(&apis[0], &["n1", "n2", "n3"], Duration::from_secs(15)).await;
    wait_until_owned_by(&apis[1], &["n1", "n2", "n3"], Duration::from_secs(15)).await;
    let status = apis[1].cluster().await;
    assert_eq!(status["nodeId"], "n2");
    assert_eq!(status["members"].as_array().unwrap().len(), 3, "{status}");
    let shards = status["shards"].as_array().unwrap();
    assert_eq!(shards.len(), SHARDS);
    for (i, shard) in shards.iter().enumerate() {
        // An owner comes with its epoch; a shard changing hands shows neither.
        assert_eq!(shard["shard"], i);
        assert_eq!(shard["owner"].is_string(), shard["epoch"].as_u64().is_some_and(|epoch| epoch >= 1), "{shard}");
    }
    let seen = start_executor(&servers.nats.url, Duration::from_millis(100)).await;

    // Projects created on every instance are readable at once on every other.
    let projects: Vec<String> = (0..6).map(|i| format!("p{i:02}")).collect();
    for (i, project) in projects.iter().enumerate() {
        create_project(&apis[i % 3], &servers.git, project).await;
        for api in &apis {
            let (status, body) = api.get(&format!("/api/controlPlane/v1/project/{project}")).await;
            assert_eq!(status, 200, "{project} on {}: {body}", api.base);
            assert_eq!(body["stages"].as_array().unwrap().len(), 2);
        }
    }
    for api in &apis {
        let (status, body) = api.get("/api/controlPlane/v1/project").await;
        assert_eq!(status, 200);
        let names: Vec<&str> =
            body["projects"].as_array().unwrap().iter().filter_map(|p| p["projectName"].as_str()).collect();
        assert_eq!(names, projects.iter().map(String::as_str).collect::<Vec<_>>(), "list on {}", api.base);
    }
    // A project without an upstream cannot live in a cluster.
    let (status, body) =
        apis[0].post("/api/controlPlane/v1/project", &json!({ "name": "local-only", "shipyard": b64(SHIPYARD) })).await;
    assert_eq!(status, 422, "{body}");
    // A resource written through one instance is read through another.
    let resource = json!({ "resources": [{ "resourceURI": "notes.txt", "resourceContent": b64("written on n2") }] });
    let path = "/api/resource-service/v1/project/p00/stage/dev/service/svc/resource";
    let (status, body) = apis[1].post(path, &resource).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = apis[2].get(&format!("{path}/notes.txt")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["resourceContent"], b64("written on n2"));

    // Steady state: sequences triggered round-robin through every instance all finish.
    let mut contexts = Vec::new();
    for round in 0..3 {
        for (i, project) in projects.iter().enumerate() {
            let context = trigger(&apis[(i + round) % 3], project).await;
            contexts.push((project.clone(), context));
        }
    }
    wait_finished(&apis[2], &contexts, Duration::from_secs(60)).await;
    let mut forwarded = 0.0;
    for api in &apis {
        forwarded += api.metric("keelson_forwarded_total").await;
        assert_eq!(api.metric("keelson_shard_losses_total").await, 0.0, "no spurious shard loss on {}", api.base);
    }
    assert!(forwarded > 0.0, "requests and events reached their owners through other instances");
    assert_one_id_per_task(&seen);

    // A sequence waiting for a person: its open task is listed by every instance, with and without
    // the project, and it is aborted through an instance that does not own it.
    let hold = json!({
        "specversion": "1.0", "type": "sh.keptn.event.dev.hold.triggered", "source": "ci",
        "data": { "project": "p01", "stage": "dev", "service": "svc" },
    });
    let (status, body) = apis[0].post("/api/v1/event", &hold).await;
    assert_eq!(status, 200, "{body}");
    let held = body["keptnContext"].as_str().unwrap().to_owned();
    for path in ["", "?project=p01"] {
        for api in &apis {
            let listed = |body: &serde_json::Value| {
                body["events"].as_array().is_some_and(|events| events.iter().any(|e| e["shkeptncontext"] == held))
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (status, body) = api
                    .get(&format!("/api/controlPlane/v1/event/triggered/sh.keptn.event.manual.triggered{path}"))
                    .await;
                assert_eq!(status, 200, "{body}");
                if listed(&body) {
                    break;
                }
                assert!(Instant::now() < deadline, "open task not listed by {} ({path}): {body}", api.base);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let owner = owner_of(&apis[0], "p01").await.unwrap();
    let elsewhere = apis.iter().zip(["n1", "n2", "n3"]).find(|(_, node)| *node != owner).unwrap().0;
    let (status, body) = elsewhere
        .post(&format!("/api/controlPlane/v1/sequence/p01/{held}/control"), &json!({ "state": "abort" }))
        .await;
    assert_eq!(status, 200, "{body}");
    for api in &apis {
        let (status, body) = api.get(&format!("/api/controlPlane/v1/sequence/p01?keptnContext={held}")).await;
        assert_eq!((status, body["states"][0]["state"].as_str()), (200, Some("aborted")), "{body}");
    }
    // Secrets and the datastore are shared: written through one instance, read through the others.
    let secret = json!({ "name": "shared", "scope": "keptn-default", "data": { "token": "s3cr3t" } });
    let (status, body) = apis[0].post("/api/secrets/v1/secret", &secret).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = apis[1].get("/api/secrets/v1/secret").await;
    assert_eq!(status, 200);
    assert!(body.to_string().contains("\"shared\"") && !body.to_string().contains("s3cr3t"), "{body}");
    let (project, context) = &contexts[0];
    let query = format!("/api/mongodb-datastore/event?project={project}&keptnContext={context}&pageSize=100");
    let (_, on_two) = apis[1].get(&query).await;
    let (_, on_three) = apis[2].get(&query).await;
    assert!(on_two["totalCount"].as_u64().unwrap_or(0) >= 8, "{on_two}");
    assert_eq!(on_two["totalCount"], on_three["totalCount"]);

    // An owner is killed while sequences run: its shards are owned again within five seconds and
    // every sequence finishes.
    let mut running = Vec::new();
    for round in 0..2 {
        for (i, project) in projects.iter().enumerate() {
            let context = trigger(&apis[(i + round) % 3], project).await;
            running.push((project.clone(), context));
        }
    }
    let victim = nodes.remove(0);
    assert_eq!(victim.id, "n1");
    let killed_at = Instant::now();
    victim.process.kill_hard();
    let took = wait_until_owned_by(&apis[1], &["n2", "n3"], Duration::from_secs(10)).await;
    let took_total = killed_at.elapsed();
    assert!(took_total <= Duration::from_secs(5), "shards of the killed owner taken after {took_total:?} ({took:?})");
    wait_finished(&apis[2], &running, Duration::from_secs(60)).await;
    let repeats = assert_one_id_per_task(&seen);
    eprintln!("failover: shards owned again {took_total:?} after kill -9; {repeats} repeated task triggers (same id)");

    // A joining instance receives its share; then a leaving one hands its shards off and exits 0;
    // neither makes any write be refused.
    let joined = servers.spawn("n4", &[]);
    let joined_at = Instant::now();
    let deadline = joined_at + Duration::from_secs(10);
    loop {
        let owned = apis[2].owners().await.iter().filter(|owner| owner.as_deref() == Some("n4")).count();
        if (8..=32).contains(&owned) && apis[2].owners().await.iter().all(Option::is_some) {
            eprintln!("join: n4 owns {owned} shards {:?} after it started", joined_at.elapsed());
            break;
        }
        assert!(Instant::now() < deadline, "n4 owns {owned} shards 10 s after joining");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let apis = vec![apis[1].clone(), apis[2].clone(), joined.api.clone()];
    let mut fenced = 0.0;
    for api in &apis {
        fenced += api.metric("keelson_fenced_writes_total").await;
    }
    let mut leaving = nodes.remove(0);
    assert_eq!(leaving.id, "n2");
    leaving.process.signal("TERM");
    let left_at = Instant::now();
    assert_eq!(leaving.process.wait_exit(Duration::from_secs(10)), Some(0), "n2 exits 0 after handing off");
    wait_until_owned_by(&apis[1], &["n3", "n4"], Duration::from_secs(5)).await;
    let handed_off = left_at.elapsed();
    assert!(handed_off <= Duration::from_secs(3), "n2's shards held elsewhere {handed_off:?} after SIGTERM");
    eprintln!("leave: n2's shards held by n3 and n4 {handed_off:?} after SIGTERM");
    let mut after = Vec::new();
    for (i, project) in projects.iter().enumerate() {
        after.push((project.clone(), trigger(&apis[1 + i % 2], project).await));
    }
    wait_finished(&apis[2], &after, Duration::from_secs(60)).await;
    for api in &apis[1..] {
        fenced += api.metric("keelson_fenced_writes_total").await;
    }
    assert_eq!(fenced, 0.0, "no write was refused during the join and the leave");
    assert_one_id_per_task(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_loses_its_shards_and_its_late_writes_are_refused() {
    let servers = Servers::start();
    let nodes: Vec<Node> = ["n1", "n2", "n3"].iter().map(|node| servers.spawn(node, &[])).collect();
    let apis: Vec<Api> = nodes.iter().map(|node| node.api.clone()).collect();
    wait_until_owned_by(&apis[0], &["n1", "n2", "n3"], Duration::from_secs(15)).await;
    let seen = start_executor(&servers.nats.url, Duration::from_millis(100)).await;
    // A project the paused instance owns.
    let mut project = None;
    for i in 0..40 {
        let name = format!("z{i:02}");
        if owner_of(&apis[0], &name).await.as_deref() == Some("n2") {
            project = Some(name);
            break;
        }
    }
    let project = project.expect("some name hashes to a shard of n2");
    create_project(&apis[0], &servers.git, &project).await;
    // Every control-plane publication, with who published it under which epoch.
    let audit = async_nats::connect(&servers.nats.url).await.unwrap();
    let mut published = audit.subscribe("sh.keptn.>").await.unwrap();
    audit.flush().await.unwrap();
    type Publication = (Instant, Option<String>, Option<u64>, serde_json::Value);
    let publications: std::sync::Arc<std::sync::Mutex<Vec<Publication>>> = Default::default();
    let record = std::sync::Arc::clone(&publications);
    tokio::spawn(async move {
        use futures_util::StreamExt as _;
        while let Some(message) = published.next().await {
            let header = |name: &str| {
                message.headers.as_ref().and_then(|headers| headers.get(name)).map(|value| value.as_str().to_owned())
            };
            let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_default();
            let epoch = header("Keelson-Epoch").and_then(|epoch| epoch.parse().ok());
            record.lock().unwrap().push((Instant::now(), header("Keelson-Node"), epoch, event));
        }
    });
    let before = trigger(&apis[2], &project).await;
    wait_finished(&apis[0], &[(project.clone(), before)], Duration::from_secs(30)).await;
    let shard = keelson::model::placement::shard_of(&project, SHARDS as u32) as usize;
    let old_epoch = apis[1].cluster().await["shards"][shard]["epoch"].as_u64().unwrap();

    // n2 holds its next batch past its lease, then freezes; the trigger arrives over JetStream.
    let (status, body) = apis[1].post("/api/internal/v1/fault", &json!({ "holdSnapshotBatchMs": 10_000 })).await;
    assert_eq!(status, 200, "{body}");
    let held_at = Instant::now();
    let nats = async_nats::connect(&servers.nats.url).await.unwrap();
    let context = uuid::Uuid::new_v4().to_string();
    let trigger_event = json!({
        "specversion": "1.0", "id": uuid::Uuid::new_v4().to_string(), "source": "ci",
        "type": "sh.keptn.event.dev.delivery.triggered", "shkeptncontext": context,
        "data": { "project": project, "stage": "dev", "service": "svc" },
    });
    async_nats::jetstream::new(nats.clone())
        .publish("sh.keptn.event.dev.delivery.triggered", serde_json::to_vec(&trigger_event).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes[1].process.signal("STOP");
    let stopped_at = Instant::now();
    let took = wait_until_owned_by(&apis[0], &["n1", "n3"], Duration::from_secs(10)).await;
    let takeover = stopped_at.elapsed();
    assert!(takeover <= Duration::from_secs(4), "n2's shards taken {takeover:?} after it froze (lease + 1 s)");
    eprintln!("zombie: n2's shards owned by the others {takeover:?} after SIGSTOP ({took:?} of polling)");
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(stopped_at.elapsed())).await;
    nodes[1].process.signal("CONT");
    let woke_at = Instant::now();

    // The sequence runs on the new owner; the zombie's held batch is refused by Redis when it leaves.
    wait_finished(&apis[0], &[(project.clone(), context)], Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(11).saturating_sub(held_at.elapsed())).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while apis[1].metric("keelson_fenced_writes_total{side=\"redis\"}").await < 1.0 {
        assert!(Instant::now() < deadline, "n2's late batch was not refused by the fence");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(apis[1].metric("keelson_shard_losses_total").await >= 1.0, "n2 knows it lost its shards");
    // It rejoins and receives shards again.
    wait_until_owned_by(&apis[0], &["n1", "n2", "n3"], Duration::from_secs(20)).await;
    let after = trigger(&apis[1], &project).await;
    wait_finished(&apis[2], &[(project.clone(), after)], Duration::from_secs(30)).await;
    assert_one_id_per_task(&seen);
    // Publications carry their publisher and epoch; after waking, n2 published nothing of the project
    // under the epoch it had lost.
    let publications = publications.lock().unwrap();
    let of_project = |event: &serde_json::Value| event["data"]["project"] == project.as_str();
    assert!(
        publications.iter().any(|(_, node, epoch, event)| of_project(event)
            && node.as_deref() == Some("n2")
            && *epoch == Some(old_epoch)),
        "n2 published the project's events under epoch {old_epoch} before it froze"
    );
    let stale: Vec<_> = publications
        .iter()
        .filter(|(at, node, epoch, event)| {
            *at >= woke_at
                && of_project(event)
                && node.as_deref() == Some("n2")
                && epoch.is_some_and(|e| e <= old_epoch)
        })
        .map(|(_, _, epoch, event)| (epoch, event["type"].clone()))
        .collect();
    assert!(stale.is_empty(), "n2 published with its lost epoch after waking: {stale:?}");
}

const APPROVAL_SHIPYARD: &str = "apiVersion: spec.keptn.sh/0.2.2
kind: Shipyard
metadata:
  name: approvals
spec:
  stages:
    - name: dev
      sequences:
        - name: delivery
          tasks:
            - name: approval
              properties: { pass: automatic, warning: automatic }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_services_and_integrations_are_shared_by_every_instance() {
    let servers = Servers::start();
    let extra = [("KEELSON_SERVICES", "approval".to_owned()), ("KEELSON_UNIFORM_INTEGRATION_TTL", "3s".to_owned())];
    let nodes: Vec<Node> = ["n1", "n2", "n3"].iter().map(|node| servers.spawn(node, &extra)).collect();
    let apis: Vec<Api> = nodes.iter().map(|node| node.api.clone()).collect();
    wait_until_owned_by(&apis[0], &["n1", "n2", "n3"], Duration::from_secs(15)).await;
    // Every approval.started, by the task it answers.
    let nats = async_nats::connect(&servers.nats.url).await.unwrap();
    let mut started = nats.subscribe("sh.keptn.event.approval.started").await.unwrap();
    nats.flush().await.unwrap();
    let answers: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let record = std::sync::Arc::clone(&answers);
    tokio::spawn(async move {
        use futures_util::StreamExt as _;
        while let Some(message) = started.next().await {
            let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_default();
            record.lock().unwrap().push(event["triggeredid"].as_str().unwrap_or_default().to_owned());
        }
    });

    let projects = ["a00", "a01", "a02"];
    for (i, project) in projects.iter().enumerate() {
        create_project_with(&apis[i], &servers.git, project, APPROVAL_SHIPYARD).await;
    }
    let mut contexts = Vec::new();
    for round in 0..2 {
        for (i, project) in projects.iter().enumerate() {
            // A passed result: the approval strategy for it is automatic.
            let context = trigger_with(&apis[(i + round) % 3], project, json!({ "result": "pass" })).await;
            contexts.push(((*project).to_owned(), context));
        }
    }
    // Each approval is decided once, by one instance's approval service.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (project, context) in &contexts {
        loop {
            let (status, body) =
                apis[0].get(&format!("/api/controlPlane/v1/sequence/{project}?keptnContext={context}")).await;
            if status == 200 && body["states"][0]["state"] == "finished" {
                assert_eq!(body["states"][0]["stages"][0]["result"], "pass", "{body}");
                break;
            }
            assert!(Instant::now() < deadline, "approval sequence {context} did not finish: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = answers.lock().unwrap().clone();
    assert_eq!(answers.len(), contexts.len(), "one approval.started per approval: {answers:?}");
    assert_eq!(answers.iter().collect::<std::collections::HashSet<_>>().len(), contexts.len());
    for api in &apis {
        let (status, body) = api.get("/api/controlPlane/v1/uniform/registration?name=approval-service").await;
        assert_eq!(status, 200);
        assert_eq!(body.as_array().unwrap().len(), 1, "one shared registration, seen on {}: {body}", api.base);
    }

    // An integration registered on n1 and pinged through n2 stays listed on n3, then expires everywhere.
    let integration = json!({
        "name": "external-service",
        "metadata": { "hostname": "node-1", "integrationversion": "1.0.0", "kubernetesmetadata": { "namespace": "keptn" } },
        "subscriptions": [{ "event": "sh.keptn.event.t1.triggered" }],
    });
    let (status, body) = apis[0].post("/api/controlPlane/v1/uniform/registration", &integration).await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    // Its log entries, sent through two instances, are read through a third.
    for (api, message) in [(&apis[1], "first"), (&apis[0], "second")] {
        let entry = json!({ "logs": [{ "integrationid": id, "message": message }] });
        let (status, body) = api.post("/api/controlPlane/v1/log", &entry).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, logs) = apis[2].get(&format!("/api/controlPlane/v1/log?integrationId={id}")).await;
    assert_eq!(status, 200, "{logs}");
    let mut messages: Vec<&str> =
        logs["logs"].as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    messages.sort_unstable();
    assert_eq!(messages, ["first", "second"], "{logs}");
    let client = reqwest::Client::new();
    let listed = |api: &Api| {
        let api = api.clone();
        async move {
            let (status, body) = api.get("/api/controlPlane/v1/uniform/registration?name=external-service").await;
            assert_eq!(status, 200);
            body.as_array().unwrap().len()
        }
    };
    for _ in 0..8 {
        let ping = client
            .put(format!("{}/api/controlPlane/v1/uniform/registration/{id}/ping", apis[1].base))
            .header("x-token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(ping.status().as_u16(), 200);
        assert_eq!(listed(&apis[2]).await, 1, "pings through n2 keep it alive for n3");
        tokio::time::sleep(Duration::from_millis(750)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for api in &apis {
        while listed(api).await != 0 {
            assert!(Instant::now() < deadline, "an integration that stopped pinging was not removed");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configurations_are_refused_with_one_line() {
    let servers = Servers::start();
    let fast = [("KEELSON_LEASE_TTL", "1s".to_owned())];
    let first = servers.spawn("n1", &fast);

    let refused = |node: &str, extra: &[(&'static str, String)], drop_redis: bool| {
        let mut vars = servers.vars(node);
        vars.extend(extra.iter().cloned());
        if drop_redis {
            vars.retain(|(key, _)| *key != "KEELSON_REDIS_URL");
        }
        let log = servers.log(&format!("{node}-refused"));
        let mut command = member_command(&servers.data_dir(&format!("{node}-refused")), free_port(), &vars, &log);
        let status = command.status().unwrap();
        let output = std::fs::read_to_string(&log).unwrap();
        let last = output.lines().last().unwrap_or_default().to_owned();
        (status.code(), last)
    };

    let (code, line) = refused("n5", &[("KEELSON_SHARDS", "32".into()), fast[0].clone()], false);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("KEELSON_SHARDS") && line.contains("64"), "{line}");

    let (code, line) = refused("n1", &fast, false);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("KEELSON_NODE_ID") && line.contains("n1"), "{line}");

    let (code, line) = refused("n6", &[], true);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains("cluster mode needs KEELSON_REDIS_URL"), "{line}");

    // The running instance was not disturbed.
    let owners = first.api.owners().await;
    assert!(owners.iter().all(|owner| owner.as_deref() == Some("n1")), "{owners:?}");
    assert_eq!(first.api.metric("keelson_shard_losses_total").await, 0.0);
}
