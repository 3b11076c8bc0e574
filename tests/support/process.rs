//! The `keelson` binary as a child process, for tests of start-up, configuration and crashes.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use super::servers::free_port;

pub const BINARY: &str = env!("CARGO_BIN_EXE_keelson");

/// A running `keelson` process, killed on drop.
pub struct Process {
    pub child: Child,
    pub base: String,
    pub stdout_lines: Vec<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Ends the process with SIGKILL: no shutdown code runs, as in a crash.
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port with `vars` set; returns once it reports listening.
pub fn spawn_keelson(data_dir: &std::path::Path, vars: &[(&str, String)]) -> Process {
    let port = free_port();
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("KEELSON_DATA_DIR", data_dir)
        .env("KEELSON_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEELSON_LOG", "warn")
        // The tests play the execution plane themselves.
        .env("KEELSON_SERVICES", "none")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stdout_lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let listening = line.starts_with("Keelson is listening");
        stdout_lines.push(line);
        if listening {
            break;
        }
    }
    assert!(
        stdout_lines.iter().any(|l| l.starts_with("Keelson is listening")),
        "keelson did not start: {stdout_lines:?}"
    );
    Process { child, base: format!("http://127.0.0.1:{port}"), stdout_lines }
}

/// A spawned Keelson's API, called with its token.
pub struct ProcessApi {
    pub base: String,
    token: String,
    client: reqwest::Client,
}

impl ProcessApi {
    pub fn new(process: &Process, token: &str) -> Self {
        Self { base: process.base.clone(), token: token.to_owned(), client: reqwest::Client::new() }
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        super::send(self.client.get(format!("{}{path}", self.base)).header("x-token", &self.token)).await
    }

    pub async fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        super::send(self.client.post(format!("{}{path}", self.base)).header("x-token", &self.token).json(body)).await
    }
}

/// Starts the binary on `port` with `vars`, its output going to `log` (never to a pipe nobody reads);
/// returns once it reports listening, or panics with the log if it exits first.
pub fn spawn_keelson_logged(
    data_dir: &std::path::Path,
    port: u16,
    vars: &[(&str, String)],
    log: &std::path::Path,
) -> Process {
    let mut child = command_logged(data_dir, port, vars, log).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("Keelson is listening") {
            return Process { child, base: format!("http://127.0.0.1:{port}"), stdout_lines: Vec::new() };
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("keelson exited with {status} before listening:\n{text}");
        }
        assert!(std::time::Instant::now() < deadline, "keelson did not start:\n{text}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The command [`spawn_keelson_logged`] runs, for tests that expect it to fail.
pub fn command_logged(
    data_dir: &std::path::Path,
    port: u16,
    vars: &[(&str, String)],
    log: &std::path::Path,
) -> Command {
    let output = std::fs::File::create(log).unwrap();
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEELSON_DATA_DIR", data_dir)
        .env("KEELSON_LISTEN", format!("127.0.0.1:{port}"))
        .env("KEELSON_LOG", "info")
        .env("KEELSON_SERVICES", "none")
        .stdout(Stdio::from(output.try_clone().unwrap()))
        .stderr(Stdio::from(output));
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}

impl Process {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `within` for the process to exit; its exit code, `None` if it is still running.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
