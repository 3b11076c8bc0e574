//! Projects with a git upstream served by `git http-backend` on 127.0.0.1.

mod support;

use serde_json::json;
use support::git_http::GitHttpServer;
use support::{assert_error, b64, send, unb64, TestKeelson, SHIPYARD};

const USER: &str = "keelson-user";
const TOKEN: &str = "upstream-token-123";

fn credentials(url: &str, token: &str) -> serde_json::Value {
    json!({ "remoteURL": url, "user": USER, "https": { "token": token, "insecureSkipTLS": false } })
}

async fn create_with_upstream(keelson: &TestKeelson, name: &str, url: &str, token: &str) -> (u16, serde_json::Value) {
    let body = json!({ "name": name, "shipyard": b64(SHIPYARD), "gitCredentials": credentials(url, token) });
    send(keelson.post("/api/controlPlane/v1/project").json(&body)).await
}

/// Keelson with the test's git server (on loopback) allowed as an upstream.
async fn keelson_allowing_loopback_upstreams() -> TestKeelson {
    TestKeelson::start_with(|config| config.git_allowed_hosts = vec!["127.0.0.1".to_owned()]).await
}

#[actix_rt::test]
async fn project_is_pushed_and_every_write_reaches_the_upstream() {
    let git = GitHttpServer::start(USER, TOKEN);
    let url = git.create_repo("sockshop");
    let keelson = keelson_allowing_loopback_upstreams().await;

    let (status, body) = create_with_upstream(&keelson, "sockshop", &url, TOKEN).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(git.branches("sockshop"), ["dev", "master", "production", "staging"]);
    assert_eq!(git.read_file("sockshop", "master", "shipyard.yaml").as_deref(), Some(SHIPYARD));

    let (_, project) = send(keelson.get("/api/controlPlane/v1/project/sockshop")).await;
    assert_eq!(project["gitCredentials"]["remoteURL"], url);
    assert_eq!(project["gitCredentials"]["user"], USER);
    assert!(!project.to_string().contains(TOKEN), "the token never leaves keelson: {project}");

    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let body = json!({ "resources": [{ "resourceURI": "slo.yaml", "resourceContent": b64("objectives: []") }] });
    let (status, written) =
        send(keelson.post("/api/resource-service/v1/project/sockshop/stage/dev/service/carts/resource").json(&body))
            .await;
    assert_eq!(status, 201, "{written}");
    assert_eq!(written["metadata"]["upstreamURL"], url);
    assert_eq!(git.read_file("sockshop", "dev", "carts/slo.yaml").as_deref(), Some("objectives: []"));

    // Someone else changes the upstream: reads see it, and the next write builds on it.
    git.commit_directly("sockshop", "dev", "carts/sli.yaml", "indicators: {}");
    let (status, read) =
        send(keelson.get("/api/resource-service/v1/project/sockshop/stage/dev/service/carts/resource/sli.yaml")).await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(unb64(read["resourceContent"].as_str().unwrap()), b"indicators: {}");

    git.commit_directly("sockshop", "dev", "carts/other.yaml", "x: 1");
    let body = json!({ "resources": [{ "resourceURI": "slo.yaml", "resourceContent": b64("objectives: [1]") }] });
    let (status, _) =
        send(keelson.put("/api/resource-service/v1/project/sockshop/stage/dev/service/carts/resource").json(&body))
            .await;
    assert_eq!(status, 200);
    assert_eq!(git.read_file("sockshop", "dev", "carts/slo.yaml").as_deref(), Some("objectives: [1]"));
    assert_eq!(git.read_file("sockshop", "dev", "carts/other.yaml").as_deref(), Some("x: 1"), "upstream change kept");
}

#[actix_rt::test]
async fn upstream_failures_map_to_keptn_codes_and_create_nothing() {
    let git = GitHttpServer::start(USER, TOKEN);
    let keelson = keelson_allowing_loopback_upstreams().await;

    let url = git.create_repo("wrongtoken");
    let (status, body) = create_with_upstream(&keelson, "wrongtoken", &url, "not-the-token").await;
    assert_error(status, &body, 424);
    assert!(!body.to_string().contains("not-the-token"), "no secret in the error: {body}");

    let (status, body) = create_with_upstream(&keelson, "missing", &git.url("does-not-exist"), TOKEN).await;
    assert_error(status, &body, 404);

    let url = git.create_repo("taken");
    git.commit_directly_init("taken");
    let (status, body) = create_with_upstream(&keelson, "taken", &url, TOKEN).await;
    assert_error(status, &body, 409);

    let (_, list) = send(keelson.get("/api/controlPlane/v1/project")).await;
    assert_eq!(list["projects"], json!([]));
    assert!(git.branches("wrongtoken").is_empty(), "nothing pushed with a wrong token");
}

#[actix_rt::test]
async fn an_upstream_with_foreign_history_is_refused_without_losing_anything() {
    let git = GitHttpServer::start(USER, TOKEN);
    let url = git.create_repo("foreign");
    git.commit_directly_init("foreign");
    let keelson = keelson_allowing_loopback_upstreams().await;
    assert_eq!(keelson.create_project("foreign", SHIPYARD).await.0, 201);

    let body = json!({ "name": "foreign", "gitCredentials": credentials(&url, TOKEN) });
    let (status, response) = send(keelson.put("/api/controlPlane/v1/project").json(&body)).await;
    assert_error(status, &response, 409);
    let (status, shipyard) = send(keelson.get("/api/resource-service/v1/project/foreign/resource/shipyard.yaml")).await;
    assert_eq!(status, 200);
    assert_eq!(unb64(shipyard["resourceContent"].as_str().unwrap()), SHIPYARD.as_bytes());
    assert_eq!(git.read_file("foreign", "master", "README.md").as_deref(), Some("existing"), "upstream untouched");
    let (_, project) = send(keelson.get("/api/controlPlane/v1/project/foreign")).await;
    assert!(project.get("gitCredentials").is_none());
}

#[actix_rt::test]
async fn update_project_connects_an_upstream_later() {
    let git = GitHttpServer::start(USER, TOKEN);
    let url = git.create_repo("later");
    let keelson = keelson_allowing_loopback_upstreams().await;
    assert_eq!(keelson.create_project("later", SHIPYARD).await.0, 201);

    let body = json!({ "name": "later", "gitCredentials": credentials(&url, "wrong") });
    let (status, response) = send(keelson.put("/api/controlPlane/v1/project").json(&body)).await;
    assert_error(status, &response, 424);
    let (_, project) = send(keelson.get("/api/controlPlane/v1/project/later")).await;
    assert!(project.get("gitCredentials").is_none(), "a failed update changes nothing");

    let body = json!({ "name": "later", "gitCredentials": credentials(&url, TOKEN) });
    let (status, response) = send(keelson.put("/api/controlPlane/v1/project").json(&body)).await;
    assert_eq!(status, 201, "{response}");
    assert_eq!(git.branches("later"), ["dev", "master", "production", "staging"]);
    assert_eq!(git.read_file("later", "master", "shipyard.yaml").as_deref(), Some(SHIPYARD));
    let (_, project) = send(keelson.get("/api/controlPlane/v1/project/later")).await;
    assert_eq!(project["gitCredentials"]["remoteURL"], url);
}

#[actix_rt::test]
async fn a_missing_repository_is_cloned_again_from_its_upstream_at_start() {
    let git = GitHttpServer::start(USER, TOKEN);
    let url = git.create_repo("sockshop");
    let keelson = keelson_allowing_loopback_upstreams().await;
    let (status, body) = create_with_upstream(&keelson, "sockshop", &url, TOKEN).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let config = support::test_config(keelson.data_dir.path());
    let data_dir = keelson.stop().await;
    // The upstream token is sealed at rest: no file of the data dir holds it in plain text.
    for entry in std::fs::read_dir(data_dir.path()).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(TOKEN), "{} holds the token", entry.path().display());
        }
    }
    std::fs::remove_dir_all(data_dir.path().join("git/sockshop.git")).unwrap();

    let keelson = TestKeelson::start_in(data_dir, config).await;
    assert!(keelson.data_dir.path().join("git/sockshop.git").exists(), "cloned again");
    let (status, body) = send(keelson.get("/api/resource-service/v1/project/sockshop/resource/shipyard.yaml")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(unb64(body["resourceContent"].as_str().unwrap()), SHIPYARD.as_bytes());
    let (status, body) = send(keelson.get("/api/controlPlane/v1/project/sockshop/stage/dev/service/carts")).await;
    assert_eq!(status, 200, "{body}");
}

#[actix_rt::test]
async fn upstreams_on_loopback_or_metadata_addresses_are_refused_unless_allowed() {
    let git = GitHttpServer::start(USER, TOKEN);
    let url = git.create_repo("sockshop");
    let keelson = TestKeelson::start().await;
    for (name, remote) in [
        ("a", url.as_str()),
        ("b", "http://169.254.169.254/latest/meta-data/repo.git"),
        ("c", "https://[::ffff:127.0.0.1]/repo.git"),
        ("d", "https://kubernetes.default.svc/repo.git"),
        ("e", "https://localhost/repo.git"),
    ] {
        let (status, body) = create_with_upstream(&keelson, name, remote, TOKEN).await;
        assert_error(status, &body, 422);
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("Invalid RemoteURL") && message.contains("git_allowed_hosts"), "{message}");
        assert!(!message.contains(TOKEN));
    }
    // A proxy on loopback is refused as well.
    let body = json!({ "name": "f", "shipyard": b64(SHIPYARD), "gitCredentials": {
        "remoteURL": "https://git.invalid/repo.git", "user": USER,
        "https": { "token": TOKEN, "proxy": { "url": "127.0.0.1:3128", "scheme": "http" } } } });
    let (status, body) = send(keelson.post("/api/controlPlane/v1/project").json(&body)).await;
    assert_error(status, &body, 422);
    assert!(body["message"].as_str().unwrap().contains("git_allowed_hosts"), "{body}");
    let (status, _) = send(keelson.get("/api/controlPlane/v1/project/a")).await;
    assert_eq!(status, 404, "nothing was created");
    assert!(git.branches("sockshop").is_empty(), "the refused upstream was never contacted");
}

#[actix_rt::test]
async fn taking_a_project_over_brings_its_clone_up_to_date() {
    let git = GitHttpServer::start(USER, TOKEN);
    let url = git.create_repo("sockshop");
    let keelson = keelson_allowing_loopback_upstreams().await;
    let (status, body) = create_with_upstream(&keelson, "sockshop", &url, TOKEN).await;
    assert_eq!(status, 201, "{body}");
    let projects = &keelson.server.control_plane.state.projects;
    let before = projects.repos().branch_head("sockshop", "dev").unwrap();

    // Another instance, owning the project meanwhile, pushed to the upstream.
    git.commit_directly("sockshop", "dev", "carts/notes.txt", "pushed elsewhere");
    let upstream_head = std::process::Command::new("git")
        .args(["--git-dir", git.repo_path("sockshop").to_str().unwrap(), "rev-parse", "dev"])
        .output()
        .unwrap();
    let upstream_head = String::from_utf8_lossy(&upstream_head.stdout).trim().to_owned();
    assert_ne!(before, upstream_head);
    assert_eq!(projects.repos().branch_head("sockshop", "dev").unwrap(), before, "nothing read it yet");

    // Taking the project (back) over reads its upstream: new sequences start from the pushed commit.
    projects.set_shared();
    projects.adopt(&|project: &str| project == "sockshop").await.unwrap();
    assert_eq!(projects.repos().branch_head("sockshop", "dev").unwrap(), upstream_head);
}
