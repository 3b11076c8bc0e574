//! `--watch`: follows a Keptn context's events until every sequence in it has finished (including
//! the ones chained after it), with a spinner in a terminal and one plain line per event otherwise.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::args::Format;
use super::client::ApiClient;
use super::error::CliError;
use super::input::encode;
use super::output::Printer;
use super::output::{formatted, text};

const POLL: Duration = Duration::from_secs(1);

/// The sequences of a context as its events tell them.
#[derive(Default)]
struct Progress {
    /// `<stage>.<sequence>` → (result, status) once finished.
    sequences: BTreeMap<String, Option<(String, String)>>,
}

impl Progress {
    fn see(&mut self, event: &Value) {
        let event_type = event["type"].as_str().unwrap_or_default();
        let Some(rest) = event_type.strip_prefix("sh.keptn.event.") else { return };
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.len() != 3 {
            return;
        }
        let name = format!("{}.{}", parts[0], parts[1]);
        match parts[2] {
            "triggered" => {
                self.sequences.entry(name).or_insert(None);
            }
            "finished" => {
                let outcome = (text(&event["data"]["result"]), text(&event["data"]["status"]));
                self.sequences.insert(name, Some(outcome));
            }
            _ => {}
        }
    }

    fn all_finished(&self) -> bool {
        !self.sequences.is_empty() && self.sequences.values().all(Option::is_some)
    }

    /// The first sequence that did not pass, if any.
    fn failure(&self) -> Option<String> {
        self.sequences.iter().find_map(|(name, outcome)| {
            let (result, status) = outcome.as_ref()?;
            let failed = result == "fail" || matches!(status.as_str(), "errored" | "aborted");
            failed.then(|| format!("sequence {name} ended with result {result}, status {status}"))
        })
    }
}

/// One line for an event: time, type, service, stage, result/status when it has them.
fn describe(event: &Value) -> String {
    let data = &event["data"];
    let mut line = format!(
        "{}  {}  {}/{}",
        text(&event["time"]).get(..19).unwrap_or_default(),
        text(&event["type"]),
        text(&data["stage"]),
        text(&data["service"])
    );
    let (result, status) = (text(&data["result"]), text(&data["status"]));
    if !result.is_empty() || !status.is_empty() {
        line.push_str(&format!("  result={result} status={status}"));
    }
    if let Some(message) = data["message"].as_str().filter(|message| !message.is_empty()) {
        line.push_str(&format!("  {message}"));
    }
    line
}

/// Every event of `context` so far, oldest first.
async fn events_of(client: &ApiClient, project: &str, context: &str) -> Result<Vec<Value>, CliError> {
    let path =
        format!("/mongodb-datastore/event?project={}&keptnContext={}&pageSize=100", encode(project), encode(context));
    let mut events = client.pages(&path, "events", usize::MAX).await?;
    events.reverse();
    Ok(events)
}

/// How a watched event is printed: `format` gives the whole event as one JSON line or one YAML
/// document; without it, a line for people.
fn render(event: &Value, format: Option<Format>) -> Result<String, CliError> {
    match format {
        None => Ok(describe(event)),
        Some(Format::Json) => Ok(serde_json::to_string(event).expect("JSON values serialise")),
        Some(Format::Yaml) => Ok(format!("---\n{}", formatted(event, Format::Yaml)?.trim_end())),
    }
}

pub async fn follow(
    client: &ApiClient,
    project: &str,
    context: &str,
    watch_time: Duration,
    format: Option<Format>,
    out: &Printer,
) -> Result<(), CliError> {
    // The spinner draws on standard error; event lines always go to standard output. Machine-readable
    // output gets no spinner.
    let interactive = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
    let spinner = (interactive && !out.quiet && format.is_none()).then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner.set_message(format!("waiting for the events of {context}"));
        spinner
    });
    let show = |line: String| match (&spinner, format) {
        (Some(spinner), _) => spinner.suspend(|| out.line(&line)),
        (None, Some(_)) => out.data(line),
        (None, None) => out.line(line),
    };
    let deadline = Instant::now() + watch_time;
    let mut seen = HashSet::new();
    let mut progress = Progress::default();
    // All sequences finished at the previous poll too: no chained one is coming.
    let mut settled = false;
    loop {
        let mut fresh = false;
        for event in events_of(client, project, context).await? {
            let id = text(&event["id"]);
            if seen.insert(id) {
                fresh = true;
                progress.see(&event);
                if let Some(spinner) = &spinner {
                    spinner.set_message(format!("{}  {}", text(&event["type"]), text(&event["data"]["stage"])));
                }
                show(render(&event, format)?);
            }
        }
        if progress.all_finished() {
            if settled && !fresh {
                break;
            }
            settled = true;
        } else {
            settled = false;
        }
        if Instant::now() >= deadline {
            if let Some(spinner) = &spinner {
                spinner.finish_and_clear();
            }
            return Err(CliError::WatchTimedOut(format!(
                "stopped watching after {}s; the sequence is still running (keptn context {context})",
                watch_time.as_secs()
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    if let Some(spinner) = &spinner {
        spinner.finish_and_clear();
    }
    match progress.failure() {
        Some(failure) => Err(CliError::SequenceFailed(failure)),
        None => {
            if format.is_none() {
                out.line(format!("Sequence finished (keptn context {context})"));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(event_type: &str, result: &str, status: &str) -> Value {
        json!({ "type": event_type, "data": { "result": result, "status": status } })
    }

    #[test]
    fn a_context_is_done_when_every_sequence_finished() {
        let mut progress = Progress::default();
        assert!(!progress.all_finished());
        progress.see(&event("sh.keptn.event.dev.delivery.triggered", "", ""));
        progress.see(&event("sh.keptn.event.deployment.finished", "pass", "succeeded"));
        assert!(!progress.all_finished());
        progress.see(&event("sh.keptn.event.dev.delivery.finished", "pass", "succeeded"));
        assert!(progress.all_finished());
        progress.see(&event("sh.keptn.event.prod.delivery.triggered", "", ""));
        assert!(!progress.all_finished(), "a chained sequence keeps it open");
        progress.see(&event("sh.keptn.event.prod.delivery.finished", "fail", "succeeded"));
        assert!(progress.all_finished());
        assert_eq!(progress.failure().unwrap(), "sequence prod.delivery ended with result fail, status succeeded");
    }
}
