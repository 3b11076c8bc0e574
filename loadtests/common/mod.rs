//! What every load test shares: an embedded Keelson on a free loopback port, and percentiles.

use std::time::Duration;

/// The API token of load-test servers.
pub const TOKEN: &str = "loadtest-token";

/// A Keelson in a temporary data dir (keep the `TempDir` alive while it runs), on the embedded stores
/// unless `adjust` configures servers.
pub async fn start_keelson(
    adjust: impl FnOnce(&mut keelson::config::Config),
) -> (keelson::server::RunningServer, tempfile::TempDir, String) {
    let data_dir = tempfile::tempdir().unwrap();
    let mut config = keelson::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.path().to_owned(),
        api_token: Some(TOKEN.to_owned()),
        log: "warn".to_owned(),
        // The load generator is the execution plane; figures stay comparable across releases
        // (LOADTEST_WITH_SERVICES=1 measures with the built-in services running too).
        services: if std::env::var_os("LOADTEST_WITH_SERVICES").is_some() {
            keelson::config::BUILTIN_SERVICES.iter().map(|s| (*s).to_owned()).collect()
        } else {
            Vec::new()
        },
        ..Default::default()
    };
    adjust(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = keelson::server::start(&config, listener).await.expect("keelson starts");
    let base = format!("http://{}", server.addr);
    (server, data_dir, base)
}

/// The value at `fraction` (0..=1) of an ascending list.
pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}
