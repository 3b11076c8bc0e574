//! Real backing servers (redis-server, nats-server, SecantusDB) started per test on free loopback ports.
//!
//! Binaries come from `PATH`; `KEELSON_TEST_SECANTUS_PYTHON` names the Python that has `secantusdb`
//! installed (the README's test command sets it).

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child server process, killed when dropped.
pub struct ChildServer {
    child: Child,
    /// How to start it again on the same port with the same data dir.
    command: Command,
    what: &'static str,
    pub port: u16,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ChildServer {
    /// Stops the server (to test outages); [`ChildServer::restart`] brings it back on the same port.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Freezes the server (SIGSTOP): connections stay open and requests hang, as with a stalled disk
    /// or a paused VM. [`ChildServer::resume`] thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(signal).arg(self.child.id().to_string()).status().expect("kill runs");
        assert!(status.success(), "kill {signal} {} failed", self.what);
    }

    /// Starts the server again (after [`ChildServer::kill`]) on the same port and data dir.
    pub fn restart(&mut self) {
        self.child = self.command.spawn().unwrap_or_else(|error| panic!("cannot restart {}: {error}", self.what));
        wait_for_port(self.port, &mut self.child, self.what);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}; is it installed? (see README: scripts/test)");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{what} did not listen on port {port} within 30s");
}

fn spawn(what: &'static str, mut command: Command, port: u16, url: String, dir: tempfile::TempDir) -> ChildServer {
    let mut child =
        command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|error| {
            panic!("cannot start {what}: {error}; run the README's test command to install it")
        });
    wait_for_port(port, &mut child, what);
    ChildServer { child, command, what, port, url, _dir: dir }
}

pub fn redis() -> ChildServer {
    redis_with(&["--save", "", "--appendonly", "no"])
}

/// A Redis that keeps its data across [`ChildServer::restart`] (append-only file, fsync on every write).
pub fn redis_persistent() -> ChildServer {
    redis_with(&["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
}

fn redis_with(persistence: &[&str]) -> ChildServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new("redis-server");
    command.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]).args(persistence).arg("--dir").arg(dir.path());
    spawn("redis-server", command, port, format!("redis://127.0.0.1:{port}"), dir)
}

pub fn nats() -> ChildServer {
    nats_with_config("")
}

/// A JetStream-enabled `nats-server` whose store survives [`ChildServer::restart`], with `config`
/// (nats-server configuration syntax, e.g. `max_payload: 16MB`) added.
pub fn nats_with_config(config: &str) -> ChildServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config_file = dir.path().join("nats.conf");
    std::fs::write(&config_file, config).unwrap();
    let mut command = Command::new("nats-server");
    command.arg("-c").arg(&config_file);
    command.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"]).arg(dir.path().join("store"));
    spawn("nats-server", command, port, format!("nats://127.0.0.1:{port}"), dir)
}

pub fn secantus() -> ChildServer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let python = std::env::var("KEELSON_TEST_SECANTUS_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut command = Command::new(python);
    command.args(["-m", "secantus", "--host", "127.0.0.1", "--port", &port.to_string(), "--storage-path", ":memory:"]);
    spawn("secantusdb", command, port, format!("mongodb://127.0.0.1:{port}/keelson_test"), dir)
}
