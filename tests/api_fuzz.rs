//! API fuzzing: schemathesis generates requests from Keptn's OpenAPI documents (valid and invalid
//! bodies, parameters and headers, plus stateful sequences of calls) and sends them to a Keelson that
//! holds a project; any 5xx answer or dropped connection fails the test.

mod support;

use std::path::Path;

use support::{TestKeelson, SHIPYARD};

/// Keptn's documents and where Keelson serves each.
const DOCUMENTS: &[(&str, &str)] = &[
    ("api.swagger.yaml", "/api/v1"),
    ("shipyard-controller.swagger.yaml", "/api/controlPlane/v1"),
    ("mongodb-datastore.swagger.yaml", "/api/mongodb-datastore"),
    ("secret-service.swagger.yaml", "/api/secrets/v1"),
];

#[actix_rt::test]
async fn no_generated_request_gets_a_server_error() {
    let keelson = TestKeelson::start().await;
    assert_eq!(keelson.create_project("sockshop", SHIPYARD).await.0, 201);
    assert_eq!(keelson.create_service("sockshop", "carts").await.0, 200);
    let st = support::schemathesis();
    let documents = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/keptn-openapi");
    let reports = tempfile::tempdir().unwrap();
    for (document, base) in DOCUMENTS {
        // Not awaited on a blocking call: the control plane's actors run on this thread.
        let output = tokio::process::Command::new(&st)
            .arg("run")
            .arg(documents.join(document))
            .args(["--url", &keelson.url(base)])
            .args(["--header", &format!("x-token: {}", keelson.token)])
            .args(["--checks", "not_a_server_error"])
            // The coverage phase trips over a CPython 3.11 bug in hypothesis' lambda printing.
            .args(["--phases", "examples,fuzzing,stateful"])
            .args(["--max-examples", "40", "--seed", "20261129", "--workers", "2"])
            .args(["--request-timeout", "20", "--no-color"])
            .arg("--report-dir")
            .arg(reports.path())
            .current_dir(reports.path())
            .output()
            .await
            .expect("schemathesis runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "schemathesis found problems in {document}:\n{text}");
        assert!(text.contains("generated") && text.contains("passed"), "{document}: no test case ran:\n{text}");
    }
}
