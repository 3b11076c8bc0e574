//! `keptn`: a command line compatible with Keptn's CLI (see [`keelson::cli`]).

use clap::Parser as _;

fn main() {
    let cli = keelson::cli::args::Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime starts");
    if let Err(error) = runtime.block_on(keelson::cli::run(cli)) {
        eprintln!("Error: {error}");
        std::process::exit(error.exit_code());
    }
}
