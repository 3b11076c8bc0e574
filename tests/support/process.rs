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
