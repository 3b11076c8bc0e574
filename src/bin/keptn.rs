//! `keptn`: a command line compatible with Keptn's CLI.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "keptn", about = "The Keptn command line, for Keelson and Keptn 1.x")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Prints the CLI version and the Keptn API version it speaks.
    Version,
}

fn main() {
    match Cli::parse().command {
        Command::Version => {
            println!(
                "Keptn CLI version: {} (Keelson {})",
                keelson::http::api_v1::KEPTN_COMPATIBLE_VERSION,
                env!("CARGO_PKG_VERSION")
            );
        }
    }
}
