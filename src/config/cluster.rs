//! Cluster-mode settings: several instances sharing one NATS, Redis and MongoDB, each project owned by
//! one of them (see `docs/architecture.md`, "Cluster mode").

use std::time::Duration;

use super::{parse_duration, positive_duration, Config, ConfigError};

/// Default number of shards projects hash into; fixed for the life of a cluster.
pub const DEFAULT_SHARDS: u32 = 64;
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
const MIN_LEASE_TTL: Duration = Duration::from_secs(1);
const MAX_SHARDS: u32 = 4096;

/// How this instance takes part in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// Unique, stable name of this instance (letters, digits, `-` and `_`).
    pub node_id: String,
    /// Where the other instances send requests that this one must answer.
    pub advertise_url: url::Url,
    /// Buckets projects hash into; every instance of a cluster must agree.
    pub shards: u32,
    /// Lease and membership time-to-live; renewed four times per TTL.
    pub lease_ttl: Duration,
    /// A new member takes shards only after this long, so instances started together do not thrash.
    pub join_grace: Duration,
    /// Shards in handoff at once while rebalancing.
    pub rebalance_max_moves: usize,
    /// Longest a shard's handoff waits for its work to be durable before the lease is released anyway.
    pub handoff_timeout: Duration,
    /// Longest a request forwarded to another instance may take.
    pub forward_timeout: Duration,
}

/// The cluster keys of the configuration file.
#[derive(Debug, Default)]
pub(super) struct FileCluster {
    pub cluster: Option<bool>,
    pub node_id: Option<String>,
    pub advertise_url: Option<String>,
    pub shards: Option<u32>,
    pub lease_ttl: Option<String>,
    pub join_grace: Option<String>,
    pub rebalance_max_moves: Option<usize>,
    pub handoff_timeout: Option<String>,
    pub forward_timeout: Option<String>,
}

/// Reads the cluster settings into `config` (left `None` unless cluster mode is on) and checks that the
/// shared servers and secrets it needs are configured.
pub(super) fn apply(
    config: &mut Config,
    file: FileCluster,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let enabled = match env("KEELSON_CLUSTER") {
        Some(value) => parse_bool("KEELSON_CLUSTER", &value)?,
        None => file.cluster.unwrap_or(false),
    };
    if !enabled {
        return Ok(());
    }
    let needs = |setting: &'static str, present: bool| {
        if present {
            Ok(())
        } else {
            Err(ConfigError::Invalid {
                setting: "KEELSON_CLUSTER",
                value: "true".into(),
                reason: format!("cluster mode needs {setting}"),
            })
        }
    };
    needs("KEELSON_NATS_URL", config.nats_url.is_some())?;
    needs("KEELSON_REDIS_URL", config.redis_url.is_some())?;
    needs("KEELSON_MONGODB_URL", config.mongodb_url.is_some())?;
    needs("KEELSON_API_TOKEN (the same on every instance)", config.api_token.is_some())?;
    needs("KEELSON_SECRET_KEY (the same on every instance)", config.secret_key.is_some())?;

    let node_id = match env("KEELSON_NODE_ID").or(file.node_id) {
        Some(id) => check_node_id(id)?,
        None => default_node_id(config.listen.port()),
    };
    let advertise_url = match env("KEELSON_ADVERTISE_URL").or(file.advertise_url) {
        Some(url) => parse_advertise_url(&url)?,
        None => default_advertise_url(config.listen),
    };
    let shards = match env("KEELSON_SHARDS") {
        Some(value) => value.trim().parse::<u32>().map_err(|_| ConfigError::Invalid {
            setting: "KEELSON_SHARDS",
            value: value.clone(),
            reason: "expected a whole number".into(),
        })?,
        None => file.shards.unwrap_or(DEFAULT_SHARDS),
    };
    if !(1..=MAX_SHARDS).contains(&shards) {
        return Err(ConfigError::Invalid {
            setting: "KEELSON_SHARDS",
            value: shards.to_string(),
            reason: format!("expected 1 to {MAX_SHARDS}"),
        });
    }
    let lease_ttl = match env("KEELSON_LEASE_TTL").or(file.lease_ttl) {
        Some(value) => positive_duration("KEELSON_LEASE_TTL", value)?,
        None => DEFAULT_LEASE_TTL,
    };
    if lease_ttl < MIN_LEASE_TTL {
        return Err(ConfigError::Invalid {
            setting: "KEELSON_LEASE_TTL",
            value: format!("{lease_ttl:?}"),
            reason: "must be at least 1s".into(),
        });
    }
    let duration = |setting: &'static str, value: Option<String>, default: Duration| match value {
        Some(value) => parse_duration(setting, &value),
        None => Ok(default),
    };
    config.cluster = Some(ClusterSettings {
        node_id,
        advertise_url,
        shards,
        lease_ttl,
        join_grace: duration(
            "KEELSON_JOIN_GRACE",
            env("KEELSON_JOIN_GRACE").or(file.join_grace),
            Duration::from_secs(2),
        )?,
        rebalance_max_moves: match env("KEELSON_REBALANCE_MAX_MOVES") {
            Some(value) => {
                value.trim().parse::<usize>().ok().filter(|moves| *moves > 0).ok_or_else(|| ConfigError::Invalid {
                    setting: "KEELSON_REBALANCE_MAX_MOVES",
                    value,
                    reason: "expected a whole number above zero".into(),
                })?
            }
            None => file.rebalance_max_moves.unwrap_or(8).max(1),
        },
        handoff_timeout: duration(
            "KEELSON_HANDOFF_TIMEOUT",
            env("KEELSON_HANDOFF_TIMEOUT").or(file.handoff_timeout),
            Duration::from_secs(2),
        )?,
        forward_timeout: match env("KEELSON_FORWARD_TIMEOUT").or(file.forward_timeout) {
            Some(value) => positive_duration("KEELSON_FORWARD_TIMEOUT", value)?,
            None => Duration::from_secs(10),
        },
    });
    Ok(())
}

fn parse_bool(setting: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::Invalid { setting, value: value.to_owned(), reason: "expected true or false".into() }),
    }
}

/// Node ids name NATS subjects and Redis keys: letters, digits, `-` and `_`, at most 64.
fn check_node_id(id: String) -> Result<String, ConfigError> {
    let valid =
        !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(id)
    } else {
        Err(ConfigError::Invalid {
            setting: "KEELSON_NODE_ID",
            value: id,
            reason: "expected 1 to 64 letters, digits, '-' or '_'".into(),
        })
    }
}

/// `<host name>-<port>`, with characters a node id may not hold replaced by `-`.
fn default_node_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "keelson".to_owned());
    let host: String =
        host.chars().take(50).map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '-' }).collect();
    format!("{host}-{port}")
}

fn parse_advertise_url(text: &str) -> Result<url::Url, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        setting: "KEELSON_ADVERTISE_URL",
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(text).map_err(|error| invalid(&error.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid("expected an http:// or https:// URL with a host"));
    }
    Ok(url)
}

/// `http://<listen address>`; an unspecified address (`0.0.0.0`) is replaced by the host name.
fn default_advertise_url(listen: std::net::SocketAddr) -> url::Url {
    let host = if listen.ip().is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
    } else {
        match listen.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        }
    };
    let host = if host.is_empty() { "localhost".to_owned() } else { host };
    url::Url::parse(&format!("http://{host}:{}", listen.port())).expect("host and port form a URL")
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, super::ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::load(None, |key| vars.get(key).cloned())
    }

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn complete() -> Vec<(&'static str, &'static str)> {
        vec![
            ("KEELSON_CLUSTER", "true"),
            ("KEELSON_NATS_URL", "nats://127.0.0.1:4222"),
            ("KEELSON_REDIS_URL", "redis://127.0.0.1:6379"),
            ("KEELSON_MONGODB_URL", "mongodb://127.0.0.1:27017/keelson"),
            ("KEELSON_API_TOKEN", "shared"),
            ("KEELSON_SECRET_KEY", KEY),
            ("KEELSON_LISTEN", "127.0.0.1:18081"),
        ]
    }

    #[test]
    fn off_by_default() {
        assert_eq!(load(&[]).unwrap().cluster, None);
        assert_eq!(load(&[("KEELSON_CLUSTER", "false")]).unwrap().cluster, None);
    }

    #[test]
    fn defaults_when_on() {
        let cluster = load(&complete()).unwrap().cluster.unwrap();
        assert_eq!(cluster.shards, 64);
        assert_eq!(cluster.lease_ttl, std::time::Duration::from_secs(3));
        assert_eq!(cluster.advertise_url.as_str(), "http://127.0.0.1:18081/");
        assert!(cluster.node_id.ends_with("-18081"), "{}", cluster.node_id);
        assert!(cluster.node_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn each_missing_server_or_secret_is_named() {
        for missing in
            ["KEELSON_NATS_URL", "KEELSON_REDIS_URL", "KEELSON_MONGODB_URL", "KEELSON_API_TOKEN", "KEELSON_SECRET_KEY"]
        {
            let vars: Vec<_> = complete().into_iter().filter(|(key, _)| *key != missing).collect();
            let error = load(&vars).unwrap_err().to_string();
            assert!(error.contains(missing) && error.contains("cluster mode"), "{missing}: {error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn bad_values_are_refused() {
        for (setting, value) in [
            ("KEELSON_CLUSTER", "maybe"),
            ("KEELSON_NODE_ID", "n1.example"),
            ("KEELSON_NODE_ID", "n 1"),
            ("KEELSON_SHARDS", "0"),
            ("KEELSON_SHARDS", "lots"),
            ("KEELSON_LEASE_TTL", "500ms"),
            ("KEELSON_ADVERTISE_URL", "ftp://x"),
            ("KEELSON_REBALANCE_MAX_MOVES", "0"),
        ] {
            let mut vars = complete();
            vars.retain(|(key, _)| *key != setting);
            vars.push((setting, value));
            let error = load(&vars).unwrap_err().to_string();
            assert!(error.contains(setting), "{setting}={value}: {error}");
        }
    }

    #[test]
    fn shipped_default_file_matches_the_built_in_cluster_defaults() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
        let vars: HashMap<&str, &str> = complete().into_iter().collect();
        let from_file = Config::load(Some(&path), |key| vars.get(key).map(|v| (*v).to_owned())).unwrap();
        let from_env = load(&complete()).unwrap();
        assert_eq!(from_file.cluster, from_env.cluster);
        let cluster = from_file.cluster.unwrap();
        assert_eq!((cluster.join_grace.as_secs(), cluster.rebalance_max_moves), (2, 8));
        assert_eq!((cluster.handoff_timeout.as_secs(), cluster.forward_timeout.as_secs()), (2, 10));
    }

    #[test]
    fn explicit_settings() {
        let mut vars = complete();
        vars.extend([
            ("KEELSON_NODE_ID", "n1"),
            ("KEELSON_ADVERTISE_URL", "http://keelson-0.keelson:8080"),
            ("KEELSON_SHARDS", "256"),
            ("KEELSON_LEASE_TTL", "5s"),
        ]);
        let cluster = load(&vars).unwrap().cluster.unwrap();
        assert_eq!(
            (cluster.node_id.as_str(), cluster.advertise_url.as_str(), cluster.shards, cluster.lease_ttl.as_secs()),
            ("n1", "http://keelson-0.keelson:8080/", 256, 5)
        );
    }
}
