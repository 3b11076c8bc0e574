//! Browser scripts in `tests/bridge/` (playwright-core driving Debian's headless Chromium) run against
//! an in-process Keelson.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::TestKeelson;

/// Runs `tests/bridge/<script>` with `BASE`, `TOKEN` and `OUT` (`test-output/<out>`, emptied first);
/// asserts it succeeded and printed "all steps passed". Returns its standard output and `OUT`.
pub async fn run_script(keelson: &TestKeelson, script: &str, out: &str, limit: Duration) -> (String, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = root.join("tests/bridge");
    assert!(
        tests.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in tests/bridge (scripts/test does)"
    );
    assert!(Path::new("/usr/bin/chromium").exists(), "Debian's chromium is missing (scripts/test installs it)");
    let out = root.join("test-output").join(out);
    let _ = std::fs::remove_dir_all(&out);
    // Not a blocking wait: the Keelson under test runs on this thread.
    let output = tokio::time::timeout(
        limit,
        tokio::process::Command::new("node")
            .arg(script)
            .current_dir(&tests)
            .env("BASE", &keelson.base)
            .env("TOKEN", &keelson.token)
            .env("OUT", &out)
            .output(),
    )
    .await
    .expect("the browser test hung")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("all steps passed"), "{stdout}");
    (stdout, out)
}
