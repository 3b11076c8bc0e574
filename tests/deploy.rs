//! The packaging in `deploy/`, checked with the tools that judge it: the Kubernetes manifests against
//! Kubernetes' schemas (`kubernetes-validate --strict`, from PyPI), the systemd unit with
//! `systemd-analyze verify`, and the cluster manifest's settings with Keelson's own configuration loader.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize as _;

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy").join(path)
}

/// A tool installed into the test virtualenv next to SecantusDB's Python.
fn venv_tool(name: &str) -> PathBuf {
    let python = std::env::var("KEELSON_TEST_SECANTUS_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    Path::new(&python).parent().map(|dir| dir.join(name)).filter(|tool| tool.exists()).unwrap_or_else(|| name.into())
}

#[test]
fn kubernetes_manifests_match_the_kubernetes_schemas() {
    for manifest in ["kubernetes/embedded.yaml", "kubernetes/cluster.yaml"] {
        let output = Command::new(venv_tool("kubernetes-validate"))
            .arg("--strict")
            .arg(deploy(manifest))
            .output()
            .expect("kubernetes-validate is installed (scripts/test)");
        let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(output.status.success() && !report.contains("ERROR"), "{manifest}:\n{report}");
        assert!(report.matches("passed").count() >= 2, "{manifest}: {report}");
    }
}

#[test]
fn the_cluster_manifest_configures_a_valid_cluster() {
    let text = std::fs::read_to_string(deploy("kubernetes/cluster.yaml")).unwrap();
    let config_map: serde_yaml_ng::Value = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde_yaml_ng::Value::deserialize(document).unwrap())
        .find(|document| document["kind"] == "ConfigMap")
        .unwrap();
    let mut vars: std::collections::HashMap<String, String> = config_map["data"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.as_str().unwrap().to_owned(), value.as_str().unwrap().to_owned()))
        .collect();
    // What the Deployment adds from the pod and the Secret.
    vars.insert("KEELSON_NODE_ID".into(), "keelson-7d9c5b7f6-x2x4k".into());
    vars.insert("KEELSON_ADVERTISE_URL".into(), "http://10.1.2.3:8080".into());
    vars.insert("KEELSON_API_TOKEN".into(), "token".into());
    vars.insert("KEELSON_SECRET_KEY".into(), "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into());
    vars.insert("KEELSON_REDIS_URL".into(), "redis://redis:6379".into());
    vars.insert("KEELSON_MONGODB_URL".into(), "mongodb://mongodb:27017/keelson".into());
    let config = keelson::config::Config::load(None, |key| vars.get(key).cloned()).unwrap();
    let cluster = config.cluster.expect("cluster mode");
    assert_eq!((cluster.node_id.as_str(), cluster.shards), ("keelson-7d9c5b7f6-x2x4k", 64));
    assert_eq!(config.log_format, keelson::config::LogFormat::Json);
    assert!(config.listen.ip().is_unspecified());
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy("systemd/keelson.service")).unwrap();
    for hardening in ["DynamicUser=yes", "StateDirectory=keelson", "ProtectSystem=strict", "NoNewPrivileges=yes"] {
        assert!(unit.lines().any(|line| line == hardening), "{hardening}");
    }
    // Verified with the binary this suite built in place of the installed path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keelson.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/keelson", env!("CARGO_BIN_EXE_keelson"))).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package) is installed");
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && report.trim().is_empty(), "systemd-analyze verify:\n{report}");
}
