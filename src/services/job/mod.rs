//! job-executor: runs a task's work as local processes, configured as Keptn's job-executor-service is,
//! by the resource `job/config.yaml` (service, else stage, else project level, at the event's commit).
//!
//! For an event that an action of the file matches, the action's tasks run in order, each in a fresh
//! working directory holding its `files`, with a clean environment (`PATH`, the declared `env`,
//! `KEPTN_PROJECT`, `KEPTN_STAGE`, `KEPTN_SERVICE`, `KEPTN_CONTEXT`, `KEPTN_EVENT_ID`), stdin closed, in
//! its own process group and under a time limit. A `.triggered` event is answered with `.started` and,
//! once the tasks ran, `.finished`: `pass` when every task exited 0, else `fail` naming the task, how it
//! ended and its last lines of output. Secret values never leave in events or logs. When the sequence
//! is aborted, the running task's process group is killed and the rest of the action does not run.
//!
//! [`config`] reads the file and decides which action an event runs; [`process`] runs one task.

pub mod config;
pub mod process;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};

use super::access::{AccessError, ControlPlaneAccess, Level};
use crate::config::JobSettings;
use crate::model::event::CloudEvent;
use crate::model::event_type::{self, EventType};
use crate::model::redaction::redact;
use crate::model::uniform::LogEntry;
use crate::model::verdict::{TaskResult, TaskStatus};
use crate::sdk::{SdkError, Sender, Service};
use config::{Action, JobConfig, Task, ValueFrom};
use process::Ending;

pub const NAME: &str = "job-executor-service";
/// Task events, whose actions may run (shared out among the instances of the service).
pub const SUBJECTS: &[&str] = &["sh.keptn.event.*.*"];
/// Sequence `.finished` events: an abort stops what runs, on whichever instance runs it.
pub const BROADCAST: &[&str] = &["sh.keptn.event.*.*.finished"];
/// Events handled at once: a job waiting for one of the `job_max_parallel` slots holds one, and an
/// abort must still get through while many wait.
const CONCURRENCY: usize = 4096;
const CONFIG_FILE: &str = "job/config.yaml";
/// The secret scope `valueFrom: secret` reads.
pub const SECRET_SCOPE: &str = crate::secrets::DEFAULT_SCOPE;
/// Lines of output quoted in a failed task's message, and at most this many bytes of them.
const MESSAGE_LINES: usize = 20;
const MESSAGE_BYTES: usize = 2048;
/// Longest log entry sent (the integration log keeps 4 KiB of a message).
const LOG_BYTES: usize = 4000;
/// Lines of a multi-line secret at least this long are hidden on their own.
const MIN_SECRET_LINE: usize = 8;
/// The task whose `.finished` carries the time it ran (`test.start`, `test.end`).
const TEST_TASK: &str = "test";
/// `PATH` for tasks when Keelson's own environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub async fn run(service: Service, executor: Arc<Executor>) -> Result<(), SdkError> {
    service
        .concurrency(CONCURRENCY)
        .run_events(move |event, sender| {
            let executor = Arc::clone(&executor);
            async move { executor.handle(event, sender).await }
        })
        .await
}

/// What every job shares; one per process, kept across restarts of the service's subscription so
/// that aborts still reach the jobs it started.
pub struct Executor {
    access: Arc<dyn ControlPlaneAccess>,
    settings: JobSettings,
    slots: Semaphore,
    running: Running,
    path: String,
}

/// Why an action did not finish.
enum Failure {
    /// A task failed; the message names it (secret values already hidden).
    Task(String),
    /// The sequence was aborted.
    Stopped,
}

/// What the lookup of `job/config.yaml` found.
enum Lookup {
    Absent,
    Found(JobConfig),
    /// The file exists but is not a valid configuration.
    Invalid {
        message: String,
        raw: String,
    },
    /// The file could not be read (the resource store is unavailable).
    Unreadable(String),
}

/// The project, stage and service an event is about.
#[derive(Clone, Copy)]
struct Scope<'a> {
    project: &'a str,
    stage: &'a str,
    service: &'a str,
}

impl<'a> Scope<'a> {
    fn of(event: &'a CloudEvent) -> Option<Self> {
        let data = &event.data;
        let scope =
            Scope { project: text(&data["project"]), stage: text(&data["stage"]), service: text(&data["service"]) };
        (!scope.project.is_empty() && !scope.stage.is_empty() && !scope.service.is_empty()).then_some(scope)
    }
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `(task, kind)` of a task event type.
fn task_and_kind(name: &str) -> Option<(&str, &str)> {
    match event_type::parse(name) {
        EventType::Task { task, kind } if name.starts_with(event_type::PREFIX) => Some((task, kind)),
        _ => None,
    }
}

/// Whether `event` is a sequence's `.finished` with status `aborted`.
fn is_sequence_abort(event: &CloudEvent) -> bool {
    let name = &event.event_type;
    name.starts_with(event_type::PREFIX)
        && matches!(event_type::parse(name), EventType::Sequence { kind: event_type::FINISHED, .. })
        && text(&event.data["status"]) == "aborted"
}

impl Executor {
    pub fn new(access: Arc<dyn ControlPlaneAccess>, settings: JobSettings) -> Self {
        tracing::info!(
            allowed_commands = %settings.allowed_commands.join(","),
            max_parallel = settings.max_parallel,
            "job executor runs tasks as local processes"
        );
        if settings.allowed_commands.is_empty() {
            tracing::warn!("job_allowed_commands is empty: every job task will be refused");
        }
        let slots = Semaphore::new(settings.max_parallel.max(1));
        let path = std::env::var("PATH").ok().filter(|path| !path.is_empty()).unwrap_or_else(|| DEFAULT_PATH.into());
        Self { access, settings, slots, running: Running::default(), path }
    }

    async fn handle(&self, event: CloudEvent, sender: Sender) {
        let Some(scope) = Scope::of(&event) else { return };
        if is_sequence_abort(&event) {
            self.running.stop(&event.shkeptncontext, scope.stage);
            return;
        }
        let Some((task, kind)) = task_and_kind(&event.event_type) else { return };
        let triggered = kind == event_type::TRIGGERED;
        // Registered before anything is looked up, so that an abort arriving meanwhile is not missed.
        let registration = triggered.then(|| self.running.register(&event.shkeptncontext, scope.stage));
        let config = match self.find_config(&event, scope).await {
            Lookup::Absent => return,
            Lookup::Found(config) => config,
            Lookup::Unreadable(message) => {
                tracing::warn!(project = scope.project, stage = scope.stage, service = scope.service, %message, "cannot read the job configuration");
                return;
            }
            Lookup::Invalid { message, raw } => {
                // A task the broken file was meant for fails visibly instead of waiting for its timeout;
                // other tasks of the service are left to their executors.
                if triggered && config::may_concern(&raw, &event.event_type, task) {
                    tracing::warn!(project = scope.project, stage = scope.stage, service = scope.service, %message, "invalid job configuration");
                    self.send_started(&event, &sender, task).await;
                    self.send_failed(&event, &sender, task, &message).await;
                    self.log(&event, task, message).await;
                }
                return;
            }
        };
        let event_json = serde_json::to_value(&event).unwrap_or(Value::Null);
        let Some(action) = config.action_for(&event_json, triggered) else { return };
        let answers = triggered && !action.silent;
        if answers {
            self.send_started(&event, &sender, task).await;
        }
        let stopped = match &registration {
            Some(registration) => registration.stopped(),
            // Silent actions on other events have no sequence step to be aborted with.
            None => watch::channel(false).1,
        };
        let started_at = chrono::Utc::now();
        let outcome = self.run_action(&event, scope, &event_json, action, task, stopped).await;
        drop(registration);
        match outcome {
            Ok(names) if answers => {
                let message =
                    format!("job-executor action '{}': {} finished successfully", action.name, names.join(", "));
                let mut data =
                    json!({ "status": TaskStatus::Succeeded, "result": TaskResult::Pass, "message": message });
                if task == TEST_TASK {
                    // What a later evaluation takes as its window when it is given none (as with Keptn's
                    // job-executor-service).
                    data[TEST_TASK] = json!({ "start": keptn_time(started_at), "end": keptn_time(chrono::Utc::now()) });
                }
                sender.send_logged(sender.reply(&event, &event_type::task(task, event_type::FINISHED), data)).await;
            }
            Ok(_) => {}
            Err(Failure::Task(message)) => {
                if answers {
                    self.send_failed(&event, &sender, task, &message).await;
                }
            }
            Err(Failure::Stopped) => {
                self.log(&event, task, format!("action '{}' stopped: the sequence was aborted", action.name)).await;
            }
        }
    }

    /// The first `job/config.yaml` found, service → stage → project.
    async fn find_config(&self, event: &CloudEvent, scope: Scope<'_>) -> Lookup {
        let Scope { project, stage, service } = scope;
        let levels = [Level::Service { stage, service }, Level::Stage(stage), Level::Project];
        for level in levels {
            match self.access.resource(project, level, CONFIG_FILE, event.gitcommitid.as_deref()).await {
                Ok(Some(raw)) => {
                    return match config::parse(&raw) {
                        Ok(config) => Lookup::Found(config),
                        Err(error) => Lookup::Invalid { message: error.to_string(), raw },
                    }
                }
                // Not there, or the service or stage is unknown (deleted meanwhile): nothing to run.
                Ok(None) | Err(AccessError::NotFound(_)) => continue,
                Err(AccessError::Unavailable(message)) => return Lookup::Unreadable(message),
            }
        }
        Lookup::Absent
    }

    /// Runs the action's tasks in order; the names of the tasks run, or why one failed. Every task's
    /// command is checked before the first one runs, so a refused command cannot leave an action
    /// half done.
    async fn run_action(
        &self,
        event: &CloudEvent,
        scope: Scope<'_>,
        event_json: &Value,
        action: &Action,
        keptn_task: &str,
        mut stopped: watch::Receiver<bool>,
    ) -> Result<Vec<String>, Failure> {
        if let Some(refusal) = action.tasks.iter().find_map(|task| self.refusal(task)) {
            metrics::counter!("keelson_job_tasks_total", "outcome" => "failed").increment(1);
            self.log(event, keptn_task, refusal.clone()).await;
            return Err(Failure::Task(refusal));
        }
        let mut names = Vec::with_capacity(action.tasks.len());
        for task in &action.tasks {
            // An abort also reaches a task still waiting for a free slot.
            let slot = tokio::select! {
                slot = self.slots.acquire() => slot,
                () = process::stopped(&mut stopped) => return Err(Failure::Stopped),
            };
            let Ok(_slot) = slot else { return Err(Failure::Stopped) };
            let outcome = self.run_task(event, scope, event_json, task, stopped.clone()).await;
            match outcome {
                Ok(output) => {
                    tracing::info!(context = %event.shkeptncontext, action = %action.name, task = %task.name, "job task finished");
                    metrics::counter!("keelson_job_tasks_total", "outcome" => "succeeded").increment(1);
                    let message =
                        format!("task '{}' of action '{}' finished (exit code 0)\n{output}", task.name, action.name);
                    self.log(event, keptn_task, message).await;
                    names.push(task.name.clone());
                }
                Err((Failure::Task(message), output)) => {
                    let first_line = message.lines().next().unwrap_or_default();
                    tracing::warn!(context = %event.shkeptncontext, action = %action.name, reason = %first_line, "job task failed");
                    metrics::counter!("keelson_job_tasks_total", "outcome" => "failed").increment(1);
                    self.log(event, keptn_task, format!("{message}\n{output}")).await;
                    return Err(Failure::Task(message));
                }
                Err((Failure::Stopped, _)) => {
                    tracing::info!(context = %event.shkeptncontext, action = %action.name, task = %task.name, "job task stopped: the sequence was aborted");
                    metrics::counter!("keelson_job_tasks_total", "outcome" => "stopped").increment(1);
                    return Err(Failure::Stopped);
                }
            }
        }
        Ok(names)
    }

    /// Why `task` may not run at all: no command, or one outside the allow-list.
    fn refusal(&self, task: &Task) -> Option<String> {
        let Some(program) = task.cmd.first() else {
            return Some(format!(
                "Task '{}' failed: it has no cmd (the process runner needs a command to run)",
                task.name
            ));
        };
        if self.settings.allowed_commands.iter().any(|allowed| allowed == "*" || allowed == program) {
            return None;
        }
        let allowed = if self.settings.allowed_commands.is_empty() {
            "none is allowed".to_owned()
        } else {
            self.settings.allowed_commands.join(", ")
        };
        Some(format!(
            "Task '{}' failed: command '{program}' is not allowed (job_allowed_commands: {allowed})",
            task.name
        ))
    }

    /// Prepares and runs one task; its output, or the failure and its output, with every secret value
    /// the task was given hidden.
    async fn run_task(
        &self,
        event: &CloudEvent,
        scope: Scope<'_>,
        event_json: &Value,
        task: &Task,
        stopped: watch::Receiver<bool>,
    ) -> Result<String, (Failure, String)> {
        let fail = |reason: String| (Failure::Task(format!("Task '{}' failed: {reason}", task.name)), String::new());
        let mut notes = String::new();
        let ignored = task.ignored_settings();
        if !ignored.is_empty() {
            notes.push_str(&format!("note: the process runner ignores {}\n", ignored.join(", ")));
        }
        let (program, leading_args) = task.cmd.split_first().ok_or_else(|| fail("it has no cmd".into()))?;
        let mut secrets = Vec::new();
        let env = self.environment(event, scope, event_json, task, &mut secrets).await.map_err(&fail)?;
        let patterns = redaction_patterns(&secrets);
        let hide = |text: &str| redact(text, &patterns.iter().map(String::as_str).collect::<Vec<_>>());
        let directory = tokio::task::spawn_blocking(|| tempfile::Builder::new().prefix("keelson-job-").tempdir())
            .await
            .map_err(|error| fail(format!("cannot create a working directory: {error}")))?
            .map_err(|error| fail(format!("cannot create a working directory: {error}")))?;
        let prepared = async {
            self.place_files(event, scope, task, directory.path()).await?;
            working_dir(directory.path(), task.working_dir.as_deref()).await
        };
        let working_dir = match prepared.await {
            Ok(working_dir) => working_dir,
            Err(reason) => {
                remove_later(directory);
                return Err(fail(hide(&reason)));
            }
        };
        if *stopped.borrow() {
            remove_later(directory);
            return Err((Failure::Stopped, String::new()));
        }
        let mut args: Vec<String> = leading_args.to_vec();
        args.extend(task.args.iter().cloned());
        let limit = task.max_duration();
        let command = process::Command { program: program.clone(), args, working_dir, env, time_limit: limit };
        let finished = process::run(command, stopped).await;
        remove_later(directory);
        // Hidden before anything is cut from it: a cut could split a secret and leave part of it.
        let output = hide(&finished.output);
        let logged = format!("{notes}{output}");
        let reason = match finished.ending {
            Ending::Exited(0) => return Ok(logged),
            Ending::Stopped => return Err((Failure::Stopped, logged)),
            Ending::Exited(code) => format!("exit code {code}"),
            Ending::Signalled(signal) => format!("ended by signal {signal}"),
            Ending::TimedOut => format!(
                "did not finish within {} (maxPollDuration); its processes were killed",
                humantime::format_duration(limit)
            ),
            Ending::NotStarted(reason) => hide(&reason),
        };
        let tail = process::tail(&output, MESSAGE_LINES, MESSAGE_BYTES);
        let message = if tail.is_empty() {
            format!("Task '{}' failed: {reason}", task.name)
        } else {
            format!("Task '{}' failed: {reason}. Last output:\n{tail}", task.name)
        };
        Err((Failure::Task(message), logged))
    }

    /// `PATH`, the task's `env`, then the Keptn variables (which win over a declared variable of the
    /// same name, as with the job-executor-service). `secrets` collects the secret values given.
    async fn environment(
        &self,
        event: &CloudEvent,
        scope: Scope<'_>,
        event_json: &Value,
        task: &Task,
        secrets: &mut Vec<String>,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env = vec![("PATH".to_owned(), self.path.clone())];
        for variable in &task.env {
            match variable.value_from {
                ValueFrom::String => env.push((variable.name.clone(), variable.value.clone())),
                ValueFrom::Event => {
                    let value = config::event_value(&variable.value, variable.format.as_deref(), event_json)
                        .map_err(|reason| format!("env {}: {reason}", variable.name))?;
                    env.push((variable.name.clone(), value));
                }
                ValueFrom::Secret => {
                    let name = &variable.name;
                    let not_found = || format!("secret '{name}' not found in scope {SECRET_SCOPE}");
                    let keys = self
                        .access
                        .secret_keys(name, SECRET_SCOPE)
                        .await
                        .map_err(|error| format!("cannot read secret '{name}': {error}"))?
                        .ok_or_else(not_found)?;
                    for key in keys {
                        let value = self
                            .access
                            .secret(name, SECRET_SCOPE, &key)
                            .await
                            .map_err(|error| format!("cannot read secret '{name}': {error}"))?
                            .ok_or_else(not_found)?;
                        if !value.is_empty() {
                            secrets.push(value.clone());
                        }
                        env.push((key, value));
                    }
                }
            }
        }
        env.extend([
            ("KEPTN_PROJECT".to_owned(), scope.project.to_owned()),
            ("KEPTN_STAGE".to_owned(), scope.stage.to_owned()),
            ("KEPTN_SERVICE".to_owned(), scope.service.to_owned()),
            ("KEPTN_CONTEXT".to_owned(), event.shkeptncontext.clone()),
            ("KEPTN_EVENT_ID".to_owned(), event.id.clone()),
        ]);
        Ok(env)
    }

    /// Copies the task's `files` (service-level resources at the event's commit) into `directory`; a
    /// path naming a directory brings every file under it.
    async fn place_files(
        &self,
        event: &CloudEvent,
        scope: Scope<'_>,
        task: &Task,
        directory: &Path,
    ) -> Result<(), String> {
        let Scope { project, stage, service } = scope;
        let level = Level::Service { stage, service };
        let commit = event.gitcommitid.as_deref();
        for file in &task.files {
            relative_path(file).ok_or_else(|| format!("file '{file}' is not a resource path"))?;
            let uri = file.trim_start_matches('/');
            let read = |uri: String| async move {
                self.access
                    .resource(project, level, &uri, commit)
                    .await
                    .map_err(|error| format!("cannot read file '{uri}': {error}"))
            };
            match read(uri.to_owned()).await? {
                Some(content) => place(directory, uri, content).await?,
                None => {
                    let under = self
                        .access
                        .resources_under(project, level, uri, commit)
                        .await
                        .map_err(|error| format!("cannot list '{file}': {error}"))?;
                    if under.is_empty() {
                        return Err(format!("file '{file}' not found in service {service} of stage {stage}"));
                    }
                    for nested in under {
                        let nested = nested.trim_start_matches('/').to_owned();
                        let content = read(nested.clone())
                            .await?
                            .ok_or_else(|| format!("file '{nested}' vanished while read"))?;
                        place(directory, &nested, content).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn send_started(&self, event: &CloudEvent, sender: &Sender, task: &str) {
        let started = sender.reply(
            event,
            &event_type::task(task, event_type::STARTED),
            json!({ "status": TaskStatus::Succeeded }),
        );
        sender.send_logged(started).await;
    }

    async fn send_failed(&self, event: &CloudEvent, sender: &Sender, task: &str, message: &str) {
        let data = json!({ "status": TaskStatus::Errored, "result": TaskResult::Fail, "message": message });
        sender.send_logged(sender.reply(event, &event_type::task(task, event_type::FINISHED), data)).await;
    }

    /// Adds an entry to the job executor's integration log (what the Bridge's integrations page
    /// shows). The log keeps the start of long entries, so a long output is cut here to its first
    /// line and its end, where failures explain themselves.
    async fn log(&self, event: &CloudEvent, task: &str, message: String) {
        let entry = LogEntry {
            message: head_and_tail(&message, LOG_BYTES),
            time: chrono::Utc::now(),
            shkeptncontext: event.shkeptncontext.clone(),
            task: task.to_owned(),
            triggeredid: event.id.clone(),
            gitcommitid: event.gitcommitid.clone().unwrap_or_default(),
            ..Default::default()
        };
        if let Err(error) = self.access.log(NAME, entry).await {
            tracing::debug!(%error, "cannot store a job log entry");
        }
    }
}

/// Removes a task's working directory off the async threads (it may hold a large tree).
fn remove_later(directory: tempfile::TempDir) {
    tokio::task::spawn_blocking(move || drop(directory));
}

/// What redaction looks for: each secret value, and each line of a multi-line one (a certificate, a
/// kubeconfig) long enough not to hide ordinary text, since output may show it line by line.
fn redaction_patterns(secrets: &[String]) -> Vec<String> {
    let mut patterns: Vec<String> = secrets.to_vec();
    for secret in secrets.iter().filter(|secret| secret.contains('\n')) {
        patterns.extend(secret.lines().map(str::trim).filter(|line| line.len() >= MIN_SECRET_LINE).map(str::to_owned));
    }
    patterns
}

/// `text` if it fits in `limit` bytes, else its first line, a marker and as much of its end as fits.
fn head_and_tail(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let first = crate::model::text::char_prefix(text.lines().next().unwrap_or_default(), limit / 4);
    let room = limit.saturating_sub(first.len() + 32);
    let mut start = text.len() - room;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("{first}\n[… {} bytes left out …]\n{}", start, &text[start..])
}

/// A Keptn context and a stage: what an abort names.
type RunKey = (String, String);
/// A running action's stop switch, with its registration's number.
type Switch = (u64, watch::Sender<bool>);

/// Stop switches of the running actions, each with its registration's number.
#[derive(Default)]
struct Running {
    next: std::sync::atomic::AtomicU64,
    switches: Mutex<HashMap<RunKey, Vec<Switch>>>,
}

/// An action's entry in [`Running`]; dropping it removes the entry.
struct Registration<'a> {
    running: &'a Running,
    key: RunKey,
    id: u64,
    stopped: watch::Receiver<bool>,
}

impl Running {
    fn register(&self, context: &str, stage: &str) -> Registration<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (stop, stopped) = watch::channel(false);
        let key = (context.to_owned(), stage.to_owned());
        self.switches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(key.clone())
            .or_default()
            .push((id, stop));
        Registration { running: self, key, id, stopped }
    }

    /// Stops every action running for the stage `stage` of `context`.
    fn stop(&self, context: &str, stage: &str) {
        let key = (context.to_owned(), stage.to_owned());
        let switches = self.switches.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&key);
        for (_, stop) in switches.into_iter().flatten() {
            let _ = stop.send(true);
        }
    }
}

impl Registration<'_> {
    fn stopped(&self) -> watch::Receiver<bool> {
        self.stopped.clone()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut switches = self.running.switches.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entries) = switches.get_mut(&self.key) {
            entries.retain(|(id, _)| *id != self.id);
            if entries.is_empty() {
                switches.remove(&self.key);
            }
        }
    }
}

fn keptn_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Writes one resource's `content` to its path under `directory`.
async fn place(directory: &Path, uri: &str, content: String) -> Result<(), String> {
    let relative = relative_path(uri).ok_or_else(|| format!("file '{uri}' is not a resource path"))?;
    // Resources reach the services as text: a binary file would arrive damaged.
    if content.contains(char::REPLACEMENT_CHARACTER) {
        return Err(format!("file '{uri}' is not text (the job executor copies text files only)"));
    }
    let target = directory.join(relative);
    if let Some(parent) = target.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|error| format!("cannot place file '{uri}': {error}"))?;
    }
    tokio::fs::write(&target, content).await.map_err(|error| format!("cannot place file '{uri}': {error}"))
}

/// A resource path as a relative path without `..` (a leading `/` is allowed, as in Keptn's URIs).
fn relative_path(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    let clean = relative.components().all(|component| matches!(component, Component::Normal(_)));
    (clean && relative.components().next().is_some()).then(|| relative.to_owned())
}

/// The task's working directory: `directory`, or `workingDir` inside it. The job-executor-service
/// mounts files at `/keptn`, so `/keptn/…` means the same place here.
async fn working_dir(directory: &Path, requested: Option<&str>) -> Result<PathBuf, String> {
    let Some(requested) = requested.filter(|requested| !requested.is_empty()) else {
        return Ok(directory.to_owned());
    };
    let outside = || format!("workingDir '{requested}' must lie in the task's directory (/keptn or a relative path)");
    let inside = match requested.strip_prefix("/keptn") {
        Some("") | Some("/") => return Ok(directory.to_owned()),
        Some(rest) if rest.starts_with('/') => rest,
        Some(_) => return Err(outside()),
        None if requested.starts_with('/') => return Err(outside()),
        None => requested,
    };
    let relative = relative_path(inside).ok_or_else(outside)?;
    let path = directory.join(relative);
    tokio::fs::create_dir_all(&path)
        .await
        .map_err(|error| format!("cannot create workingDir '{requested}': {error}"))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_paths_stay_inside() {
        assert_eq!(relative_path("/scripts/deploy.sh"), Some(PathBuf::from("scripts/deploy.sh")));
        assert_eq!(relative_path("values.yaml"), Some(PathBuf::from("values.yaml")));
        for bad in ["../etc/passwd", "a/../../b", "", "/", "./x"] {
            assert_eq!(relative_path(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn working_dirs_map_into_the_task_directory() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        assert_eq!(working_dir(root, None).await.unwrap(), root);
        assert_eq!(working_dir(root, Some("/keptn")).await.unwrap(), root);
        assert_eq!(working_dir(root, Some("/keptn/app")).await.unwrap(), root.join("app"));
        assert_eq!(working_dir(root, Some("sub")).await.unwrap(), root.join("sub"));
        assert!(working_dir(root, Some("/etc")).await.is_err_and(|e| e.contains("must lie")));
        assert!(working_dir(root, Some("/keptnx")).await.is_err());
        assert!(working_dir(root, Some("../up")).await.is_err());
    }

    #[test]
    fn multi_line_secrets_are_hidden_line_by_line() {
        let key = "-----BEGIN KEY-----\nAAAAB3NzaC1yc2EAAAADAQAB\nshort\n-----END KEY-----".to_owned();
        let patterns = redaction_patterns(&[key.clone(), "token-1234".to_owned()]);
        let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
        // The output shows the key's middle line alone (a cut, or a tool printing it line by line).
        let output = "using AAAAB3NzaC1yc2EAAAADAQAB and token-1234; short words stay";
        assert_eq!(redact(output, &refs), "using *** and ***; short words stay");
        assert_eq!(redact(&key, &refs), "***");
    }

    #[test]
    fn long_log_entries_keep_their_first_line_and_end() {
        let text = format!("task 'x' failed\n{}\nthe reason at the end", "line\n".repeat(2000));
        let cut = head_and_tail(&text, 4000);
        assert!(cut.len() <= 4000, "{}", cut.len());
        assert!(cut.starts_with("task 'x' failed\n[… ") && cut.ends_with("the reason at the end"), "{cut}");
        assert_eq!(head_and_tail("short", 4000), "short");
    }

    #[test]
    fn aborts_reach_the_actions_of_their_stage_only() {
        let running = Running::default();
        let dev = running.register("ctx", "dev");
        let prod = running.register("ctx", "prod");
        running.stop("ctx", "dev");
        assert!(*dev.stopped().borrow());
        assert!(!*prod.stopped().borrow());
        drop(prod);
        drop(dev);
        assert!(running.switches.lock().unwrap().is_empty(), "ended actions leave no entry");
    }

    #[test]
    fn aborts_are_sequence_finished_events() {
        let mut event = CloudEvent::emitted(
            "sh.keptn.event.dev.delivery.finished",
            "e".into(),
            "c".into(),
            chrono::Utc::now(),
            json!({ "status": "aborted" }),
        );
        assert!(is_sequence_abort(&event));
        event.data["status"] = json!("succeeded");
        assert!(!is_sequence_abort(&event));
        event.event_type = "sh.keptn.event.deployment.finished".into();
        event.data["status"] = json!("aborted");
        assert!(!is_sequence_abort(&event));
    }
}
