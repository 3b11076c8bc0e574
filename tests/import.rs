//! `keelson import` against a Keptn 1.x installation's data: a MongoDB-compatible server (SecantusDB)
//! loaded with documents in Keptn's layout (`keptnProjectsMV`, the datastore's per-project history
//! collections), a git upstream holding the project as Keptn's resource-service left it, and a
//! `kubectl get secrets -o json` dump. The binary is run as an operator would, against a running
//! Keelson — once with the embedded history, once with the MongoDB history.

mod support;

use std::path::Path;
use std::process::Command as StdCommand;

use base64::Engine as _;
use mongodb::bson::{doc, oid::ObjectId, Document};
use serde_json::{json, Value};
use support::git_http::GitHttpServer;
use support::servers::{self, ChildServer};
use support::{b64, send, TestKeelson, SHIPYARD};

const USER: &str = "keptn-user";
const TOKEN: &str = "upstream-token-456";
const CREATED: &str = "1690000000000000000";
const VALUES: &str = "image: docker.io/keptnexamples/carts:0.13.1\n";

/// Pushes a project in the layout Keptn's resource-service writes: `shipyard.yaml` and
/// `metadata.yaml` on `master`, one branch per stage with the service's directory.
fn keptn_upstream(git: &GitHttpServer) -> String {
    let url = git.create_repo("sockshop");
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let status = StdCommand::new("git")
            .current_dir(work.path())
            .args(["-c", "user.name=keptn", "-c", "user.email=keptn@localhost"])
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?}");
    };
    run(&["init", "--quiet", "--initial-branch=master"]);
    std::fs::write(work.path().join("shipyard.yaml"), SHIPYARD).unwrap();
    std::fs::write(work.path().join("metadata.yaml"), "projectname: sockshop\n").unwrap();
    run(&["add", "."]);
    run(&["commit", "--quiet", "-m", "Added shipyard.yaml"]);
    for stage in ["dev", "staging", "production"] {
        run(&["checkout", "--quiet", "-b", stage, "master"]);
        std::fs::create_dir_all(work.path().join("carts/helm")).unwrap();
        std::fs::write(work.path().join("carts/helm/values.yaml"), VALUES).unwrap();
        std::fs::write(work.path().join("carts/metadata.yaml"), "servicename: carts\n").unwrap();
        run(&["add", "."]);
        run(&["commit", "--quiet", "-m", "Added service carts"]);
    }
    run(&["push", "--quiet", git.repo_path("sockshop").to_str().unwrap(), "--all"]);
    url
}

fn event(id: &str, context: &str, event_type: &str, second: u32, data: Document) -> Document {
    doc! {
        "_id": ObjectId::new(), "id": id, "shkeptncontext": context, "type": event_type, "source": "shipyard-controller",
        "specversion": "1.0", "time": format!("2023-05-01T10:00:{second:02}.000Z"), "data": data,
    }
}

/// The history of two contexts, in Keptn's datastore layout, stored in a shuffled order.
fn history() -> Vec<Document> {
    let scope = |stage: &str| doc! { "project": "sockshop", "stage": stage, "service": "carts" };
    let mut evaluation = scope("dev");
    evaluation.insert("result", "pass");
    vec![
        event("e4", "c1", "sh.keptn.event.deployment.finished", 4, scope("dev")),
        event("e1", "c1", "sh.keptn.event.dev.delivery.triggered", 1, scope("dev")),
        event("e3", "c1", "sh.keptn.event.deployment.started", 3, scope("dev")),
        event("e2", "c1", "sh.keptn.event.deployment.triggered", 2, scope("dev")),
        event("e5", "c1", "sh.keptn.event.dev.delivery.finished", 5, scope("dev")),
        event("e7", "c2", "sh.keptn.event.evaluation.triggered", 7, scope("dev")),
        event("e6", "c2", "sh.keptn.event.dev.evaluation.triggered", 6, scope("dev")),
        {
            let mut finished = event("e8", "c2", "sh.keptn.event.evaluation.finished", 8, evaluation);
            finished.insert("triggeredid", "e7");
            finished
        },
    ]
}

fn invalidation() -> Document {
    let mut invalidated = event(
        "e9",
        "c2",
        "sh.keptn.event.evaluation.invalidated",
        9,
        doc! { "project": "sockshop", "stage": "dev", "service": "carts" },
    );
    invalidated.insert("triggeredid", "e7");
    invalidated
}

async fn load_keptn_database(url: &str, upstream: &str) {
    let database = mongodb::Client::with_uri_str(url).await.unwrap().database("keptn");
    let stages: Vec<Document> = ["dev", "staging", "production"]
        .iter()
        .map(|stage| doc! { "stageName": *stage, "parentStages": [], "services": [{ "serviceName": "carts", "creationDate": CREATED, "lastEventTypes": {} }] })
        .collect();
    database
        .collection::<Document>("keptnProjectsMV")
        .insert_many([
            doc! {
                "projectName": "sockshop", "creationDate": CREATED, "shipyard": SHIPYARD, "shipyardVersion": "spec.keptn.sh/0.2.2",
                "gitCredentials": { "remoteURL": upstream, "user": USER, "https": { "insecureSkipTLS": false } },
                "isUpstreamAutoProvisioned": false, "stages": stages,
            },
            // Keptn knows no upstream for this one and the dump has no credentials: it cannot come over.
            doc! { "projectName": "orphan", "creationDate": CREATED, "shipyard": SHIPYARD, "stages": [] },
        ])
        .await
        .unwrap();
    let mut project_history = history();
    project_history.push(invalidation());
    // Not an event: left out, and counted as such.
    project_history.push(doc! { "_id": ObjectId::new(), "note": "not an event" });
    database.collection::<Document>("sockshop").insert_many(project_history).await.unwrap();
    database.collection::<Document>("sockshop-invalidatedEvents").insert_one(invalidation()).await.unwrap();
    database
        .collection::<Document>("sockshop-rootEvents")
        .insert_one(event("e1", "c1", "sh.keptn.event.dev.delivery.triggered", 1, doc! { "project": "sockshop" }))
        .await
        .unwrap();
    database
        .collection::<Document>("keptnUnmappedEvents")
        .insert_one(event("u1", "c9", "sh.keptn.event.get-sli.triggered", 10, doc! {}))
        .await
        .unwrap();
    database
        .collection::<Document>("sockshop-sequence-execution")
        .insert_one(doc! { "_id": "se1", "status": { "state": "started" }, "scope": { "project": "sockshop" } })
        .await
        .unwrap();
}

fn secrets_dump(dir: &Path, upstream: &str) -> std::path::PathBuf {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let credentials =
        json!({ "remoteURL": upstream, "user": USER, "https": { "token": TOKEN, "insecureSkipTLS": false } });
    let dump = json!({ "apiVersion": "v1", "kind": "List", "items": [
        { "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": { "name": "git-credentials-sockshop", "namespace": "keptn" },
          "data": { "git-credentials": b64(&credentials.to_string()) } },
        { "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": { "name": "dynatrace", "namespace": "keptn", "labels": {
              "app.kubernetes.io/managed-by": "keptn-secret-service", "app.kubernetes.io/scope": "keptn-webhook-service" } },
          "data": { "DT_API_TOKEN": b64("dt0c01.secret"), "DT_TENANT": b64("abc.live.dynatrace.com") } },
        { "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
          "metadata": { "name": "keptn-api-token", "namespace": "keptn" },
          "data": { "keptn-api-token": b64("old-token") } },
    ]});
    let path = dir.join("secrets.json");
    std::fs::write(&path, dump.to_string()).unwrap();
    path
}

/// Runs `keelson import` without blocking the thread the in-process Keelson runs on.
async fn import(keelson: &TestKeelson, token: &str, args: &[&str]) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_keelson"))
        .arg("import")
        .args(args)
        .args(["--endpoint", &keelson.base])
        .env("KEELSON_API_TOKEN", token)
        .env("KEELSON_DATA_DIR", std::env::temp_dir().join("keelson-import-unused"))
        .env_remove("KEELSON_CONFIG")
        .output()
        .await
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn events_of(keelson: &TestKeelson, query: &str) -> Value {
    let (status, body) = send(keelson.get(&format!("/api/mongodb-datastore/event?{query}"))).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn moves_a_keptn_installation(history_mongodb: Option<&ChildServer>) {
    let mongo = servers::secantus();
    let keptn_url = format!("mongodb://127.0.0.1:{}/keptn", mongo.port);
    let git = GitHttpServer::start(USER, TOKEN);
    let upstream = keptn_upstream(&git);
    load_keptn_database(&keptn_url, &upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let dump = secrets_dump(dir.path(), &upstream);
    let history_url = history_mongodb.map(|server| server.url.clone());
    let keelson = TestKeelson::start_with(|config| {
        config.git_allowed_hosts = vec!["127.0.0.1".to_owned()];
        config.mongodb_url = history_url;
    })
    .await;

    let args = ["--from-mongodb", &keptn_url, "--secrets", dump.to_str().unwrap()];
    let (code, stdout, stderr) = import(&keelson, &keelson.token, &args).await;
    // The orphan cannot come over; everything else does, and the exit code says something failed.
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("1 item(s) failed"), "{stderr}");
    assert!(stdout.contains("fail  project orphan: project orphan has no git upstream in Keptn"), "{stdout}");
    assert!(stdout.contains("ok    project sockshop: taken over from"), "{stdout}");
    assert!(stdout.contains("ok    secret keptn-webhook-service/dynatrace: imported (2 key(s))"), "{stdout}");
    assert!(
        stdout.contains("ok    events sockshop (sockshop): 9 sent, 1 document(s) that are not events left out"),
        "{stdout}"
    );
    assert!(stdout.contains("ok    events sockshop-invalidatedEvents (sockshop): 1 sent"), "{stdout}");
    assert!(stdout.contains("ok    events keptnUnmappedEvents (events without a project): 1 sent"), "{stdout}");
    assert!(stdout.contains("note  project sockshop: 1 sequence execution(s) were still open in Keptn"), "{stdout}");
    for secret in [TOKEN, "dt0c01.secret"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "a secret was printed");
    }

    // The project: Keptn's stages, services and creation date, its files from the upstream.
    let (status, project) = send(keelson.get("/api/controlPlane/v1/project/sockshop")).await;
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["creationDate"], CREATED);
    assert_eq!(project["gitCredentials"]["remoteURL"], upstream.as_str());
    assert!(project["gitCredentials"]["https"].get("token").is_none(), "{project}");
    let stages: Vec<&str> =
        project["stages"].as_array().unwrap().iter().map(|s| s["stageName"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dev", "staging", "production"]);
    for stage in project["stages"].as_array().unwrap() {
        assert_eq!(stage["services"][0]["serviceName"], "carts", "{stage}");
    }
    let (status, resource) = send(
        keelson
            .get("/api/resource-service/v1/project/sockshop/stage/staging/service/carts/resource/helm%2Fvalues.yaml"),
    )
    .await;
    assert_eq!(status, 200, "{resource}");
    assert_eq!(support::unb64(resource["resourceContent"].as_str().unwrap()), VALUES.as_bytes());
    // Writes go to the upstream with the imported token.
    let update = json!({ "resources": [{ "resourceURI": "helm/values.yaml", "resourceContent": b64("image: carts:0.14.0\n") }] });
    let (status, body) =
        send(keelson.put("/api/resource-service/v1/project/sockshop/stage/dev/service/carts/resource").json(&update))
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(git.read_file("sockshop", "dev", "carts/helm/values.yaml").as_deref(), Some("image: carts:0.14.0\n"));
    // And it runs sequences.
    let context = keelson.trigger_delivery("sockshop", "carts").await;
    keelson.wait_for_open("sockshop", "deployment", &context).await;

    // The history: every event, newest first, the earliest of each context as its root, the
    // invalidated evaluation left out where asked.
    let all = events_of(&keelson, "project=sockshop&pageSize=100&beforeTime=2024-01-01T00:00:00Z").await;
    let ids: Vec<&str> = all["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["e9", "e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1"]);
    let roots = events_of(&keelson, "project=sockshop&root=true&beforeTime=2024-01-01T00:00:00Z").await;
    let root_ids: Vec<&str> = roots["events"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(root_ids, ["e6", "e1"]);
    let (status, valid) = send(keelson.get(
        "/api/mongodb-datastore/event/type/sh.keptn.event.evaluation.finished?filter=data.project:sockshop&excludeInvalidated=true",
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(valid["events"].as_array().unwrap().len(), 0, "{valid}");
    let unmapped = events_of(&keelson, "keptnContext=c9").await;
    assert_eq!(unmapped["events"][0]["id"], "u1", "{unmapped}");

    // Secrets by name and scope; the upstream's credentials and the old API token are not secrets here.
    let (_, secrets) = send(keelson.get("/api/secrets/v1/secret")).await;
    let listed = secrets["Secrets"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{secrets}");
    assert_eq!(listed[0]["name"], "dynatrace");
    assert_eq!(listed[0]["scope"], "keptn-webhook-service");
    assert_eq!(listed[0]["keys"], json!(["DT_API_TOKEN", "DT_TENANT"]));

    // Once more, for the one project: nothing doubles, the secret is refreshed.
    let (code, stdout, stderr) =
        import(&keelson, &keelson.token, &[&args[..], &["--project", "sockshop"][..]].concat()).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("skip  project sockshop: already in Keelson"), "{stdout}");
    assert!(stdout.contains("ok    secret keptn-webhook-service/dynatrace: updated (2 key(s))"), "{stdout}");
    let again = events_of(&keelson, "project=sockshop&pageSize=100&beforeTime=2024-01-01T00:00:00Z").await;
    assert_eq!(again["events"].as_array().unwrap().len(), 9, "{again}");
}

#[actix_rt::test]
async fn moves_a_keptn_installation_into_the_embedded_history() {
    moves_a_keptn_installation(None).await;
}

#[actix_rt::test]
async fn moves_a_keptn_installation_into_a_mongodb_history() {
    let history = servers::secantus();
    moves_a_keptn_installation(Some(&history)).await;
}

#[actix_rt::test]
async fn bad_sources_stop_the_import_with_one_line() {
    let keelson = TestKeelson::start().await;
    let closed = servers::free_port();
    let (code, stdout, stderr) =
        import(&keelson, &keelson.token, &["--from-mongodb", &format!("mongodb://127.0.0.1:{closed}/keptn")]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("Keptn's MongoDB does not answer"), "{stderr}");

    let mongo = servers::secantus();
    let keptn_url = format!("mongodb://127.0.0.1:{}/keptn", mongo.port);
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("secrets.json");
    std::fs::write(&bad, "apiVersion: v1\nkind: List\n").unwrap();
    let (code, _, stderr) =
        import(&keelson, &keelson.token, &["--from-mongodb", &keptn_url, "--secrets", bad.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("secrets.json: not JSON"), "{stderr}");

    let (code, _, stderr) = import(&keelson, "wrong-token", &["--from-mongodb", &keptn_url]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("refused the API token"), "{stderr}");

    // The import endpoints refuse what is not importable, with {code, message}.
    let (status, body) = send(
        keelson.post("/api/v1/import/project").json(&json!({ "name": "x", "gitCredentials": { "remoteURL": "" } })),
    )
    .await;
    support::assert_error(status, &body, 400);
    let (status, body) =
        send(keelson.post("/api/v1/import/events").json(&json!({ "events": [{ "type": "t" }] }))).await;
    support::assert_error(status, &body, 400);
    let too_many: Vec<Value> = (0..1001).map(|i| json!({ "id": format!("e{i}"), "type": "t" })).collect();
    let (status, body) = send(keelson.post("/api/v1/import/events").json(&json!({ "events": too_many }))).await;
    support::assert_error(status, &body, 400);
    let (_, listed) = send(keelson.get("/api/mongodb-datastore/event?keptnContext=&type=t")).await;
    assert_eq!(listed["events"].as_array().map(Vec::len).unwrap_or(0), 0, "nothing of a refused request was stored");
}

#[actix_rt::test]
async fn an_upstream_without_a_keptn_project_is_refused_and_leaves_nothing() {
    let git = GitHttpServer::start(USER, TOKEN);
    let url = git.create_repo("plain");
    git.commit_directly_init("plain");
    let keelson = TestKeelson::start_with(|config| config.git_allowed_hosts = vec!["127.0.0.1".to_owned()]).await;
    let body = json!({ "name": "plain", "services": ["carts"],
        "gitCredentials": { "remoteURL": url, "user": USER, "https": { "token": TOKEN } } });
    let (status, answer) = send(keelson.post("/api/v1/import/project").json(&body)).await;
    support::assert_error(status, &answer, 422);
    assert!(answer["message"].as_str().unwrap().contains("no shipyard.yaml on master"), "{answer}");
    let (status, _) = send(keelson.get("/api/controlPlane/v1/project/plain")).await;
    assert_eq!(status, 404);
    // Nothing left behind: a later import of the same name starts from scratch.
    git.commit_directly("plain", "master", "shipyard.yaml", SHIPYARD);
    let (status, answer) = send(keelson.post("/api/v1/import/project").json(&body)).await;
    support::assert_error(status, &answer, 422);
    assert!(answer["message"].as_str().unwrap().contains("no branch for stage dev"), "{answer}");
}
