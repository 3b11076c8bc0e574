//! Runs one job task as a local process: its own process group, a clean environment, stdin closed,
//! output captured (the last [`OUTPUT_LIMIT`] bytes), a time limit, and a way to stop it from outside.
//! Stopping kills the whole group, so a shell script's children go with it.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::watch;

/// Output kept per task: the tail, where failures usually explain themselves.
pub const OUTPUT_LIMIT: usize = 64 * 1024;
/// How long a stopped task's group has between SIGTERM and SIGKILL.
const TERMINATION_GRACE: Duration = Duration::from_secs(2);
/// How long output is still read after the task's main process exited: a process it left running in
/// the background (a started server) may hold the pipes open for ever.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);

/// What to run.
#[derive(Debug, Clone)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    pub working_dir: PathBuf,
    /// The whole environment of the process.
    pub env: Vec<(String, String)>,
    pub time_limit: Duration,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    /// Ended by a signal it did not ask for (not by a stop from here).
    Signalled(i32),
    TimedOut,
    /// Stopped from outside (the sequence was aborted).
    Stopped,
    NotStarted(String),
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub ending: Ending,
    /// The process id the task ran as (its process group has the same id).
    pub pid: Option<u32>,
    /// stdout and stderr as they came, at most the last [`OUTPUT_LIMIT`] bytes.
    pub output: String,
}

/// Runs `command` until it exits, its time is up, or `stop` turns true.
pub async fn run(command: Command, mut stop: watch::Receiver<bool>) -> Finished {
    let mut process = tokio::process::Command::new(&command.program);
    process
        .args(&command.args)
        .current_dir(&command.working_dir)
        .env_clear()
        .envs(command.env.iter().map(|(name, value)| (name, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match process.spawn() {
        Ok(child) => child,
        Err(error) => {
            return Finished {
                ending: Ending::NotStarted(format!("cannot start {}: {error}", command.program)),
                pid: None,
                output: String::new(),
            }
        }
    };
    let pid = child.id();
    let output = Arc::new(Mutex::new(Tail::default()));
    let readers = [
        child.stdout.take().map(|stdout| tokio::spawn(collect(stdout, Arc::clone(&output)))),
        child.stderr.take().map(|stderr| tokio::spawn(collect(stderr, Arc::clone(&output)))),
    ];
    let group = pid.and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw);
    // Dropped before the task ended (Keelson shutting down): nothing of the task outlives it.
    let mut guard = GroupGuard(group);
    let deadline = tokio::time::sleep(command.time_limit);
    tokio::pin!(deadline);
    let ending = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                (Some(code), _) => Ending::Exited(code),
                (None, Some(signal)) => Ending::Signalled(signal),
                (None, None) => Ending::Exited(-1),
            },
            Err(error) => Ending::NotStarted(format!("cannot wait for {}: {error}", command.program)),
        },
        () = &mut deadline => Ending::TimedOut,
        () = stopped(&mut stop) => Ending::Stopped,
    };
    if matches!(ending, Ending::TimedOut | Ending::Stopped) {
        if let Some(group) = group {
            terminate(group, &mut child).await;
        }
    }
    // Ended on its own: what it left running in the background (a started server) stays.
    guard.0 = None;
    for mut reader in readers.into_iter().flatten() {
        if tokio::time::timeout(OUTPUT_DRAIN, &mut reader).await.is_err() {
            // A background process still holds the pipe: stop reading (it should write to a file).
            reader.abort();
        }
    }
    let output = output.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).text();
    Finished { ending, pid, output }
}

/// Kills a task's process group when dropped while armed.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// Resolves once `stop` is true (never, if its sender is gone without stopping).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// SIGTERM to the group, SIGKILL to whatever of it is left after the grace period.
async fn terminate(group: Pid, child: &mut tokio::process::Child) {
    let _ = killpg(group, Signal::SIGTERM);
    let _ = tokio::time::timeout(TERMINATION_GRACE, child.wait()).await;
    // The main process may be gone while others of its group live on: the group gets SIGKILL anyway
    // (an error only means nobody is left).
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait().await;
}

async fn collect(mut pipe: impl AsyncRead + Unpin, output: Arc<Mutex<Tail>>) {
    let mut buffer = vec![0u8; 8192];
    loop {
        match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => output.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(&buffer[..read]),
        }
    }
}

/// The last [`OUTPUT_LIMIT`] bytes written, and whether earlier ones were dropped.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    cut: bool,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > OUTPUT_LIMIT {
            let excess = self.bytes.len() - OUTPUT_LIMIT;
            self.bytes.drain(..excess);
            self.cut = true;
        }
    }

    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        if !self.cut {
            return text.into_owned();
        }
        // The cut may have split a line (and a secret value in it): the partial line goes too.
        let whole_lines = text.split_once('\n').map_or("", |(_, rest)| rest);
        format!("[earlier output dropped]\n{whole_lines}")
    }
}

/// The last `lines` lines of `output`, at most its last `bytes` bytes (for a message).
pub fn tail(output: &str, lines: usize, bytes: usize) -> String {
    let trimmed = output.trim_end();
    let mut start = trimmed.rmatch_indices('\n').nth(lines.saturating_sub(1)).map_or(0, |(index, _)| index + 1);
    start = start.max(trimmed.len().saturating_sub(bytes));
    while !trimmed.is_char_boundary(start) {
        start += 1;
    }
    trimmed[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str, limit: Duration) -> Command {
        Command {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            working_dir: std::env::temp_dir(),
            env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
            time_limit: limit,
        }
    }

    fn never_stopped() -> watch::Receiver<bool> {
        let (sender, receiver) = watch::channel(false);
        std::mem::forget(sender);
        receiver
    }

    #[tokio::test]
    async fn exit_codes_and_output_are_reported() {
        let finished = run(shell("echo out; echo err >&2; exit 3", Duration::from_secs(10)), never_stopped()).await;
        assert_eq!(finished.ending, Ending::Exited(3));
        assert!(finished.output.contains("out") && finished.output.contains("err"), "{}", finished.output);
    }

    #[tokio::test]
    async fn the_environment_is_only_what_is_given_and_stdin_is_closed() {
        // Cargo sets CARGO_PKG_NAME for the test process; the task must not see it.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let finished = run(shell("env", Duration::from_secs(10)), never_stopped()).await;
        assert_eq!(finished.ending, Ending::Exited(0));
        assert!(!finished.output.contains("CARGO_PKG_NAME"), "{}", finished.output);
        assert!(finished.output.contains("PATH="));
        // `cat` with an open stdin would wait for input until the time limit.
        let started = std::time::Instant::now();
        let finished = run(shell("cat", Duration::from_secs(10)), never_stopped()).await;
        assert_eq!(finished.ending, Ending::Exited(0));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        let finished =
            run(shell("sleep 30 & echo child $!; sleep 30", Duration::from_millis(300)), never_stopped()).await;
        assert_eq!(finished.ending, Ending::TimedOut);
        let child: i32 = finished.output.trim().trim_start_matches("child ").parse().expect("child pid printed");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!running(child), "child {child} still running");
    }

    /// Whether `pid` is a live process (a zombie waiting for its reaper has ended).
    fn running(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()))
            .is_some_and(|state| state != 'Z' && state != 'X')
    }

    #[tokio::test]
    async fn a_stop_ends_the_task() {
        let (sender, receiver) = watch::channel(false);
        let task = tokio::spawn(run(shell("sleep 30", Duration::from_secs(60)), receiver));
        tokio::time::sleep(Duration::from_millis(200)).await;
        sender.send(true).unwrap();
        let finished = tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap();
        assert_eq!(finished.ending, Ending::Stopped);
    }

    #[tokio::test]
    async fn a_task_dropped_while_running_takes_its_group_along() {
        let directory = tempfile::tempdir().unwrap();
        let pid_file = directory.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; sleep 30", pid_file.display());
        let task = tokio::spawn(run(shell(&script, Duration::from_secs(60)), never_stopped()));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let child: i32 = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|text| text.trim().parse().ok()) {
                break pid;
            }
            assert!(std::time::Instant::now() < deadline, "the task did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        task.abort();
        let _ = task.await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!running(child), "child {child} outlived the dropped task");
    }

    #[tokio::test]
    async fn a_missing_program_is_reported() {
        let mut command = shell("", Duration::from_secs(1));
        command.program = "/nonexistent/program".into();
        let finished = run(command, never_stopped()).await;
        assert!(matches!(finished.ending, Ending::NotStarted(ref message) if message.contains("/nonexistent/program")));
    }

    #[tokio::test]
    async fn background_processes_do_not_hold_the_task() {
        let started = std::time::Instant::now();
        let finished = run(shell("sleep 5 & echo started", Duration::from_secs(30)), never_stopped()).await;
        assert_eq!(finished.ending, Ending::Exited(0));
        assert!(started.elapsed() < Duration::from_secs(3), "waited for the background process");
        assert!(finished.output.contains("started"));
        let _ = killpg(Pid::from_raw(finished.pid.unwrap() as i32), Signal::SIGKILL);
    }

    #[test]
    fn output_keeps_its_tail() {
        let mut kept = Tail::default();
        kept.push(&vec![b'a'; OUTPUT_LIMIT]);
        kept.push(b"\nend");
        let text = kept.text();
        assert!(text.starts_with("[earlier output dropped]") && text.ends_with("end"));
        let mut split = Tail::default();
        split.push(b"secret-begins");
        split.push(&vec![b'x'; OUTPUT_LIMIT - 5]);
        split.push(b"\nkept\n");
        assert_eq!(split.text(), "[earlier output dropped]\nkept\n", "the partial first line is dropped");
        assert_eq!(tail("a\nb\nc\n", 2, 100), "b\nc");
        assert_eq!(tail("only", 5, 100), "only");
        assert_eq!(tail("abcdef", 5, 3), "def");
        assert_eq!(tail("ééé", 5, 3), "é", "cut on a character boundary");
    }
}
