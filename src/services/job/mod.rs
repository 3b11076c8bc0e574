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

use super::access::{ControlPlaneAccess, Level};
use crate::config::JobSettings;
use crate::model::event::CloudEvent;
use crate::model::event_type;
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
/// Lines of output quoted in a failed task's message.
const MESSAGE_LINES: usize = 20;
/// `PATH` for tasks when Keelson's own environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub async fn run(service: Service, access: Arc<dyn ControlPlaneAccess>, settings: JobSettings) -> Result<(), SdkError> {
    let executor = Arc::new(Executor::new(access, settings));
    service
        .concurrency(CONCURRENCY)
        .run_events(move |event, sender| {
            let executor = Arc::clone(&executor);
            async move { executor.handle(event, sender).await }
        })
        .await
}

/// What every job shares.
struct Executor {
    access: Arc<dyn ControlPlaneAccess>,
    settings: JobSettings,
    slots: Semaphore,
    /// Stop switches of the actions running per Keptn context.
    running: Mutex<HashMap<String, Vec<watch::Sender<bool>>>>,
    path: String,
}

/// Why an action did not finish.
enum Failure {
    /// A task failed; the message names it.
    Task(String),
    /// The sequence was aborted.
    Stopped,
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `(task, kind)` of a task event type.
fn task_and_kind(event_type: &str) -> Option<(&str, &str)> {
    let rest = event_type.strip_prefix("sh.keptn.event.")?;
    let (task, kind) = rest.split_once('.')?;
    (!kind.contains('.')).then_some((task, kind))
}

/// Whether `event` is a sequence's `.finished` with status `aborted`.
fn is_sequence_abort(event: &CloudEvent) -> bool {
    let Some(rest) = event.event_type.strip_prefix("sh.keptn.event.") else { return false };
    rest.split('.').count() == 3 && rest.ends_with(".finished") && text(&event.data["status"]) == "aborted"
}

impl Executor {
    fn new(access: Arc<dyn ControlPlaneAccess>, settings: JobSettings) -> Self {
        let slots = Semaphore::new(settings.max_parallel.max(1));
        let path = std::env::var("PATH").ok().filter(|path| !path.is_empty()).unwrap_or_else(|| DEFAULT_PATH.into());
        Self { access, settings, slots, running: Mutex::default(), path }
    }

    async fn handle(&self, event: CloudEvent, sender: Sender) {
        let data = &event.data;
        let (project, stage, service) = (text(&data["project"]), text(&data["stage"]), text(&data["service"]));
        if project.is_empty() || stage.is_empty() || service.is_empty() {
            return;
        }
        if is_sequence_abort(&event) {
            self.stop(&event.shkeptncontext);
            return;
        }
        let Some((task, kind)) = task_and_kind(&event.event_type) else { return };
        let answers = kind == event_type::TRIGGERED;
        let config = match self.find_config(&event).await {
            None => return,
            Some(Ok(config)) => config,
            Some(Err(message)) => {
                // Not knowing what the file wants, a task it may have been meant for fails visibly.
                tracing::warn!(project, stage, service, %message, "job configuration unreadable");
                if answers {
                    self.send_started(&event, &sender, task).await;
                    self.send_failed(&event, &sender, task, &message).await;
                }
                self.log(&event, task, message).await;
                return;
            }
        };
        let event_json = serde_json::to_value(&event).unwrap_or(Value::Null);
        let Some(action) = config.action_for(&event_json) else { return };
        let answers = answers && !action.silent;
        if answers {
            self.send_started(&event, &sender, task).await;
        }
        let (stop, stopped) = watch::channel(false);
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(event.shkeptncontext.clone())
            .or_default()
            .push(stop);
        let outcome = self.run_action(&event, &event_json, action, stopped).await;
        self.forget_stopped(&event.shkeptncontext);
        match outcome {
            Ok(names) if answers => {
                let message =
                    format!("job-executor action '{}': {} finished successfully", action.name, names.join(", "));
                let data = json!({ "status": TaskStatus::Succeeded, "result": TaskResult::Pass, "message": message });
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

    /// The first `job/config.yaml` found, service → stage → project; `Err` with the reason when it
    /// cannot be read or parsed.
    async fn find_config(&self, event: &CloudEvent) -> Option<Result<JobConfig, String>> {
        let data = &event.data;
        let (project, stage, service) = (text(&data["project"]), text(&data["stage"]), text(&data["service"]));
        let levels = [Level::Service { stage, service }, Level::Stage(stage), Level::Project];
        for level in levels {
            match self.access.resource(project, level, CONFIG_FILE, event.gitcommitid.as_deref()).await {
                Ok(Some(raw)) => return Some(config::parse(&raw).map_err(|error| error.to_string())),
                Ok(None) => continue,
                Err(error) => return Some(Err(format!("cannot read {CONFIG_FILE}: {error}"))),
            }
        }
        None
    }

    /// Runs the action's tasks in order; the names of the tasks run, or why one failed.
    async fn run_action(
        &self,
        event: &CloudEvent,
        event_json: &Value,
        action: &Action,
        stopped: watch::Receiver<bool>,
    ) -> Result<Vec<String>, Failure> {
        let task_name = task_and_kind(&event.event_type).map_or("", |(task, _)| task);
        let mut names = Vec::with_capacity(action.tasks.len());
        for task in &action.tasks {
            let _slot = self.slots.acquire().await.map_err(|_| Failure::Stopped)?;
            if *stopped.borrow() {
                return Err(Failure::Stopped);
            }
            let mut secrets = Vec::new();
            let outcome = self.run_task(event, event_json, task, &mut secrets, stopped.clone()).await;
            let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
            match outcome {
                Ok(output) => {
                    let message =
                        format!("task '{}' of action '{}' finished (exit code 0)\n{output}", task.name, action.name);
                    self.log(event, task_name, redact(&message, &secret_refs)).await;
                    names.push(task.name.clone());
                }
                Err((Failure::Task(message), output)) => {
                    let message = redact(&message, &secret_refs);
                    let logged = format!("{message}\n{}", redact(&output, &secret_refs));
                    self.log(event, task_name, logged).await;
                    metrics::counter!("keelson_job_tasks_total", "outcome" => "failed").increment(1);
                    return Err(Failure::Task(message));
                }
                Err((Failure::Stopped, _)) => {
                    metrics::counter!("keelson_job_tasks_total", "outcome" => "stopped").increment(1);
                    return Err(Failure::Stopped);
                }
            }
            metrics::counter!("keelson_job_tasks_total", "outcome" => "succeeded").increment(1);
        }
        Ok(names)
    }

    /// Prepares and runs one task; its output, or the failure and its output. `secrets` collects the
    /// secret values the task was given, for redaction.
    async fn run_task(
        &self,
        event: &CloudEvent,
        event_json: &Value,
        task: &Task,
        secrets: &mut Vec<String>,
        stopped: watch::Receiver<bool>,
    ) -> Result<String, (Failure, String)> {
        let fail = |reason: String| (Failure::Task(format!("Task '{}' failed: {reason}", task.name)), String::new());
        let mut notes = String::new();
        let ignored = task.ignored_settings();
        if !ignored.is_empty() {
            notes.push_str(&format!("note: the process runner ignores {}\n", ignored.join(", ")));
        }
        let Some((program, leading_args)) = task.cmd.split_first() else {
            return Err(fail("it has no cmd (the process runner needs a command to run)".into()));
        };
        if !self.allowed(program) {
            let allowed = if self.settings.allowed_commands.is_empty() {
                "none is allowed".to_owned()
            } else {
                self.settings.allowed_commands.join(", ")
            };
            return Err(fail(format!("command '{program}' is not allowed (job_allowed_commands: {allowed})")));
        }
        let env = self.environment(event, event_json, task, secrets).await.map_err(&fail)?;
        let directory = tempfile::Builder::new()
            .prefix("keelson-job-")
            .tempdir()
            .map_err(|error| fail(format!("cannot create a working directory: {error}")))?;
        self.place_files(event, task, directory.path()).await.map_err(&fail)?;
        let working_dir = working_dir(directory.path(), task.working_dir.as_deref()).map_err(&fail)?;
        let mut args: Vec<String> = leading_args.to_vec();
        args.extend(task.args.iter().cloned());
        let limit = task.max_duration();
        let command = process::Command { program: program.clone(), args, working_dir, env, time_limit: limit };
        let finished = process::run(command, stopped).await;
        let output = format!("{notes}{}", finished.output);
        let tail = process::last_lines(&finished.output, MESSAGE_LINES);
        let reason = match finished.ending {
            Ending::Exited(0) => return Ok(output),
            Ending::Stopped => return Err((Failure::Stopped, output)),
            Ending::Exited(code) => format!("exit code {code}"),
            Ending::Signalled(signal) => format!("ended by signal {signal}"),
            Ending::TimedOut => format!(
                "did not finish within {} (maxPollDuration); its processes were killed",
                humantime::format_duration(limit)
            ),
            Ending::NotStarted(reason) => reason,
        };
        let message = if tail.is_empty() {
            format!("Task '{}' failed: {reason}", task.name)
        } else {
            format!("Task '{}' failed: {reason}. Last output:\n{tail}", task.name)
        };
        Err((Failure::Task(message), output))
    }

    fn allowed(&self, program: &str) -> bool {
        self.settings.allowed_commands.iter().any(|allowed| allowed == "*" || allowed == program)
    }

    /// `PATH`, the Keptn variables, then the task's `env` (which may override them).
    async fn environment(
        &self,
        event: &CloudEvent,
        event_json: &Value,
        task: &Task,
        secrets: &mut Vec<String>,
    ) -> Result<Vec<(String, String)>, String> {
        let data = &event.data;
        let mut env = vec![
            ("PATH".to_owned(), self.path.clone()),
            ("KEPTN_PROJECT".to_owned(), text(&data["project"]).to_owned()),
            ("KEPTN_STAGE".to_owned(), text(&data["stage"]).to_owned()),
            ("KEPTN_SERVICE".to_owned(), text(&data["service"]).to_owned()),
            ("KEPTN_CONTEXT".to_owned(), event.shkeptncontext.clone()),
            ("KEPTN_EVENT_ID".to_owned(), event.id.clone()),
        ];
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
        Ok(env)
    }

    /// Copies the task's `files` (service-level resources at the event's commit) into `directory`.
    async fn place_files(&self, event: &CloudEvent, task: &Task, directory: &Path) -> Result<(), String> {
        let data = &event.data;
        let (project, stage, service) = (text(&data["project"]), text(&data["stage"]), text(&data["service"]));
        for file in &task.files {
            let relative = relative_path(file).ok_or_else(|| format!("file '{file}' is not a resource path"))?;
            let content = self
                .access
                .resource(
                    project,
                    Level::Service { stage, service },
                    file.trim_start_matches('/'),
                    event.gitcommitid.as_deref(),
                )
                .await
                .map_err(|error| format!("cannot read file '{file}': {error}"))?
                .ok_or_else(|| format!("file '{file}' not found in service {service} of stage {stage}"))?;
            let target = directory.join(relative);
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|error| format!("cannot place file '{file}': {error}"))?;
            }
            tokio::fs::write(&target, content).await.map_err(|error| format!("cannot place file '{file}': {error}"))?;
        }
        Ok(())
    }

    /// Stops every action running for `context`.
    fn stop(&self, context: &str) {
        let stops = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(context);
        for stop in stops.into_iter().flatten() {
            let _ = stop.send(true);
        }
    }

    /// Drops the stop switches of actions that have ended.
    fn forget_stopped(&self, context: &str) {
        let mut running = self.running.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(stops) = running.get_mut(context) {
            stops.retain(|stop| stop.receiver_count() > 0);
            if stops.is_empty() {
                running.remove(context);
            }
        }
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

    /// Adds a line to the job executor's integration log (what the Bridge's integrations page shows).
    async fn log(&self, event: &CloudEvent, task: &str, message: String) {
        let entry = LogEntry {
            message,
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

/// A resource path as a relative path without `..` (a leading `/` is allowed, as in Keptn's URIs).
fn relative_path(path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    let clean = relative.components().all(|component| matches!(component, Component::Normal(_)));
    (clean && relative.components().next().is_some()).then(|| relative.to_owned())
}

/// The task's working directory: `directory`, or `workingDir` inside it. The job-executor-service
/// mounts files at `/keptn`, so `/keptn/…` means the same place here.
fn working_dir(directory: &Path, requested: Option<&str>) -> Result<PathBuf, String> {
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
    std::fs::create_dir_all(&path).map_err(|error| format!("cannot create workingDir '{requested}': {error}"))?;
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

    #[test]
    fn working_dirs_map_into_the_task_directory() {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path();
        assert_eq!(working_dir(root, None).unwrap(), root);
        assert_eq!(working_dir(root, Some("/keptn")).unwrap(), root);
        assert_eq!(working_dir(root, Some("/keptn/app")).unwrap(), root.join("app"));
        assert_eq!(working_dir(root, Some("sub")).unwrap(), root.join("sub"));
        assert!(working_dir(root, Some("/etc")).is_err_and(|e| e.contains("must lie")));
        assert!(working_dir(root, Some("../up")).is_err());
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
