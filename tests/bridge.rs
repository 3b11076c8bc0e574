//! The Bridge in real headless Chromium (Debian's, driven by playwright-core from npm): log in, create a
//! project, trigger a delivery and watch it live while an executor answers, approve, open an
//! evaluation, abort a sequence. Screenshots go to `test-output/bridge/`.

mod support;

use std::time::Duration;

use keelson::sdk::Service;
use serde_json::json;
use support::{send, TestKeelson};

#[actix_rt::test]
async fn bridge_end_to_end_in_chromium() {
    let keelson = TestKeelson::start_with(|config| {
        config.services = keelson::config::BUILTIN_SERVICES.iter().map(|s| (*s).to_owned()).collect();
    })
    .await;
    let bus = keelson.server.control_plane.in_process_bus.clone().unwrap();
    // Deploys carts after a moment (so the UI shows the task running); never answers for orders.
    tokio::spawn(Service::new("e2e-deployer", "deployment").in_process(bus.clone()).run(|task| async move {
        if task.service() == "orders" {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok(json!({ "deployment": { "deploymentNames": ["direct"] } }))
    }));
    tokio::spawn(Service::new("e2e-sli-provider", "get-sli").in_process(bus).run(|task| async move {
        let window = &task.data()["get-sli"];
        Ok(json!({ "get-sli": { "start": window["start"], "end": window["end"], "indicatorValues": [
            { "metric": "response_time_p95", "value": 350.0, "success": true },
            { "metric": "error_rate", "value": 0.0, "success": true },
        ] } }))
    }));

    let (_, out) = support::browser::run_script(&keelson, "e2e.mjs", "bridge", Duration::from_secs(240)).await;
    for screen in [
        "01-login",
        "03-environment",
        "05-sequence-finished",
        "05b-sequence-declined",
        "07-evaluation",
        "08-sequences",
        "13-dashboard-phone",
    ] {
        assert!(out.join(format!("{screen}.png")).exists(), "screenshot {screen} was written");
    }
    // What the browser did is what the API now says.
    let (_, finished) = send(
        keelson.get("/api/mongodb-datastore/event?project=sockshop&type=sh.keptn.event.production.delivery.finished"),
    )
    .await;
    // Newest first: the declined delivery failed, the approved one passed.
    assert_eq!(finished["events"][0]["data"]["result"], "fail", "{finished}");
    assert_eq!(finished["events"][1]["data"]["result"], "pass", "{finished}");
}

#[actix_rt::test]
async fn bridge_assets_are_served_with_deep_links_and_a_strict_policy() {
    let keelson = TestKeelson::start().await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let root = client.get(keelson.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/bridge/");
    let index = client.get(keelson.url("/bridge/project/sockshop/sequence/abc")).send().await.unwrap();
    assert_eq!(index.status(), 200, "a deep link gets the app");
    let csp = index.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let etag = index.headers()["etag"].to_str().unwrap().to_owned();
    assert!(index.text().await.unwrap().contains("/bridge/js/app.js"));
    let script = client.get(keelson.url("/bridge/js/app.js")).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let again = client.get(keelson.url("/bridge/")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "unchanged assets are revalidated cheaply");
    let api = client.get(keelson.url("/api/controlPlane/v1/project")).send().await.unwrap();
    assert_eq!(api.status(), 401, "the API still needs the token");
}
