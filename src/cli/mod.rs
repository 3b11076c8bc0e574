//! The `keptn` command line: Keptn's commands and flags, against Keelson or any Keptn 1.x API.
//!
//! Exit codes: 0 success; 1 an error (unreachable endpoint, refused token, a 4xx/5xx answer, bad
//! input), printed as one line on standard error; 2 wrong usage (from the argument parser); with
//! `--watch`, 3 when the sequence ended failed, errored or aborted and 4 when watching timed out.

pub mod args;
pub mod client;
mod events;
pub mod output;
mod projects;
mod watch;

use serde_json::{Map, Value};

use args::{Cli, Command};
use client::{ApiClient, Credentials};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Auth(String),
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Io(String),
    /// A watched sequence ended without passing.
    #[error("{0}")]
    SequenceFailed(String),
    #[error("{0}")]
    WatchTimedOut(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::SequenceFailed(_) => 3,
            CliError::WatchTimedOut(_) => 4,
            _ => 1,
        }
    }
}

/// What commands print through: nothing but errors with `--quiet`.
pub struct Printer {
    pub quiet: bool,
}

impl Printer {
    pub fn line(&self, text: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", text.as_ref());
        }
    }

    /// Output asked for explicitly (`get`, `-o json`): printed even with `--quiet`.
    pub fn data(&self, text: impl AsRef<str>) {
        println!("{}", text.as_ref());
    }
}

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    if cli.mock {
        return Err(CliError::Usage("--mock is not supported: nothing is sent without calling the API".into()));
    }
    if let Some(file) = &cli.config_file {
        return Err(CliError::Usage(format!(
            "--config-file {} is not supported: Keelson's keptn keeps its only settings, the endpoint and token, in ~/.keptn/.keptn (keptn auth) or KEPTN_ENDPOINT and KEPTN_API_TOKEN",
            file.display()
        )));
    }
    let out = Printer { quiet: cli.quiet };
    let client = || Credentials::load().map(|credentials| ApiClient::new(credentials, cli.verbose));
    match cli.command {
        Command::Auth(args) => projects::auth(args, cli.verbose, &out).await,
        Command::Status => projects::status(&client()?, &out).await,
        Command::Version => projects::version(client().ok(), &out).await,
        Command::Create(what) => projects::create(&client()?, what, &out).await,
        Command::Update(what) => projects::update(&client()?, what, &out).await,
        Command::Delete(what) => projects::delete(&client()?, what, &out).await,
        Command::Get(what) => projects::get(&client()?, what, &out).await,
        Command::AddResource(args) => projects::add_resource(&client()?, args, &out).await,
        Command::Trigger(what) => events::trigger(&client()?, what, &out).await,
        Command::Send(args::Send::Event(args)) => events::send_event(&client()?, args, cli.yes, &out).await,
        Command::Approve(args) => events::approve(&client()?, args, cli.yes, &out).await,
        Command::Abort(args::SequenceNoun::Sequence(args)) => events::control(&client()?, "abort", args, &out).await,
        Command::Pause(args::SequenceNoun::Sequence(args)) => events::control(&client()?, "pause", args, &out).await,
        Command::Resume(args::SequenceNoun::Sequence(args)) => events::control(&client()?, "resume", args, &out).await,
        Command::Configure(args::Configure::Monitoring(args)) => {
            events::configure_monitoring(&client()?, args, &out).await
        }
        Command::Completion(args) => {
            use clap::CommandFactory as _;
            use std::io::Write as _;
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "keptn", &mut script);
            // A closed pipe (`| head`) ends the output quietly.
            let _ = std::io::stdout().write_all(&script);
            Ok(())
        }
        Command::Install(_) => {
            not_needed("keptn install", "Keelson is one binary: start it with `keelson` (see its README)")
        }
        Command::Upgrade(_) => {
            not_needed("keptn upgrade", "upgrade Keelson by replacing its binary and starting it again")
        }
        Command::Uninstall(_) => not_needed("keptn uninstall", "stop Keelson and remove its binary and data directory"),
        Command::Configure(args::Configure::Bridge(_)) => not_needed(
            "keptn configure bridge",
            "Keelson serves the Bridge at /bridge/ on its own address, behind the API token",
        ),
    }
}

/// A Keptn command that has nothing to do with Keelson: one friendly line on standard error, exit 0.
fn not_needed(command: &str, instead: &str) -> Result<(), CliError> {
    eprintln!("{command} is not needed with Keelson: {instead}.");
    Ok(())
}

/// `k=v` pairs (labels, literals) as a map; a pair without `=` is an error naming the flag.
pub fn key_values(flag: &str, pairs: &[String]) -> Result<Map<String, Value>, CliError> {
    let mut map = Map::new();
    for pair in pairs.iter().filter(|pair| !pair.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, _)| !key.is_empty())
            .ok_or_else(|| CliError::Usage(format!("invalid {flag} '{pair}': expected key=value")))?;
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
    Ok(map)
}

/// `a.b=c` pairs as nested JSON (`{"a": {"b": "c"}}`), as Keptn's `--values` and `--data` do.
pub fn dotted_values(flag: &str, pairs: &[String]) -> Result<Value, CliError> {
    let mut root = Value::Object(Map::new());
    for (path, value) in key_values(flag, pairs)? {
        let mut node = &mut root;
        let parts: Vec<&str> = path.split('.').collect();
        if parts.iter().any(|part| part.is_empty()) {
            return Err(CliError::Usage(format!("invalid {flag} '{path}': empty key in the path")));
        }
        for part in &parts[..parts.len() - 1] {
            let object = node.as_object_mut().expect("only objects are descended into");
            let child = object.entry((*part).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            node = child;
        }
        node.as_object_mut().expect("only objects are descended into").insert(parts[parts.len() - 1].to_owned(), value);
    }
    Ok(root)
}

/// `evaluation.finished` → `sh.keptn.event.evaluation.finished`.
pub fn full_event_type(given: &str) -> String {
    if given.starts_with("sh.keptn.") {
        given.to_owned()
    } else {
        format!("sh.keptn.event.{given}")
    }
}

/// Percent-encodes one path or query component.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_values_nest() {
        let values = dotted_values("--values", &["a.b=c".into(), "a.d=e".into(), "top=1".into()]).unwrap();
        assert_eq!(values, json!({ "a": { "b": "c", "d": "e" }, "top": "1" }));
        assert!(dotted_values("--values", &["novalue".into()]).is_err());
        assert!(dotted_values("--values", &["a..b=c".into()]).is_err());
    }

    #[test]
    fn labels_and_event_types() {
        assert_eq!(
            key_values("--labels", &["k=v".into(), "x=".into()]).unwrap(),
            json!({ "k": "v", "x": "" }).as_object().unwrap().clone()
        );
        assert!(key_values("--labels", &["=v".into()]).is_err());
        assert_eq!(full_event_type("approval.triggered"), "sh.keptn.event.approval.triggered");
        assert_eq!(full_event_type("sh.keptn.event.dev.delivery.finished"), "sh.keptn.event.dev.delivery.finished");
    }
}
