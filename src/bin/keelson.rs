//! `keelson`: the control plane server.

/// mimalloc: Keelson allocates many small, short-lived JSON values per event.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use clap::Parser;
use keelson::config::Config;

#[derive(Parser)]
#[command(name = "keelson", version, about = "A Keptn-compatible control plane")]
struct Args {
    /// Configuration file (TOML); `KEELSON_*` environment variables override it.
    #[arg(long, short = 'c', env = "KEELSON_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Runs built-in services (approval, lighthouse, remediation, webhook) as their own process on the
    /// control plane's NATS server, instead of inside the control plane.
    Service {
        /// The services to run.
        #[arg(required = true)]
        names: Vec<String>,
        /// The control plane's API (its token is `KEELSON_API_TOKEN`).
        #[arg(long, env = "KEELSON_API_URL", default_value = "http://127.0.0.1:8080")]
        endpoint: String,
    },
}

fn main() {
    let args = Args::parse();
    let config = match Config::load_from_process_env(args.config.as_deref()) {
        Ok(config) => config,
        Err(error) => fail(&error.to_string()),
    };
    init_tracing(&config.log);
    let runtime = actix_web::rt::System::new();
    let outcome = match args.command {
        None => runtime.block_on(run(config)),
        Some(Command::Service { names, endpoint }) => runtime.block_on(run_services(config, names, endpoint)),
    };
    if let Err(error) = outcome {
        fail(&format!("{error:#}"));
    }
}

/// Prints one line and exits non-zero.
fn fail(message: &str) -> ! {
    eprintln!("keelson: {}", message.replace('\n', " "));
    std::process::exit(1);
}

fn init_tracing(filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).init();
}

async fn run(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener =
        std::net::TcpListener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let server = keelson::server::start(&config, listener).await?;
    if server.control_plane.token_from_data_dir {
        // Printed on stdout, never logged: the operator needs it for `keptn auth`.
        println!("API token (x-token): {}", server.control_plane.state.token.as_str());
    }
    tracing::info!(address = %server.addr, data_dir = %config.data_dir.display(), "keelson is serving");
    println!("Keelson is listening on http://{}", server.addr);
    let mut stopped = server.stopped;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        result = &mut stopped => {
            result.context("server task failed")?.context("server failed")?;
            return Ok(());
        }
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    // Stop taking input (HTTP first: requests in flight finish), then make everything accepted durable.
    tracing::info!("shutting down");
    server.handle.stop(true).await;
    if !server.control_plane.shutdown(DRAIN_TIME).await {
        anyhow::bail!(
            "stopped before all accepted work was durable (it is redelivered or recovered at the next start)"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// How long the control plane may take to make accepted work durable after the HTTP server stopped.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(4);

async fn run_services(config: Config, names: Vec<String>, endpoint: String) -> anyhow::Result<()> {
    keelson::services::run_standalone(&config, &names, &endpoint).await?;
    tracing::info!(services = %names.join(", "), %endpoint, "services are running");
    println!("Running {} against {endpoint}", names.join(", "));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    Ok(())
}
