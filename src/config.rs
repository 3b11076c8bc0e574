//! Keelson's configuration: a TOML file (`keelson --config FILE`) overlaid with `KEELSON_*` environment
//! variables. Every setting is documented in `config/default.toml` and `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

mod cluster;

pub use cluster::{ClusterSettings, DEFAULT_LEASE_TTL, DEFAULT_SHARDS};

/// Default HTTP address: loopback only, so a fresh install is not reachable from the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Keptn's default task first-response timeout (`TASK_STARTED_WAIT_DURATION`).
pub const DEFAULT_TASK_STARTED_TIMEOUT: Duration = Duration::from_secs(600);
/// Keptn's `UNIFORM_INTEGRATION_TTL` default.
pub const DEFAULT_UNIFORM_INTEGRATION_TTL: Duration = Duration::from_secs(60);
/// Ended sequences are kept (for the sequence APIs and the Bridge) this long by default.
pub const DEFAULT_EXECUTION_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
pub const DEFAULT_REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Keptn's gateway accepts bodies up to 5 MiB (`client_max_body_size 5m`).
pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 5 * 1024 * 1024;

/// A setting that could not be used. The message is one line meant for an operator.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid {setting} '{value}': {reason}")]
    Invalid { setting: &'static str, value: String, reason: String },
}

/// The settings as written in a file; every field optional so that the environment can fill gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<String>,
    api_token: Option<String>,
    nats_url: Option<String>,
    redis_url: Option<String>,
    mongodb_url: Option<String>,
    task_started_timeout: Option<String>,
    task_finished_timeout: Option<String>,
    uniform_integration_ttl: Option<String>,
    execution_retention: Option<String>,
    max_request_body_bytes: Option<u64>,
    request_body_timeout: Option<String>,
    git_remote_url_denylist: Option<Vec<String>>,
    git_allowed_hosts: Option<Vec<String>>,
    secret_key: Option<String>,
    secret_scopes: Option<Vec<String>>,
    services: Option<Vec<String>>,
    webhook_allowed_hosts: Option<Vec<String>>,
    webhook_denied_hosts: Option<Vec<String>>,
    webhook_timeout: Option<String>,
    webhook_max_response_bytes: Option<u64>,
    webhook_retries: Option<u32>,
    job_runner: Option<String>,
    job_allowed_commands: Option<Vec<String>>,
    job_max_parallel: Option<usize>,
    log: Option<String>,
    log_format: Option<String>,
    otlp_endpoint: Option<String>,
    cluster: Option<bool>,
    node_id: Option<String>,
    advertise_url: Option<String>,
    shards: Option<u32>,
    lease_ttl: Option<String>,
    join_grace: Option<String>,
    rebalance_max_moves: Option<usize>,
    handoff_timeout: Option<String>,
    forward_timeout: Option<String>,
}

/// A configured secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive(pub String);

impl std::fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The built-in execution-plane services Keelson can run in-process (`job-executor` only runs when
/// [`JobSettings::runner`] enables it).
pub const BUILTIN_SERVICES: &[&str] = &["approval", "lighthouse", "remediation", "webhook", "job-executor"];

/// How the job executor runs tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobRunner {
    /// The job executor does not run.
    #[default]
    Off,
    /// Each task is a local process on the machine Keelson runs on.
    Process,
}

/// What the job executor may run, and how much at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSettings {
    pub runner: JobRunner,
    /// Programs a task's `cmd` may start (its first element, compared as written); `*` allows any.
    pub allowed_commands: Vec<String>,
    /// Tasks running at the same time; more wait.
    pub max_parallel: usize,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            runner: JobRunner::Off,
            allowed_commands: Vec::new(),
            max_parallel: std::thread::available_parallelism().map(usize::from).unwrap_or(1),
        }
    }
}

/// How webhooks may reach the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `host` or `host:port` entries a webhook may call even though they are denied otherwise (loopback,
    /// link-local, the deny list).
    pub allowed_hosts: Vec<String>,
    /// Host names denied besides Keptn's defaults (`kubernetes…`, `localhost`, `cluster.local`).
    pub denied_hosts: Vec<String>,
    /// Longest a request may take, unless its own `--max-time` is shorter.
    pub timeout: Duration,
    /// Larger response bodies fail the request.
    pub max_response_bytes: usize,
    /// Extra attempts after a connection failure or a 429/502/503/504 answer.
    pub retries: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            denied_hosts: Vec::new(),
            timeout: Duration::from_secs(30),
            max_response_bytes: 1024 * 1024,
            retries: 2,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, message and fields), for Loki, ELK or
    /// `kubectl logs` pipelines.
    Json,
}

/// The validated configuration a running Keelson uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// The `x-token` secret; `None` means "generate one in the data dir".
    pub api_token: Option<String>,
    pub nats_url: Option<url::Url>,
    pub redis_url: Option<url::Url>,
    pub mongodb_url: Option<String>,
    pub task_started_timeout: Duration,
    /// Off (`None`) by default: a task that started may run as long as it needs.
    pub task_finished_timeout: Option<Duration>,
    /// An integration that has not registered or pinged for this long is removed.
    pub uniform_integration_ttl: Duration,
    /// A Keptn context whose sequences all ended this long ago is forgotten (its events stay in the
    /// history); `None` keeps everything.
    pub execution_retention: Option<Duration>,
    pub max_request_body_bytes: usize,
    /// A client that has not sent its whole request body after this long gets 408.
    pub request_body_timeout: Duration,
    /// Regular expressions; a git upstream URL matching any of them is refused.
    pub git_remote_url_denylist: Vec<regex::Regex>,
    /// Upstream hosts (`host` or `host:port`) allowed although the destination policy denies them
    /// (loopback, link-local, cluster names).
    pub git_allowed_hosts: Vec<String>,
    /// Base64 of the 32-byte key secrets are encrypted with; `None` means "generate one in the data dir".
    pub secret_key: Option<Sensitive>,
    /// The scopes secrets may be created in.
    pub secret_scopes: Vec<String>,
    /// The built-in services to run in-process (names from [`BUILTIN_SERVICES`]).
    pub services: Vec<String>,
    pub webhook: WebhookSettings,
    pub jobs: JobSettings,
    /// `tracing` filter directive, e.g. `info` or `keelson=debug`.
    pub log: String,
    /// How log lines are written (on standard error).
    pub log_format: LogFormat,
    /// OTLP/HTTP collector traces are exported to (`http://host:4318`); `None`: no traces.
    pub otlp_endpoint: Option<url::Url>,
    /// Set when this instance is one of several sharing the servers (`KEELSON_CLUSTER`).
    pub cluster: Option<ClusterSettings>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("default listen address is valid"),
            data_dir: PathBuf::from("./data"),
            api_token: None,
            nats_url: None,
            redis_url: None,
            mongodb_url: None,
            task_started_timeout: DEFAULT_TASK_STARTED_TIMEOUT,
            task_finished_timeout: None,
            uniform_integration_ttl: DEFAULT_UNIFORM_INTEGRATION_TTL,
            execution_retention: Some(DEFAULT_EXECUTION_RETENTION),
            max_request_body_bytes: DEFAULT_MAX_REQUEST_BODY_BYTES,
            request_body_timeout: DEFAULT_REQUEST_BODY_TIMEOUT,
            git_remote_url_denylist: Vec::new(),
            git_allowed_hosts: Vec::new(),
            secret_key: None,
            secret_scopes: crate::secrets::DEFAULT_SCOPES.iter().map(|scope| (*scope).to_owned()).collect(),
            services: BUILTIN_SERVICES.iter().map(|service| (*service).to_owned()).collect(),
            webhook: WebhookSettings::default(),
            jobs: JobSettings::default(),
            log: "info".to_owned(),
            log_format: LogFormat::Text,
            otlp_endpoint: None,
            cluster: None,
        }
    }
}

impl Config {
    /// Loads the file at `path` (if any), then applies `KEELSON_*` variables from `env`.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let file = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
                toml::from_str::<FileConfig>(&text).map_err(|error| ConfigError::ParseFile {
                    path: path.to_owned(),
                    message: error.message().to_owned(),
                })?
            }
            None => FileConfig::default(),
        };
        Self::from_file_and_env(file, env)
    }

    /// Loads from the process environment.
    pub fn load_from_process_env(path: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load(path, |key| std::env::var(key).ok())
    }

    fn from_file_and_env(file: FileConfig, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        // An empty variable counts as unset, so `KEELSON_NATS_URL=` falls back to the embedded bus.
        let env = |key: &str| env(key).filter(|value| !value.trim().is_empty());
        let mut config = Config::default();

        if let Some(listen) = env("KEELSON_LISTEN").or(file.listen) {
            config.listen = parse_listen(&listen)?;
        }
        if let Some(dir) = env("KEELSON_DATA_DIR").or(file.data_dir) {
            config.data_dir = PathBuf::from(dir);
        }
        config.api_token = env("KEELSON_API_TOKEN").or(file.api_token).filter(|t| !t.is_empty());
        config.nats_url = parse_url("KEELSON_NATS_URL", env("KEELSON_NATS_URL").or(file.nats_url), &["nats", "tls"])?;
        config.redis_url =
            parse_url("KEELSON_REDIS_URL", env("KEELSON_REDIS_URL").or(file.redis_url), &["redis", "rediss"])?;
        config.mongodb_url = parse_url(
            "KEELSON_MONGODB_URL",
            env("KEELSON_MONGODB_URL").or(file.mongodb_url),
            &["mongodb", "mongodb+srv"],
        )?
        .map(|url| url.to_string());
        if let Some(value) = env("KEELSON_TASK_STARTED_TIMEOUT").or(file.task_started_timeout) {
            config.task_started_timeout = positive_duration("KEELSON_TASK_STARTED_TIMEOUT", value)?;
        }
        if let Some(value) = env("KEELSON_TASK_FINISHED_TIMEOUT").or(file.task_finished_timeout) {
            let timeout = parse_duration("KEELSON_TASK_FINISHED_TIMEOUT", &value)?;
            config.task_finished_timeout = (!timeout.is_zero()).then_some(timeout);
        }
        if let Some(value) = env("KEELSON_UNIFORM_INTEGRATION_TTL").or(file.uniform_integration_ttl) {
            config.uniform_integration_ttl = positive_duration("KEELSON_UNIFORM_INTEGRATION_TTL", value)?;
        }
        if let Some(value) = env("KEELSON_EXECUTION_RETENTION").or(file.execution_retention) {
            let retention = parse_duration("KEELSON_EXECUTION_RETENTION", &value)?;
            config.execution_retention = (!retention.is_zero()).then_some(retention);
        }
        let body_limit = match env("KEELSON_MAX_REQUEST_BODY_BYTES") {
            Some(raw) => Some(raw.parse::<u64>().map_err(|_| ConfigError::Invalid {
                setting: "KEELSON_MAX_REQUEST_BODY_BYTES",
                value: raw.clone(),
                reason: "expected a number of bytes".into(),
            })?),
            None => file.max_request_body_bytes,
        };
        if let Some(limit) = body_limit {
            config.max_request_body_bytes = positive_bytes("KEELSON_MAX_REQUEST_BODY_BYTES", limit)?;
        }
        for pattern in file.git_remote_url_denylist.unwrap_or_default() {
            let regex = regex::Regex::new(&pattern).map_err(|error| ConfigError::Invalid {
                setting: "git_remote_url_denylist",
                value: pattern.clone(),
                reason: error.to_string().lines().last().unwrap_or_default().to_owned(),
            })?;
            config.git_remote_url_denylist.push(regex);
        }
        if let Some(key) = env("KEELSON_SECRET_KEY").or(file.secret_key) {
            crate::secrets::SecretKey::from_base64(&key).map_err(|error| ConfigError::Invalid {
                setting: "KEELSON_SECRET_KEY",
                value: "***".into(),
                reason: format!("{error} (generate one with: openssl rand -base64 32)"),
            })?;
            config.secret_key = Some(Sensitive(key));
        }
        if let Some(scopes) = file.secret_scopes {
            if scopes.iter().any(|scope| scope.trim().is_empty()) || scopes.is_empty() {
                return Err(ConfigError::Invalid {
                    setting: "secret_scopes",
                    value: scopes.join(","),
                    reason: "expected a non-empty list of non-empty scope names".into(),
                });
            }
            config.secret_scopes = scopes;
        }
        let services = env("KEELSON_SERVICES").map(|list| comma_list(&list)).or(file.services);
        if let Some(services) = services {
            let mut services: Vec<String> = services.into_iter().filter(|service| service != "none").collect();
            // Twice the same service would answer every event twice.
            let mut seen = std::collections::HashSet::new();
            services.retain(|service| seen.insert(service.clone()));
            if let Some(unknown) = services.iter().find(|service| !BUILTIN_SERVICES.contains(&service.as_str())) {
                return Err(ConfigError::Invalid {
                    setting: "KEELSON_SERVICES",
                    value: unknown.clone(),
                    reason: format!("known services: {} (or none)", BUILTIN_SERVICES.join(", ")),
                });
            }
            config.services = services;
        }
        if let Some(hosts) =
            env("KEELSON_WEBHOOK_ALLOWED_HOSTS").map(|list| comma_list(&list)).or(file.webhook_allowed_hosts)
        {
            config.webhook.allowed_hosts = check_hosts("KEELSON_WEBHOOK_ALLOWED_HOSTS", hosts)?;
        }
        if let Some(value) = env("KEELSON_REQUEST_BODY_TIMEOUT").or(file.request_body_timeout) {
            config.request_body_timeout = positive_duration("KEELSON_REQUEST_BODY_TIMEOUT", value)?;
        }
        if let Some(hosts) = env("KEELSON_GIT_ALLOWED_HOSTS").map(|list| comma_list(&list)).or(file.git_allowed_hosts) {
            config.git_allowed_hosts = check_hosts("KEELSON_GIT_ALLOWED_HOSTS", hosts)?;
        }
        if let Some(hosts) = file.webhook_denied_hosts {
            config.webhook.denied_hosts = check_hosts("webhook_denied_hosts", hosts)?;
        }
        if let Some(value) = env("KEELSON_WEBHOOK_TIMEOUT").or(file.webhook_timeout) {
            config.webhook.timeout = positive_duration("KEELSON_WEBHOOK_TIMEOUT", value)?;
        }
        if let Some(limit) = file.webhook_max_response_bytes {
            config.webhook.max_response_bytes = positive_bytes("webhook_max_response_bytes", limit)?;
        }
        if let Some(retries) = file.webhook_retries {
            config.webhook.retries = retries.min(10);
        }
        if let Some(runner) = env("KEELSON_JOB_RUNNER").or(file.job_runner) {
            config.jobs.runner = match runner.trim() {
                "off" | "" => JobRunner::Off,
                "process" => JobRunner::Process,
                other => {
                    return Err(ConfigError::Invalid {
                        setting: "KEELSON_JOB_RUNNER",
                        value: other.to_owned(),
                        reason: "expected process or off".into(),
                    })
                }
            };
        }
        if let Some(commands) =
            env("KEELSON_JOB_ALLOWED_COMMANDS").map(|list| comma_list(&list)).or(file.job_allowed_commands)
        {
            config.jobs.allowed_commands = commands.into_iter().map(|command| command.trim().to_owned()).collect();
        }
        let max_parallel = match env("KEELSON_JOB_MAX_PARALLEL") {
            Some(value) => Some(value.trim().parse::<usize>().map_err(|_| ConfigError::Invalid {
                setting: "KEELSON_JOB_MAX_PARALLEL",
                value: value.clone(),
                reason: "expected a whole number of tasks".into(),
            })?),
            None => file.job_max_parallel,
        };
        if let Some(limit) = max_parallel {
            if limit == 0 {
                return Err(ConfigError::Invalid {
                    setting: "KEELSON_JOB_MAX_PARALLEL",
                    value: "0".into(),
                    reason: "at least one task must be able to run".into(),
                });
            }
            config.jobs.max_parallel = limit;
        }
        if let Some(log) = env("KEELSON_LOG").or(file.log) {
            // Checked here, so that a typo stops the start instead of silently logging at `info`.
            tracing_subscriber::EnvFilter::try_new(&log).map_err(|error| ConfigError::Invalid {
                setting: "KEELSON_LOG",
                value: log.clone(),
                reason: format!("{error} (expected a level such as info, or directives such as info,keelson=debug)"),
            })?;
            config.log = log;
        }
        if let Some(format) = env("KEELSON_LOG_FORMAT").or(file.log_format) {
            config.log_format = match format.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Invalid {
                        setting: "KEELSON_LOG_FORMAT",
                        value: format,
                        reason: "expected text or json".into(),
                    })
                }
            };
        }
        config.otlp_endpoint = parse_url(
            "KEELSON_OTLP_ENDPOINT",
            env("KEELSON_OTLP_ENDPOINT").or(file.otlp_endpoint),
            &["http", "https"],
        )?;
        let file_cluster = cluster::FileCluster {
            cluster: file.cluster,
            node_id: file.node_id,
            advertise_url: file.advertise_url,
            shards: file.shards,
            lease_ttl: file.lease_ttl,
            join_grace: file.join_grace,
            rebalance_max_moves: file.rebalance_max_moves,
            handoff_timeout: file.handoff_timeout,
            forward_timeout: file.forward_timeout,
        };
        cluster::apply(&mut config, file_cluster, env)?;
        Ok(config)
    }
}

/// `KEELSON_LISTEN`: an address (`127.0.0.1:8080`, `[::1]:8080`) or a host name with a port
/// (`localhost:8080`), resolved once at start (an IPv4 address preferred).
fn parse_listen(listen: &str) -> Result<SocketAddr, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { setting: "KEELSON_LISTEN", value: listen.to_owned(), reason };
    if let Ok(address) = listen.parse() {
        return Ok(address);
    }
    let Some((host, _)) =
        listen.rsplit_once(':').filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
    else {
        return Err(invalid("expected an address like 127.0.0.1:8080 or localhost:8080".into()));
    };
    use std::net::ToSocketAddrs as _;
    let addresses: Vec<SocketAddr> =
        listen.to_socket_addrs().map_err(|error| invalid(format!("cannot resolve {host}: {error}")))?.collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or_else(|| addresses.first())
        .copied()
        .ok_or_else(|| invalid(format!("{host} resolves to no address")))
}

/// Host entries are `host` or `host:port` (IPv6 in brackets).
fn check_hosts(setting: &'static str, hosts: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for host in &hosts {
        let parsed = url::Url::parse(&format!("http://{host}/"));
        let plain =
            parsed.as_ref().is_ok_and(|url| url.path() == "/" && url.username().is_empty() && url.query().is_none());
        if !plain || host.contains('/') {
            return Err(ConfigError::Invalid {
                setting,
                value: host.clone(),
                reason: "expected host or host:port".into(),
            });
        }
    }
    Ok(hosts)
}

/// `a, b,c` → `["a", "b", "c"]`, empty entries dropped.
fn comma_list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

fn parse_url(setting: &'static str, value: Option<String>, schemes: &[&str]) -> Result<Option<url::Url>, ConfigError> {
    let Some(value) = value else { return Ok(None) };
    let url = url::Url::parse(&value).map_err(|error| ConfigError::Invalid {
        setting,
        value: value.clone(),
        reason: error.to_string(),
    })?;
    if !schemes.contains(&url.scheme()) {
        return Err(ConfigError::Invalid {
            setting,
            reason: format!("scheme must be one of {}", schemes.join(", ")),
            value,
        });
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::Invalid { setting, value, reason: "the URL has no host".into() });
    }
    Ok(Some(url))
}

/// A duration that must not be zero.
fn positive_duration(setting: &'static str, value: String) -> Result<Duration, ConfigError> {
    let duration = parse_duration(setting, &value)?;
    if duration.is_zero() {
        return Err(ConfigError::Invalid { setting, value, reason: "must be greater than zero".into() });
    }
    Ok(duration)
}

/// A byte count that must not be zero.
fn positive_bytes(setting: &'static str, limit: u64) -> Result<usize, ConfigError> {
    if limit == 0 {
        return Err(ConfigError::Invalid {
            setting,
            value: limit.to_string(),
            reason: "must be greater than zero".into(),
        });
    }
    Ok(usize::try_from(limit).unwrap_or(usize::MAX))
}

/// A duration of at most ten years (longer ones would overflow the time arithmetic they feed).
fn parse_duration(setting: &'static str, value: &str) -> Result<Duration, ConfigError> {
    crate::model::duration::parse_human_duration(value).map_err(|error| ConfigError::Invalid {
        setting,
        value: value.to_owned(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load(None, |key| vars.get(key).cloned())
    }

    #[test]
    fn defaults_without_anything_set() {
        let config = load(&[]).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(config.nats_url.is_none() && config.redis_url.is_none() && config.mongodb_url.is_none());
        assert_eq!(config.task_started_timeout, Duration::from_secs(600));
        assert_eq!(config.task_finished_timeout, None);
    }

    #[test]
    fn environment_overrides() {
        let config = load(&[
            ("KEELSON_LISTEN", "127.0.0.1:9999"),
            ("KEELSON_TASK_STARTED_TIMEOUT", "3s"),
            ("KEELSON_REDIS_URL", "redis://127.0.0.1:6379"),
            ("KEELSON_NATS_URL", ""),
        ])
        .unwrap();
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.task_started_timeout, Duration::from_secs(3));
        assert!(config.redis_url.is_some());
        assert!(config.nats_url.is_none());
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases = [
            ("KEELSON_LISTEN", "nowhere"),
            ("KEELSON_TASK_STARTED_TIMEOUT", "ten minutes"),
            ("KEELSON_TASK_STARTED_TIMEOUT", "0s"),
            ("KEELSON_TASK_STARTED_TIMEOUT", "100000000000h"),
            ("KEELSON_TASK_FINISHED_TIMEOUT", "100000000000h"),
            ("KEELSON_EXECUTION_RETENTION", "999999999999999999999999h"),
            ("KEELSON_UNIFORM_INTEGRATION_TTL", "87841h"),
            ("KEELSON_WEBHOOK_TIMEOUT", "100000000000h"),
            ("KEELSON_REDIS_URL", "not a url"),
            ("KEELSON_REDIS_URL", "http://127.0.0.1:6379"),
            ("KEELSON_NATS_URL", "nats://"),
            ("KEELSON_MONGODB_URL", "postgres://127.0.0.1"),
            ("KEELSON_MAX_REQUEST_BODY_BYTES", "lots"),
            ("KEELSON_REQUEST_BODY_TIMEOUT", "0s"),
            ("KEELSON_GIT_ALLOWED_HOSTS", "http://127.0.0.1/x"),
        ];
        for (key, value) in cases {
            let error = load(&[(key, value)]).expect_err(key).to_string();
            assert!(error.contains(key), "{error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn shipped_default_file_matches_built_in_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let from_file = Config::load(Some(&path), |_| None).unwrap();
        let built_in = Config::default();
        assert_eq!(from_file.listen, built_in.listen);
        assert_eq!(from_file.data_dir, built_in.data_dir);
        assert_eq!(from_file.api_token, built_in.api_token);
        assert!(from_file.nats_url.is_none() && from_file.redis_url.is_none() && from_file.mongodb_url.is_none());
        assert_eq!(from_file.task_started_timeout, built_in.task_started_timeout);
        assert_eq!(from_file.task_finished_timeout, built_in.task_finished_timeout);
        assert_eq!(from_file.uniform_integration_ttl, built_in.uniform_integration_ttl);
        assert_eq!(from_file.execution_retention, built_in.execution_retention);
        assert_eq!(from_file.max_request_body_bytes, built_in.max_request_body_bytes);
        assert_eq!(from_file.request_body_timeout, built_in.request_body_timeout);
        assert_eq!(from_file.git_allowed_hosts, built_in.git_allowed_hosts);
        assert!(from_file.git_remote_url_denylist.is_empty());
        assert_eq!(from_file.secret_key, built_in.secret_key);
        assert_eq!(from_file.secret_scopes, built_in.secret_scopes);
        assert_eq!(from_file.services, built_in.services);
        assert_eq!(from_file.webhook, built_in.webhook);
        assert_eq!(from_file.jobs, built_in.jobs);
        assert_eq!(from_file.log, built_in.log);
        assert_eq!(from_file.log_format, built_in.log_format);
    }

    #[test]
    fn listen_takes_host_names_and_logging_is_checked() {
        let config = load(&[("KEELSON_LISTEN", "localhost:9123")]).unwrap();
        assert!(config.listen.ip().is_loopback() && config.listen.port() == 9123, "{}", config.listen);
        assert_eq!(load(&[("KEELSON_LISTEN", "[::1]:9123")]).unwrap().listen.to_string(), "[::1]:9123");
        for bad in ["localhost", "localhost:port", ":8080", "no-such-host.invalid:8080"] {
            let error = load(&[("KEELSON_LISTEN", bad)]).unwrap_err().to_string();
            assert!(error.contains("KEELSON_LISTEN"), "{bad}: {error}");
        }
        let error = load(&[("KEELSON_LOG", "info,keelson=loud")]).unwrap_err().to_string();
        assert!(error.contains("KEELSON_LOG") && !error.contains('\n'), "{error}");
        assert_eq!(load(&[("KEELSON_LOG", "warn,keelson=debug")]).unwrap().log, "warn,keelson=debug");
        assert_eq!(load(&[]).unwrap().log_format, LogFormat::Text);
        assert_eq!(load(&[("KEELSON_LOG_FORMAT", "JSON")]).unwrap().log_format, LogFormat::Json);
        assert!(load(&[("KEELSON_LOG_FORMAT", "yaml")]).unwrap_err().to_string().contains("KEELSON_LOG_FORMAT"));
    }

    #[test]
    fn services_secret_key_and_webhook_settings() {
        let key = crate::secrets::SecretKey::generate_text();
        let config = load(&[
            ("KEELSON_SERVICES", "approval, webhook"),
            ("KEELSON_SECRET_KEY", &key),
            ("KEELSON_WEBHOOK_ALLOWED_HOSTS", "127.0.0.1:9000,hooks.internal"),
            ("KEELSON_WEBHOOK_TIMEOUT", "5s"),
        ])
        .unwrap();
        assert_eq!(config.services, vec!["approval".to_owned(), "webhook".to_owned()]);
        assert_eq!(config.webhook.allowed_hosts, vec!["127.0.0.1:9000".to_owned(), "hooks.internal".to_owned()]);
        assert_eq!(config.webhook.timeout, Duration::from_secs(5));
        assert!(!format!("{config:?}").contains(&key), "the key never shows in Debug output");
        assert!(load(&[("KEELSON_SERVICES", "none")]).unwrap().services.is_empty());
        assert_eq!(load(&[("KEELSON_EXECUTION_RETENTION", "0s")]).unwrap().execution_retention, None);
        assert_eq!(
            load(&[("KEELSON_EXECUTION_RETENTION", "7d")]).unwrap().execution_retention,
            Some(Duration::from_secs(7 * 86400))
        );
        assert_eq!(load(&[("KEELSON_SERVICES", "webhook,webhook")]).unwrap().services, vec!["webhook".to_owned()]);
        assert!(load(&[("KEELSON_WEBHOOK_ALLOWED_HOSTS", "host:abc")]).is_err());
        assert!(load(&[("KEELSON_WEBHOOK_ALLOWED_HOSTS", "[::1]:80,a.example")]).is_ok());
        let error = load(&[("KEELSON_SERVICES", "helm")]).unwrap_err().to_string();
        assert!(error.contains("known services"), "{error}");
        let error = load(&[("KEELSON_SECRET_KEY", "c2hvcnQ=")]).unwrap_err().to_string();
        assert!(error.contains("KEELSON_SECRET_KEY") && error.contains("32 bytes"), "{error}");
    }

    #[test]
    fn job_settings_are_off_until_enabled_and_checked() {
        let defaults = load(&[]).unwrap();
        assert_eq!(defaults.jobs.runner, JobRunner::Off);
        assert!(defaults.jobs.allowed_commands.is_empty());
        assert!(defaults.jobs.max_parallel >= 1);
        let config = load(&[
            ("KEELSON_JOB_RUNNER", "process"),
            ("KEELSON_JOB_ALLOWED_COMMANDS", "sh, /usr/bin/helm"),
            ("KEELSON_JOB_MAX_PARALLEL", "3"),
        ])
        .unwrap();
        assert_eq!(config.jobs.runner, JobRunner::Process);
        assert_eq!(config.jobs.allowed_commands, vec!["sh".to_owned(), "/usr/bin/helm".to_owned()]);
        assert_eq!(config.jobs.max_parallel, 3);
        for (key, value, expected) in [
            ("KEELSON_JOB_RUNNER", "docker", "expected process or off"),
            ("KEELSON_JOB_MAX_PARALLEL", "0", "at least one task"),
            ("KEELSON_JOB_MAX_PARALLEL", "many", "whole number"),
        ] {
            let error = load(&[(key, value)]).unwrap_err().to_string();
            assert!(error.contains(key) && error.contains(expected), "{error}");
        }
    }

    #[test]
    fn file_settings_are_read_and_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keelson.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:7000\"\ntask_started_timeout = \"5m\"\nmax_request_body_bytes = 1024\n",
        )
        .unwrap();
        let config =
            Config::load(Some(&path), |key| (key == "KEELSON_LISTEN").then(|| "127.0.0.1:7001".to_owned())).unwrap();
        assert_eq!(config.listen.port(), 7001);
        assert_eq!(config.task_started_timeout, Duration::from_secs(300));
        assert_eq!(config.max_request_body_bytes, 1024);

        std::fs::write(&path, "listn = \"x\"\n").unwrap();
        let error = Config::load(Some(&path), |_| None).unwrap_err().to_string();
        assert!(error.contains("listn"), "{error}");
    }
}
