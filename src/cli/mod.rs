//! The `keptn` command line: Keptn's commands and flags, against Keelson or any Keptn 1.x API.
//!
//! Exit codes: 0 success; 1 an error (unreachable endpoint, refused token, a 4xx/5xx answer, bad
//! input), printed as one line on standard error; 2 wrong usage (from the argument parser); with
//! `--watch`, 3 when the sequence ended failed, errored or aborted and 4 when watching timed out.

pub mod args;
pub mod client;
pub mod error;
mod events;
pub mod input;
pub mod output;
mod projects;
mod watch;

use args::{Cli, Command};
use client::{ApiClient, Credentials};
pub use error::CliError;
pub use output::Printer;

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
