//! Projects, stages and services over HTTP against an in-process Keelson on the embedded backends.

mod support;

use serde_json::{json, Value};
use support::{assert_error, b64, send, TestKeelson, SHIPYARD};

#[actix_rt::test]
async fn health_needs_no_token_and_api_needs_one() {
    let keelson = TestKeelson::start().await;
    let (status, body) = send(keelson.client.get(keelson.url("/health"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "OK");

    let (status, body) = send(keelson.client.get(keelson.url("/api/v1/metadata"))).await;
    assert_error(status, &body, 401);
    let (status, body) =
        send(keelson.client.get(keelson.url("/api/controlPlane/v1/project")).header("x-token", "wrong")).await;
    assert_error(status, &body, 401);
    let (status, body) = send(keelson.client.get(keelson.url("/api/resource-service/v1/project/p/resource"))).await;
    assert_error(status, &body, 401);

    let (status, body) = send(keelson.get("/api/v1/metadata")).await;
    assert_eq!(status, 200);
    assert_eq!(body["keptnversion"], "1.4.5");
    assert_eq!(body["shipyardversion"], "0.2.0");
    assert_eq!(body["keelsonversion"], env!("CARGO_PKG_VERSION"));
}

#[actix_rt::test]
async fn auth_endpoint_checks_the_token_and_throttles_failures() {
    let keelson = TestKeelson::start().await;
    let response = keelson.post("/api/v1/auth").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().is_empty());

    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = keelson.client.post(keelson.url("/api/v1/auth")).header("x-token", "nope").send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    // Two attempts of burst, then throttled.
    assert_eq!(statuses, [401, 401, 429, 429]);
    // Other routes share the budget, answering with the gateway's JSON 429.
    let (status, body) =
        send(keelson.client.get(keelson.url("/api/v1/metadata")).header("x-token", "still-wrong")).await;
    assert_error(status, &body, 429);
    // A valid token still works everywhere and resets the bucket.
    assert_eq!(send(keelson.get("/api/v1/metadata")).await.0, 200);
    assert_eq!(keelson.post("/api/v1/auth").send().await.unwrap().status(), 200);
    let response = keelson.client.post(keelson.url("/api/v1/auth")).header("x-token", "nope").send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[actix_rt::test]
async fn project_lifecycle_with_stages_and_services() {
    let keelson = TestKeelson::start().await;
    let (status, body) = keelson.create_project("sockshop", SHIPYARD).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body, Value::Null, "create answers with an empty body");

    let (status, project) = send(keelson.get("/api/controlPlane/v1/project/sockshop")).await;
    assert_eq!(status, 200);
    assert_eq!(project["projectName"], "sockshop");
    assert_eq!(project["shipyardVersion"], "spec.keptn.sh/0.2.2");
    assert_eq!(project["shipyard"], SHIPYARD);
    assert_eq!(project["isUpstreamAutoProvisioned"], false);
    let stages: Vec<&str> =
        project["stages"].as_array().unwrap().iter().map(|s| s["stageName"].as_str().unwrap()).collect();
    assert_eq!(stages, ["dev", "staging", "production"]);
    assert_eq!(project["stages"][1]["parentStages"], json!(["dev"]));
    assert!(project["creationDate"].as_str().unwrap().parse::<u128>().is_ok());

    let (status, body) = keelson.create_service("sockshop", "carts").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "message": "" }));
    let (status, body) = keelson.create_service("sockshop", "carts").await;
    assert_error(status, &body, 409);

    let (status, stages) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage")).await;
    assert_eq!(status, 200);
    assert_eq!(stages["totalCount"], 3);
    assert_eq!(stages["nextPageKey"], "0");
    assert!(stages.get("pageSize").is_none());
    let names: Vec<&str> =
        stages["stages"].as_array().unwrap().iter().map(|s| s["stageName"].as_str().unwrap()).collect();
    assert_eq!(names, ["dev", "production", "staging"], "stages are sorted by name");

    let (status, stage) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/staging")).await;
    assert_eq!(status, 200);
    assert_eq!(stage["services"][0]["serviceName"], "carts");
    let (status, body) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/qa")).await;
    assert_error(status, &body, 404);

    let (status, services) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/dev/service")).await;
    assert_eq!(status, 200);
    assert_eq!(services["services"][0]["serviceName"], "carts");
    assert_eq!(services["services"][0]["openRemediations"], json!([]));
    let (status, service) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/dev/service/carts")).await;
    assert_eq!(status, 200);
    assert_eq!(service["serviceName"], "carts");
    let (status, body) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/dev/service/orders")).await;
    assert_error(status, &body, 404);

    let (status, body) = send(keelson.delete("/api/controlPlane/v1/project/sockshop/service/carts")).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "message": "" }));
    let (status, body) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/dev/service/carts")).await;
    assert_error(status, &body, 404);
    let (status, body) = send(keelson.delete("/api/controlPlane/v1/project/sockshop/service/carts")).await;
    assert_error(status, &body, 404);

    let (status, body) = send(keelson.delete("/api/controlPlane/v1/project/sockshop")).await;
    assert_eq!(status, 200);
    assert!(body["message"].as_str().unwrap().contains("sockshop"));
    let (status, body) = send(keelson.get("/api/controlPlane/v1/project/sockshop")).await;
    assert_error(status, &body, 404);
    assert_eq!(body["message"], "Project not found: sockshop");
    let (status, body) = send(keelson.delete("/api/controlPlane/v1/project/sockshop")).await;
    assert_error(status, &body, 404);
    assert!(!keelson.data_dir.path().join("git/sockshop.git").exists(), "repository removed");
}

#[actix_rt::test]
async fn project_list_is_sorted_and_paged_keptn_style() {
    let keelson = TestKeelson::start().await;
    for name in ["charlie", "alpha", "bravo"] {
        assert_eq!(keelson.create_project(name, SHIPYARD).await.0, 201);
    }
    let (status, page) = send(keelson.get("/api/controlPlane/v1/project?pageSize=2")).await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        page["projects"].as_array().unwrap().iter().map(|p| p["projectName"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "bravo"]);
    assert_eq!(page["nextPageKey"], "2");
    assert_eq!(page["totalCount"], 3);
    let (_, page) = send(keelson.get("/api/controlPlane/v1/project?pageSize=2&nextPageKey=2")).await;
    assert_eq!(page["projects"][0]["projectName"], "charlie");
    assert_eq!(page["nextPageKey"], "0");
    let (status, body) = send(keelson.get("/api/controlPlane/v1/project?pageSize=-3")).await;
    assert_error(status, &body, 400);
}

#[actix_rt::test]
async fn update_project_replaces_shipyard_but_keeps_stages() {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);

    let reordered =
        "apiVersion: spec.keptn.sh/0.2.3\nspec:\n  stages:\n  - name: production\n  - name: dev\n  - name: staging\n";
    let body = json!({ "name": "sockshop", "shipyard": b64(reordered) });
    let (status, _) = send(keelson.put("/api/controlPlane/v1/project").json(&body)).await;
    assert_eq!(status, 201);
    let (_, project) = send(keelson.get("/api/controlPlane/v1/project/sockshop")).await;
    assert_eq!(project["shipyard"], reordered);
    assert_eq!(project["shipyardVersion"], "spec.keptn.sh/0.2.3");
    assert_eq!(project["stages"][0]["stageName"], "production");
    assert_eq!(project["stages"][0]["services"][0]["serviceName"], "carts", "services survive an update");
    let (_, resource) = send(keelson.get("/api/resource-service/v1/project/sockshop/resource/shipyard.yaml")).await;
    assert_eq!(support::unb64(resource["resourceContent"].as_str().unwrap()), reordered.as_bytes());

    let fewer = "apiVersion: spec.keptn.sh/0.2.3\nspec:\n  stages:\n  - name: dev\n";
    let body = json!({ "name": "sockshop", "shipyard": b64(fewer) });
    let (status, body) = send(keelson.put("/api/controlPlane/v1/project").json(&body)).await;
    assert_error(status, &body, 400);
    assert_eq!(body["message"], "stage name cannot be changed or removed");

    let body = json!({ "name": "nothere", "shipyard": b64(reordered) });
    let (status, body) = send(keelson.put("/api/controlPlane/v1/project").json(&body)).await;
    assert_error(status, &body, 404);
}

/// Each case: a request body for `POST /project` and the expected status.
#[actix_rt::test]
async fn bad_project_input_is_refused_with_keptn_codes_and_leaves_nothing_behind() {
    let keelson = TestKeelson::start().await;
    let valid = b64(SHIPYARD);
    let cases: Vec<(&str, Value, u16)> = vec![
        ("uppercase name", json!({ "name": "SockShop", "shipyard": valid }), 400),
        ("name with underscore", json!({ "name": "sock_shop", "shipyard": valid }), 400),
        ("name too long", json!({ "name": "a".repeat(201), "shipyard": valid }), 400),
        ("empty name", json!({ "name": "", "shipyard": valid }), 400),
        ("missing shipyard", json!({ "name": "p1" }), 400),
        ("bad base64", json!({ "name": "p2", "shipyard": "%%%not-base64" }), 400),
        (
            "old version",
            json!({ "name": "p3", "shipyard": b64("apiVersion: spec.keptn.sh/0.1.7\nspec:\n  stages:\n  - name: dev\n") }),
            400,
        ),
        (
            "no stages",
            json!({ "name": "p4", "shipyard": b64("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages: []\n") }),
            400,
        ),
        (
            "stage name too long for a git branch",
            json!({ "name": "p7", "shipyard": b64(format!("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: {}\n", "s".repeat(300))) }),
            400,
        ),
        (
            "bad stage name",
            json!({ "name": "p5", "shipyard": b64("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: Dev_1\n") }),
            400,
        ),
        (
            "unknown shipyard field",
            json!({ "name": "p6", "shipyard": b64("apiVersion: spec.keptn.sh/0.2.0\nspec:\n  stages:\n  - name: dev\n    sequencez: []\n") }),
            400,
        ),
        ("unknown body field", json!({ "name": "p7", "shipyard": valid, "owner": "me" }), 400),
        (
            "git remote with bad scheme",
            json!({ "name": "p8", "shipyard": valid, "gitCredentials": { "remoteURL": "file:///tmp/x" } }),
            422,
        ),
        (
            "https and ssh together",
            json!({ "name": "p9", "shipyard": valid, "gitCredentials": { "remoteURL": "https://127.0.0.1/x.git", "https": { "token": "t" }, "ssh": { "privateKey": "aGk=" } } }),
            400,
        ),
    ];
    for (case, body, expected) in cases {
        let (status, response) = send(keelson.post("/api/controlPlane/v1/project").json(&body)).await;
        assert_eq!(status, expected, "{case}: {response}");
        assert_error(status, &response, expected);
    }
    let (status, body) = send(
        keelson
            .post("/api/controlPlane/v1/project")
            .header("content-type", "application/json")
            .body("{\"name\": \"p\","),
    )
    .await;
    assert_error(status, &body, 400);
    assert!(body["message"].as_str().unwrap().starts_with("Invalid request format"), "{body}");

    let (_, list) = send(keelson.get("/api/controlPlane/v1/project")).await;
    assert_eq!(list["projects"], json!([]), "no project was half-created");
    let leftovers: Vec<_> = std::fs::read_dir(keelson.data_dir.path().join("git"))
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no repository left behind: {leftovers:?}");

    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    let (status, body) = keelson.create_project("sockshop", SHIPYARD).await;
    assert_error(status, &body, 409);
}

#[actix_rt::test]
async fn bad_service_input_is_refused() {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    for (name, expected) in [("Carts", 400), ("", 400), ("a/b", 400), ("..", 400), (&"s".repeat(44)[..], 400)] {
        let (status, body) = keelson.create_service("sockshop", name).await;
        assert_error(status, &body, expected);
    }
    let (status, body) = keelson.create_service("unknown", "carts").await;
    assert_error(status, &body, 404);
    let (_, stage) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/dev")).await;
    assert_eq!(stage["services"], json!([]));
}

#[actix_rt::test]
async fn oversized_bodies_get_413() {
    let keelson = TestKeelson::start_with(|config| config.max_request_body_bytes = 2048).await;
    let body = json!({ "name": "big", "shipyard": b64("x".repeat(4096)) });
    let (status, response) = send(keelson.post("/api/controlPlane/v1/project").json(&body)).await;
    assert_error(status, &response, 413);
    let (status, _) = keelson.create_project("small", SHIPYARD).await;
    assert_eq!(status, 201, "bodies under the limit still pass");
}

#[actix_rt::test]
async fn unknown_paths_answer_json_404() {
    let keelson = TestKeelson::start().await;
    let (status, body) = send(keelson.get("/api/controlPlane/v1/nothing")).await;
    assert_error(status, &body, 404);
    let (status, body) = send(keelson.client.get(keelson.url("/nope"))).await;
    assert_error(status, &body, 404);
}

#[actix_rt::test]
async fn lifecycle_events_are_published_and_stored() {
    let keelson = TestKeelson::start().await;
    let mut events = keelson.server.control_plane.in_process_bus.as_ref().unwrap().subscribe();
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    assert_eq!(send(keelson.delete("/api/controlPlane/v1/project/sockshop/service/carts")).await.0, 200);
    assert_eq!(send(keelson.delete("/api/controlPlane/v1/project/sockshop")).await.0, 200);

    let mut published = Vec::new();
    while let Ok(event) = events.try_recv() {
        published.push(event);
    }
    let types: Vec<&str> = published.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "sh.keptn.event.project.create.started",
            "sh.keptn.event.project.create.finished",
            "sh.keptn.event.service.create.started",
            "sh.keptn.event.service.create.finished",
            "sh.keptn.event.service.delete.started",
            "sh.keptn.event.service.delete.finished",
            "sh.keptn.event.project.delete.finished",
        ]
    );
    let created = &published[1];
    assert_eq!(created.data["status"], "succeeded");
    assert_eq!(created.data["result"], "pass");
    assert_eq!(created.data["createdProject"]["projectName"], "sockshop");
    assert_eq!(created.data["createdProject"]["shipyard"], b64(SHIPYARD));
    assert_eq!(published[0].shkeptncontext, created.shkeptncontext, "started and finished share a context");
    assert_ne!(published[2].shkeptncontext, created.shkeptncontext, "each operation has a fresh context");
    assert_eq!(published[3].data["service"], "carts");
    assert_eq!(created.source, "shipyard-controller");

    let stored = keelson
        .server
        .control_plane
        .storage
        .events
        .find(&keelson::store::EventQuery { project: Some("sockshop".into()), limit: 100, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(stored.len(), published.len(), "every emitted event is stored once");
    for event in &published {
        assert!(stored.iter().any(|s| s.id == event.id), "event {} stored", event.event_type);
    }
}

#[actix_rt::test]
async fn failed_project_create_emits_errored_finished() {
    let keelson = TestKeelson::start_with(|config| config.git_allowed_hosts = vec!["127.0.0.1".to_owned()]).await;
    let mut events = keelson.server.control_plane.in_process_bus.as_ref().unwrap().subscribe();
    // An upstream nobody listens on: the create fails after the started event.
    let port = support::servers::free_port();
    let body = json!({
        "name": "broken",
        "shipyard": b64(SHIPYARD),
        "gitCredentials": { "remoteURL": format!("http://127.0.0.1:{port}/repo.git"), "user": "u", "https": { "token": "t" } }
    });
    let (status, response) = send(keelson.post("/api/controlPlane/v1/project").json(&body)).await;
    assert_error(status, &response, 424);
    let started = events.try_recv().unwrap();
    let finished = events.try_recv().unwrap();
    assert_eq!(started.event_type, "sh.keptn.event.project.create.started");
    assert_eq!(finished.event_type, "sh.keptn.event.project.create.finished");
    assert_eq!(finished.data["status"], "errored");
    assert_eq!(finished.data["result"], "fail");
    assert_eq!(send(keelson.get("/api/controlPlane/v1/project/broken")).await.0, 404);
    assert!(!keelson.data_dir.path().join("git/broken.git").exists());
}

#[actix_rt::test]
async fn projects_survive_a_restart() {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let body = json!({ "resources": [{ "resourceURI": "slo.yaml", "resourceContent": b64("objectives: []") }] });
    let (status, _) =
        send(keelson.post("/api/resource-service/v1/project/sockshop/stage/dev/service/carts/resource").json(&body))
            .await;
    assert_eq!(status, 201);
    let config = support::test_config(keelson.data_dir.path());
    let data_dir = keelson.stop().await;

    let keelson = TestKeelson::start_in(data_dir, config).await;
    let (status, service) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/dev/service/carts")).await;
    assert_eq!(status, 200);
    assert_eq!(service["serviceName"], "carts");
    let (status, resource) =
        send(keelson.get("/api/resource-service/v1/project/sockshop/stage/dev/service/carts/resource/slo.yaml")).await;
    assert_eq!(status, 200);
    assert_eq!(support::unb64(resource["resourceContent"].as_str().unwrap()), b"objectives: []");
}

#[actix_rt::test]
async fn json_bodies_need_no_content_type_header() {
    let keelson = TestKeelson::start().await;
    let body = json!({ "name": "plain", "shipyard": b64(SHIPYARD) }).to_string();
    let (status, response) = send(keelson.post("/api/controlPlane/v1/project").body(body)).await;
    assert_eq!(status, 201, "{response}");
}

#[actix_rt::test]
async fn repositories_without_a_record_are_moved_aside_at_start() {
    let keelson = TestKeelson::start().await;
    let config = support::test_config(keelson.data_dir.path());
    let data_dir = keelson.stop().await;
    // A repository whose record is gone, e.g. because the record store was reset.
    let ghost = data_dir.path().join("git/ghost.git");
    git2::Repository::init_bare(&ghost).unwrap();
    std::fs::write(ghost.join("marker"), "keep me").unwrap();

    let keelson = TestKeelson::start_in(data_dir, config).await;
    assert!(!keelson.data_dir.path().join("git/ghost.git").exists());
    let lost_and_found: Vec<_> = std::fs::read_dir(keelson.data_dir.path().join("git/lost+found"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    assert_eq!(lost_and_found.len(), 1);
    assert_eq!(std::fs::read_to_string(lost_and_found[0].join("marker")).unwrap(), "keep me", "nothing is deleted");
    assert_eq!(keelson.create_project("ghost", SHIPYARD).await.0, 201, "the name is free again");
}

#[actix_rt::test]
async fn metrics_count_requests_by_route() {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("metered", SHIPYARD).await.0, 201);
    assert_eq!(send(keelson.get("/api/controlPlane/v1/project/metered")).await.0, 200);
    let text = keelson.client.get(keelson.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines().any(|line| line.starts_with("keelson_http_requests_total")
            && line.contains("route=\"/api/controlPlane/v1/project/{project}\"")
            && line.contains("method=\"GET\"")
            && line.contains("status=\"200\"")),
        "per-route counter missing:\n{text}"
    );
    assert!(text.contains("keelson_http_request_duration_seconds_bucket"), "latency histogram missing");
}

#[actix_rt::test]
async fn a_missing_repository_does_not_keep_the_other_projects_from_starting() {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("damaged", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_project("healthy", SHIPYARD).await.0, 201);
    let config = support::test_config(keelson.data_dir.path());
    let data_dir = keelson.stop().await;
    std::fs::remove_dir_all(data_dir.path().join("git/damaged.git")).unwrap();

    let keelson = TestKeelson::start_in(data_dir, config).await;
    let (status, body) = send(keelson.get("/api/controlPlane/v1/project/healthy")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(keelson.get("/api/resource-service/v1/project/healthy/resource/shipyard.yaml")).await;
    assert_eq!(status, 200, "{body}");
    // The damaged project is still listed; its files answer an error, not a crash.
    let (status, _) = send(keelson.get("/api/controlPlane/v1/project/damaged")).await;
    assert_eq!(status, 200);
    let (status, body) = send(keelson.get("/api/resource-service/v1/project/damaged/resource/shipyard.yaml")).await;
    assert!((400..600).contains(&status) && status != 500, "{status} {body}");
}

#[cfg(unix)]
#[actix_rt::test]
async fn a_data_dir_readable_by_others_is_restricted_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let data_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(data_dir.path().join("keelson.sqlite"), b"").unwrap();
    std::fs::set_permissions(data_dir.path().join("keelson.sqlite"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = support::test_config(data_dir.path());
    let keelson = TestKeelson::start_in(data_dir, config).await;
    let mode = |name: &str| std::fs::metadata(keelson.data_dir.path().join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("keelson.sqlite"), 0o600);
    assert_eq!(mode("history.sqlite"), 0o600);
}

#[actix_rt::test]
async fn a_request_body_that_never_arrives_gets_408() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let keelson =
        TestKeelson::start_with(|config| config.request_body_timeout = std::time::Duration::from_secs(1)).await;
    let address = keelson.base.trim_start_matches("http://").to_owned();
    let requests = [
        ("/api/v1/event", "content-length: 100\r\n\r\n{\"na".to_owned()),
        ("/api/controlPlane/v1/project", "content-length: 100\r\n\r\n{\"na".to_owned()),
        // A chunked body that trickles: the connection must be closed, not drained for ever.
        ("/api/v1/event", "transfer-encoding: chunked\r\n\r\n3\r\n{\"n\r\n".to_owned()),
    ];
    for (path, rest) in requests {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nx-token: test-token\r\ncontent-type: application/json\r\n{rest}"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        // Read until the server closes the connection, sending a chunk now and then as a slow client does.
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            let mut buffer = [0u8; 4096];
            loop {
                tokio::select! {
                    count = stream.read(&mut buffer) => {
                        let count = count.unwrap_or(0);
                        if count == 0 {
                            break;
                        }
                        answer.extend_from_slice(&buffer[..count]);
                    }
                    _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {
                        if rest.starts_with("transfer-encoding") {
                            let _ = stream.write_all(b"1\r\na\r\n").await;
                        }
                    }
                }
            }
        })
        .await;
        assert!(read.is_ok(), "{path}: the connection was still open 10s after a stalled body");
        let answer = String::from_utf8_lossy(&answer).to_string();
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("request body not received in time"), "{path}: {answer}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{path}: {:?}", started.elapsed());
    }
    // A normal request on the same server still works.
    assert_eq!(keelson.create_project("after", SHIPYARD).await.0, 201);
}
