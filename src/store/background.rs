//! A thread of the lowest CPU priority for blocking store work that nothing waits on at once.
//!
//! Most of the event history is such work: a sequence goes on as soon as its snapshot is durable, and
//! the history only has to keep up on average (events wait in the snapshot's outbox meanwhile). On the
//! blocking pool its commits competed for the cores with the actors and the snapshot commits every
//! task transition waits for; on this thread they take what those leave (figures in
//! `loadtests/README.md`). Batches someone waits for (a new sequence's trigger) still go to the
//! blocking pool.

use tokio::sync::{mpsc, oneshot};

/// Jobs waiting for the thread before callers wait (backpressure).
const QUEUE: usize = 64;
/// Niceness of the thread: the lowest priority. The scheduler still gives it a share when every core
/// is busy, so it cannot starve; when it falls behind, the history writer's queue fills and slows the
/// producers down.
const NICENESS: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// The thread has stopped (the process is ending) or a job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the background store thread is gone")]
pub struct Stopped;

/// A handle to the thread; it ends when the last handle is dropped.
pub struct Background {
    jobs: mpsc::Sender<Job>,
}

impl Background {
    pub fn start(name: &str) -> std::io::Result<Self> {
        let (jobs, mut receiver) = mpsc::channel::<Job>(QUEUE);
        std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            lower_priority();
            while let Some(job) = receiver.blocking_recv() {
                // A panicking job drops its reply, which its caller sees as `Stopped`; the thread goes on.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
        })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the thread and returns its result.
    pub async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, Stopped> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        self.jobs.send(job).await.map_err(|_| Stopped)?;
        result.await.map_err(|_| Stopped)
    }
}

/// Lowers the calling thread's priority (Linux applies niceness per thread).
fn lower_priority() {
    let thread = nix::unistd::gettid().as_raw();
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, thread as libc::id_t, NICENESS) };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the background thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_at_the_lowest_priority_and_survive_a_panic() {
        let background = Background::start("test-background").unwrap();
        let niceness = background
            .run(|| std::fs::read_to_string("/proc/thread-self/stat").unwrap())
            .await
            .unwrap()
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.split_whitespace().nth(16).map(str::to_owned))
            .unwrap();
        assert_eq!(niceness, "19", "field 19 of /proc/thread-self/stat is the niceness");
        assert!(background.run(|| panic!("a failing job")).await.is_err());
        assert_eq!(background.run(|| 41 + 1).await.unwrap(), 42, "the thread goes on after a panic");
    }
}
