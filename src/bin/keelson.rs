//! `keelson`: the control plane server.

/// mimalloc: Keelson allocates many small, short-lived JSON values per event.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;

use std::io::{IsTerminal as _, Write as _};

use clap::Parser;
use keelson::config::{Config, LogFormat};

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
    /// Validates the configuration and checks that its servers answer, then exits (0: all fine)
    /// without serving anything.
    CheckConfig,
    /// Moves a Keptn 1.x installation's data into a running Keelson: projects (taken over from their
    /// git upstreams), the event history (from Keptn's MongoDB) and secrets (from a `kubectl get
    /// secrets -o json` dump). Safe to repeat. The API token is `KEELSON_API_TOKEN`.
    Import {
        /// Keptn's MongoDB, e.g. `mongodb://user:password@host:27017/keptn` (database `keptn` when
        /// the URL names none).
        #[arg(long, value_name = "URL")]
        from_mongodb: String,
        /// Output of `kubectl get secrets -n keptn -o json`: upstream credentials
        /// (`git-credentials-<project>`) and the secret-service's secrets.
        #[arg(long, value_name = "FILE")]
        secrets: Option<PathBuf>,
        /// The running Keelson.
        #[arg(long, env = "KEELSON_API_URL", default_value = "http://127.0.0.1:8080")]
        endpoint: String,
        /// Only this project (repeatable); all projects when absent.
        #[arg(long = "project", value_name = "NAME")]
        projects: Vec<String>,
        /// Leave the event history out.
        #[arg(long)]
        skip_events: bool,
    },
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
    let traces = init_tracing(&config);
    let runtime = actix_web::rt::System::new();
    let outcome = match args.command {
        None => runtime.block_on(run(config)),
        Some(Command::Service { names, endpoint }) => runtime.block_on(run_services(config, names, endpoint)),
        Some(Command::CheckConfig) => runtime.block_on(check_config(config)),
        Some(Command::Import { from_mongodb, secrets, endpoint, projects, skip_events }) => {
            let token = config.api_token.clone();
            runtime.block_on(async move {
                let token = token.ok_or_else(|| anyhow::anyhow!("set KEELSON_API_TOKEN to the Keelson's API token"))?;
                let options = keelson::import::Options {
                    mongodb_url: from_mongodb,
                    secrets_file: secrets,
                    endpoint,
                    token,
                    projects,
                    skip_events,
                };
                let report = keelson::import::run(&options).await?;
                if report.failures > 0 {
                    anyhow::bail!("{} item(s) failed; fix them and run the import again", report.failures);
                }
                Ok(())
            })
        }
    };
    if let Some(provider) = traces {
        // Spans still in the batch leave now.
        let _ = provider.shutdown();
    }
    if let Err(error) = outcome {
        fail(&format!("{error:#}"));
    }
}

/// Prints one line and exits non-zero.
fn fail(message: &str) -> ! {
    say(&format!("keelson: {}", message.replace('\n', " ")));
    std::process::exit(1);
}

/// Writes a line for the operator on standard error; a closed stream is ignored, never a panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Everything goes to standard error (standard output stays free); colour only on a terminal and
/// without `NO_COLOR`; `KEELSON_LOG_FORMAT=json` writes one JSON object per line. With
/// `KEELSON_OTLP_ENDPOINT`, trace spans are exported too; the returned provider flushes them at exit.
fn init_tracing(config: &Config) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // The filter was checked when the configuration was read. Trace spans never reach the logs.
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive(format!("{}=off", keelson::telemetry::TARGET).parse().expect("a valid directive"));
    // A closed stderr drops log lines instead of panicking on the report of the failed write.
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).log_internal_errors(false);
    let logs = match config.log_format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            logs.with_target(false).with_ansi(colour).with_filter(filter).boxed()
        }
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(false).with_filter(filter).boxed(),
    };
    let mut layers: Vec<BoxedLayer> = vec![logs];
    let provider = match config.otlp_endpoint.as_ref().map(traces) {
        Some(Ok((layer, provider))) => {
            layers.push(layer);
            Some(provider)
        }
        Some(Err(error)) => fail(&format!("cannot set up OTLP traces: {error}")),
        None => None,
    };
    tracing_subscriber::registry().with(layers).init();
    provider
}

type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// The layer exporting trace spans to the OTLP/HTTP collector at `endpoint`, in batches.
fn traces(endpoint: &url::Url) -> anyhow::Result<(BoxedLayer, opentelemetry_sdk::trace::SdkTracerProvider)> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig as _;
    use tracing_subscriber::Layer as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
        .with_endpoint(format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/')))
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name("keelson")
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let only_trace_spans =
        tracing_subscriber::filter::Targets::new().with_target(keelson::telemetry::TARGET, tracing::Level::INFO);
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("keelson")).with_filter(only_trace_spans);
    Ok((layer.boxed(), provider))
}

/// A line for the operator that is not a log event (the address, a generated token): plain text, or
/// in the JSON format one JSON object like the log lines.
fn announce(config: &Config, message: &str) {
    match config.log_format {
        LogFormat::Text => say(message),
        LogFormat::Json => say(&serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "INFO",
            "target": "keelson",
            "message": message,
        })
        .to_string()),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let listener =
        std::net::TcpListener::bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let server = keelson::server::start(&config, listener).await?;
    if server.control_plane.token_generated {
        // Shown once, when it is generated (it stays in <data_dir>/api-token), and never logged: the
        // operator needs it for `keptn auth`.
        announce(&config, &format!("API token (x-token): {}", server.control_plane.state.token.as_str()));
    }
    tracing::info!(address = %server.addr, data_dir = %config.data_dir.display(), "keelson is serving");
    announce(&config, &format!("Keelson is listening on http://{}", server.addr));
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

/// Prints one line per check on standard output; fails if any check failed.
async fn check_config(config: Config) -> anyhow::Result<()> {
    let findings = keelson::check::check(&config).await;
    let mut out = std::io::stdout().lock();
    for finding in &findings {
        let _ = match &finding.problem {
            None => writeln!(out, "ok    {}", finding.what),
            Some(problem) => writeln!(out, "fail  {}: {}", finding.what, problem.replace('\n', " ")),
        };
    }
    let failed = findings.iter().filter(|finding| finding.problem.is_some()).count();
    if failed > 0 {
        anyhow::bail!("{failed} of {} checks failed", findings.len());
    }
    Ok(())
}

/// How long the control plane may take to make accepted work durable after the HTTP server stopped.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(4);

async fn run_services(config: Config, names: Vec<String>, endpoint: String) -> anyhow::Result<()> {
    keelson::services::run_standalone(&config, &names, &endpoint).await?;
    tracing::info!(services = %names.join(", "), %endpoint, "services are running");
    announce(&config, &format!("Running {} against {endpoint}", names.join(", ")));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
    Ok(())
}
