//! The resource API over HTTP: three scopes, both URI encodings, commit pinning, bad URIs.

mod support;

use serde_json::json;
use support::{assert_error, b64, send, unb64, TestKeelson, SHIPYARD};

const RS: &str = "/api/resource-service/v1/project/sockshop";

async fn keelson_with_service() -> TestKeelson {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    keelson
}

fn resources(files: &[(&str, &str)]) -> serde_json::Value {
    json!({ "resources": files.iter().map(|(uri, content)| json!({ "resourceURI": uri, "resourceContent": b64(content) })).collect::<Vec<_>>() })
}

#[actix_rt::test]
async fn resources_at_every_scope_round_trip() {
    let keelson = keelson_with_service().await;

    let (status, listing) = send(keelson.get(&format!("{RS}/resource"))).await;
    assert_eq!(status, 200);
    assert_eq!(listing["resources"][0]["resourceURI"], "/shipyard.yaml");
    assert_eq!(listing["nextPageKey"], "0");

    let (status, written) =
        send(keelson.post(&format!("{RS}/stage/dev/resource")).json(&resources(&[("stage.txt", "stage level")]))).await;
    assert_eq!(status, 201, "{written}");
    let commit = written["commitID"].as_str().unwrap().to_owned();
    assert_eq!(commit.len(), 40);
    assert_eq!(written["metadata"]["version"], commit);

    let (status, written) = send(
        keelson
            .post(&format!("{RS}/stage/dev/service/carts/resource"))
            .json(&resources(&[("helm/values.yaml", "replicas: 1"), ("slo.yaml", "objectives: []")])),
    )
    .await;
    assert_eq!(status, 201, "{written}");

    // The same file through an escaped single segment and through a plain tail.
    // Keptn's Bridge double-escapes (`%252F`) because its gateway decodes once.
    for path in ["helm%2Fvalues.yaml", "helm/values.yaml", "helm%252Fvalues.yaml"] {
        let (status, read) = send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource/{path}"))).await;
        assert_eq!(status, 200, "{path}: {read}");
        assert_eq!(unb64(read["resourceContent"].as_str().unwrap()), b"replicas: 1");
        assert_eq!(read["resourceURI"], path, "the URI is echoed as given");
    }

    // Stage listings leave service directories out; service listings show only that service.
    let (_, stage_listing) = send(keelson.get(&format!("{RS}/stage/dev/resource"))).await;
    let uris: Vec<&str> =
        stage_listing["resources"].as_array().unwrap().iter().map(|r| r["resourceURI"].as_str().unwrap()).collect();
    assert_eq!(uris, ["/stage.txt"]);
    let (_, service_listing) = send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource"))).await;
    let uris: Vec<&str> =
        service_listing["resources"].as_array().unwrap().iter().map(|r| r["resourceURI"].as_str().unwrap()).collect();
    assert_eq!(uris, ["/helm/values.yaml", "/slo.yaml"]);
    let (_, page) = send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource?pageSize=1"))).await;
    assert_eq!(page["resources"].as_array().unwrap().len(), 1);
    assert_eq!(page["nextPageKey"], "1");

    // Stages are separate branches.
    let (status, body) = send(keelson.get(&format!("{RS}/stage/staging/service/carts/resource/slo.yaml"))).await;
    assert_error(status, &body, 404);

    // Update, then read the old version pinned by commit.
    let (_, before) = send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml"))).await;
    let old_commit = before["metadata"]["version"].as_str().unwrap().to_owned();
    let (status, updated) = send(
        keelson
            .put(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml"))
            .json(&json!({ "resourceContent": b64("objectives: [1]") })),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(updated["commitID"], old_commit);
    let (_, now) = send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml"))).await;
    assert_eq!(unb64(now["resourceContent"].as_str().unwrap()), b"objectives: [1]");
    let (status, pinned) =
        send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml?gitCommitID={old_commit}"))).await;
    assert_eq!(status, 200);
    assert_eq!(unb64(pinned["resourceContent"].as_str().unwrap()), b"objectives: []");
    assert_eq!(pinned["metadata"]["version"], old_commit);
    let (status, body) =
        send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml?gitCommitID=zzz"))).await;
    assert_error(status, &body, 400);
    let (status, body) =
        send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml?gitCommitID={}", "0".repeat(40))))
            .await;
    assert_error(status, &body, 404);

    // PUT on the collection upserts several files.
    let (status, _) = send(keelson.put(&format!("{RS}/resource")).json(&resources(&[("docs/readme.md", "hi")]))).await;
    assert_eq!(status, 200);
    let (_, project_listing) = send(keelson.get(&format!("{RS}/resource"))).await;
    assert_eq!(project_listing["totalCount"], 2);

    // Delete.
    let (status, deleted) = send(keelson.delete(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml"))).await;
    assert_eq!(status, 200);
    assert_eq!(deleted["commitID"].as_str().unwrap().len(), 40);
    let (status, body) = send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml"))).await;
    assert_error(status, &body, 404);
    assert_eq!(body["message"], "Resource not found");
    let (status, body) = send(keelson.delete(&format!("{RS}/stage/dev/service/carts/resource/slo.yaml"))).await;
    assert_error(status, &body, 404);
}

#[actix_rt::test]
async fn duplicate_slashes_are_merged_like_keptns_gateway() {
    let keelson = keelson_with_service().await;
    let (status, listing) = send(keelson.get("/api/resource-service/v1/project/sockshop//resource")).await;
    assert_eq!(status, 200);
    assert_eq!(listing["resources"][0]["resourceURI"], "/shipyard.yaml");
}

#[actix_rt::test]
async fn deleting_a_service_removes_its_files() {
    let keelson = keelson_with_service().await;
    let (status, _) =
        send(keelson.post(&format!("{RS}/stage/dev/service/carts/resource")).json(&resources(&[("slo.yaml", "x")])))
            .await;
    assert_eq!(status, 201);
    assert_eq!(send(keelson.delete("/api/controlPlane/v1/project/sockshop/service/carts")).await.0, 200);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let (_, listing) = send(keelson.get(&format!("{RS}/stage/dev/service/carts/resource"))).await;
    assert_eq!(listing["resources"], json!([]), "a re-created service starts empty");
}

#[actix_rt::test]
async fn bad_resource_requests_are_refused() {
    let keelson = keelson_with_service().await;
    let service_path = format!("{RS}/stage/dev/service/carts/resource");
    for uri in [
        "../escape.yaml",
        "a/../../b",
        "//etc/passwd",
        "nul\u{0}byte",
        "~/x",
        ".git/config",
        ".GIT/config",
        "sub/.Git/hooks/pre-commit",
        ".gitmodules",
        "a\\b",
        "dir/",
    ] {
        let (status, body) = send(keelson.post(&service_path).json(&resources(&[(uri, "x")]))).await;
        assert_error(status, &body, 400);
    }
    for path in ["..%2Fescape.yaml", "%2F%2Fetc%2Fpasswd", "nul%00byte", "a%2F..%2F..%2Fb"] {
        let (status, body) = send(keelson.get(&format!("{service_path}/{path}"))).await;
        assert_error(status, &body, 400);
    }
    let body = json!({ "resources": [{ "resourceURI": "x.yaml", "resourceContent": "@@not base64@@" }] });
    let (status, body) = send(keelson.post(&service_path).json(&body)).await;
    assert_error(status, &body, 400);
    assert_eq!(body["message"], "resource content is not base64 encoded");
    let (status, body) = send(keelson.post(&service_path).json(&json!({ "resources": [] }))).await;
    assert_error(status, &body, 400);

    let (status, body) = send(keelson.get("/api/resource-service/v1/project/nope/resource")).await;
    assert_error(status, &body, 404);
    let (status, body) = send(keelson.get(&format!("{RS}/stage/qa/resource"))).await;
    assert_error(status, &body, 404);
    let (status, body) = send(keelson.get(&format!("{RS}/stage/dev/service/orders/resource"))).await;
    assert_error(status, &body, 404);

    // A file cannot silently replace a directory.
    let (status, _) = send(keelson.post(&service_path).json(&resources(&[("helm/values.yaml", "x")]))).await;
    assert_eq!(status, 201);
    let (status, body) = send(keelson.post(&service_path).json(&resources(&[("helm", "x")]))).await;
    assert_error(status, &body, 409);

    // Nothing of the refused writes landed.
    let (_, listing) = send(keelson.get(&service_path)).await;
    let uris: Vec<&str> =
        listing["resources"].as_array().unwrap().iter().map(|r| r["resourceURI"].as_str().unwrap()).collect();
    assert_eq!(uris, ["/helm/values.yaml"]);
}
