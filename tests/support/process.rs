//! The `keelson` binary as a child process, for tests of start-up, configuration and crashes.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use super::servers::free_port;

pub const BINARY: &str = env!("CARGO_BIN_EXE_keelson");

/// A running `keelson` process, killed on drop.
pub struct Process {
    pub child: Child,
    pub base: String,
    /// What it wrote on standard error up to "Keelson is listening".
    pub startup_lines: Vec<String>,
    /// Everything it has written on standard error so far (read by a thread, so that the process
    /// never blocks on a full pipe).
    pub stderr: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
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
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in vars {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (listening, started) = std::sync::mpsc::channel();
    let lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let record = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in lines {
            let Ok(line) = line else { break };
            let is_listening = line.contains("Keelson is listening");
            record.lock().unwrap().push(line);
            if is_listening {
                let _ = listening.send(());
            }
        }
    });
    let up = started.recv_timeout(std::time::Duration::from_secs(60)).is_ok();
    let startup_lines = stderr.lock().unwrap().clone();
    assert!(up, "keelson did not start: {startup_lines:?}");
    Process { child, base: format!("http://127.0.0.1:{port}"), startup_lines, stderr }
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
