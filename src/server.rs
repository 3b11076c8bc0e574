//! Start-up: choose backends from the configuration, rebuild state, and serve HTTP until shut down.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use actix_web::{web, HttpServer};
use anyhow::Context as _;

use crate::actors::directory::Directory;
use crate::actors::router::EventRouter;
use crate::actors::{ControlHandle, Runtime};
use crate::bus::{nats::NatsBus, Bus, InProcessBus};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::emitter::Emitter;
use crate::http::{self, auth::ApiToken, AppState};
use crate::model::event::CONTROL_PLANE_SOURCE;
use crate::model::sequence::Timeouts;
use crate::projects::ProjectManager;
use crate::resources::GitRepos;
use crate::store::history::HistoryWriter;
use crate::store::snapshots::SnapshotWriter;
use crate::store::{
    mongo::MongoEventStore, redis::RedisSnapshotStore, sqlite::SqliteStore, EventStore, SnapshotStore, Storage,
};

/// File in the data dir that holds a generated API token.
const TOKEN_FILE: &str = "api-token";
/// File in the data dir of the embedded snapshot store.
const SQLITE_FILE: &str = "keelson.sqlite";
/// File in the data dir of the embedded event history.
const HISTORY_FILE: &str = "history.sqlite";
/// File in the data dir that holds a generated secret-encryption key.
const SECRET_KEY_FILE: &str = "secret-key";
/// How often the services' `deployedImage` and `lastEventTypes` are stored.
const ACTIVITY_STORE_PERIOD: std::time::Duration = std::time::Duration::from_secs(1);
/// Directory in the data dir of the project repositories.
const GIT_DIR: &str = "git";

/// The parts of a running control plane.
pub struct ControlPlane {
    pub state: web::Data<AppState>,
    pub storage: Storage,
    /// Present when running on the embedded bus, so that tests and embedded services can subscribe.
    pub in_process_bus: Option<InProcessBus>,
    /// Whether the token came from the data dir (as opposed to the configuration).
    pub token_from_data_dir: bool,
    /// Whether this start generated the token (the first start without a configured one).
    pub token_generated: bool,
    /// Turned true to stop the bus consumers.
    closing: tokio::sync::watch::Sender<bool>,
    nats: Option<async_nats::Client>,
    /// Set in cluster mode.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// How often the drain checks that nothing new appeared.
const DRAIN_POLL: std::time::Duration = std::time::Duration::from_millis(50);

impl ControlPlane {
    /// Stops taking events from the bus, then waits until every accepted event is applied and every
    /// write (states and history) is durable, and what was published has left for NATS. False when
    /// `within` passed first. Stop the HTTP server before, so nothing new is accepted meanwhile.
    pub async fn shutdown(&self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        let _ = self.closing.send(true);
        let router = self.state.control.router();
        let runtime = router.runtime();
        let quiet = || {
            router.queued() == 0
                && runtime.snapshots.outstanding().count() == 0
                && runtime.history.outstanding().count() == 0
        };
        // A step made durable goes on to publish (more history writes) and to report (more steps):
        // drained only once nothing is left twice in a row.
        let mut quiet_checks = 0;
        while quiet_checks < 2 {
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    queued = router.queued(),
                    states = runtime.snapshots.outstanding().count(),
                    history = runtime.history.outstanding().count(),
                    "shutdown: not everything was made durable in time"
                );
                return false;
            }
            quiet_checks = if quiet() { quiet_checks + 1 } else { 0 };
            tokio::time::sleep(DRAIN_POLL).await;
        }
        if let Some(cluster) = &self.cluster {
            // Everything accepted is durable: the shards can go to the other instances.
            cluster.leave().await;
        }
        if let Some(nats) = &self.nats {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if tokio::time::timeout(remaining, nats.flush()).await.is_err() {
                tracing::warn!("shutdown: events published to nats may not have left");
            }
        }
        true
    }
}

/// Connects the configured backends (or opens the embedded ones) and loads stored state.
pub async fn build(config: &Config) -> anyhow::Result<ControlPlane> {
    build_with_clock(config, Arc::new(SystemClock)).await
}

/// Like [`build`], on `clock` (tests pass a manual one and step it).
pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<ControlPlane> {
    create_private_dir(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let (token, token_from_data_dir, token_generated) = match &config.api_token {
        Some(token) => (token.clone(), false, false),
        None => {
            let (token, generated) = load_or_generate_token(&config.data_dir)?;
            (token, true, generated)
        }
    };

    let open_sqlite = |file: &'static str| {
        let path = config.data_dir.join(file);
        async move {
            // Created private: SQLite would make it (and its log files, which copy its mode) 0644.
            create_private_file_if_missing(&path).with_context(|| format!("cannot create {}", path.display()))?;
            SqliteStore::open(&path).await.with_context(|| format!("cannot open {}", path.display()))
        }
    };
    // Snapshots and the history in separate files: each has its own write lock, so a large history
    // batch never delays the small snapshot commits sequences wait for.
    let sqlite = if config.redis_url.is_none() { Some(open_sqlite(SQLITE_FILE).await?) } else { None };
    let sqlite_history = if config.mongodb_url.is_none() { Some(open_sqlite(HISTORY_FILE).await?) } else { None };
    restrict_data_dir(&config.data_dir);
    let snapshots: Arc<dyn SnapshotStore> = match &config.redis_url {
        Some(url) => Arc::new(
            RedisSnapshotStore::connect(url.as_str())
                .await
                .with_context(|| format!("cannot connect to redis at {}", redacted(url)))?,
        ),
        None => Arc::new(sqlite.expect("sqlite opened when redis is not configured")),
    };
    let events: Arc<dyn EventStore> = match &config.mongodb_url {
        Some(url) => Arc::new(
            MongoEventStore::connect(url)
                .await
                .with_context(|| "cannot connect to mongodb (KEELSON_MONGODB_URL)".to_owned())?,
        ),
        None => Arc::new(sqlite_history.expect("sqlite opened when mongodb is not configured")),
    };
    let joined = match (&config.cluster, &config.redis_url) {
        (Some(settings), Some(url)) => Some(crate::cluster::join(settings, url.as_str()).await?),
        _ => None,
    };
    let (bus, in_process_bus, nats_bus): (Arc<dyn Bus>, Option<InProcessBus>, Option<NatsBus>) = match &config.nats_url
    {
        Some(url) => {
            let nats = NatsBus::connect(url.as_str())
                .await
                .with_context(|| format!("cannot connect to nats at {}", redacted(url)))?;
            // In a cluster, what this instance publishes names it and its epoch of the event's shard.
            let nats = match &joined {
                Some(joined) => {
                    nats.with_provenance(Arc::clone(&joined.table) as Arc<dyn crate::bus::nats::Provenance>)
                }
                None => nats,
            };
            (Arc::new(nats.clone()), None, Some(nats))
        }
        None => {
            let bus = InProcessBus::default();
            (Arc::new(bus.clone()), Some(bus), None)
        }
    };

    let fencing = joined.as_ref().map(|joined| Arc::clone(&joined.table) as Arc<dyn crate::store::snapshots::Fencing>);

    let secret_key = match &config.secret_key {
        Some(key) => crate::secrets::SecretKey::from_base64(&key.0)?,
        None => load_or_generate_secret_key(&config.data_dir)?,
    };
    let git_root = config.data_dir.join(GIT_DIR);
    let history = HistoryWriter::start(Arc::clone(&events));
    let emitter = Emitter::new(Arc::clone(&bus), history.clone());
    let projects = Arc::new(ProjectManager::new(
        Arc::clone(&snapshots),
        GitRepos::new(git_root),
        emitter.clone(),
        Arc::clone(&clock),
        config.git_remote_url_denylist.clone(),
        secret_key.clone(),
        crate::model::host_policy::HostPolicy::with_defaults(Vec::new(), config.git_allowed_hosts.clone())
            .allowed_by("git_allowed_hosts"),
    ));
    if joined.is_some() {
        projects.set_shared();
    }
    let loaded = projects.load().await.context("cannot load projects")?;
    projects.store_activity_every(ACTIVITY_STORE_PERIOD);
    tracing::info!(projects = loaded, "state loaded");

    let runtime = Runtime::new(
        Arc::clone(&projects),
        emitter,
        history,
        SnapshotWriter::start_fenced(Arc::clone(&snapshots), fencing),
        Arc::clone(&clock),
        Timeouts { started: config.task_started_timeout, finished: config.task_finished_timeout },
        config.execution_retention,
    );
    // The control plane's own subscription to the embedded bus is taken first, so that it sees every
    // event the services send from here on; it is read once recovery is done. It skips what the control
    // plane emitted or took in over HTTP itself.
    let bus_input = in_process_bus
        .as_ref()
        .map(|bus| bus.subscribe_unrouted(Some(Box::new(|event| event.source != CONTROL_PLANE_SOURCE))));
    let integrations = Arc::new(
        crate::integrations::Integrations::load(
            Arc::clone(&snapshots),
            Arc::clone(&clock),
            config.uniform_integration_ttl,
        )
        .await
        .context("cannot load integrations")?,
    );
    if joined.is_some() {
        integrations.set_shared();
    }
    integrations.start_sweeping();
    let secrets =
        Arc::new(crate::secrets::Secrets::new(Arc::clone(&snapshots), secret_key, config.secret_scopes.clone()));
    let service_transport = match (&in_process_bus, &config.nats_url) {
        (Some(bus), _) => crate::services::Transport::InProcess(bus.clone()),
        (None, Some(url)) => crate::services::Transport::Nats(url.to_string()),
        (None, None) => unreachable!("either the in-process bus or nats is configured"),
    };
    let access: Arc<dyn crate::services::ControlPlaneAccess> = match &joined {
        // Resources of projects served elsewhere are read through this instance's API, which sends
        // the request to their owner.
        Some(joined) => Arc::new(crate::services::remote::RemoteAccess::new(
            &joined.identity.advertise_url,
            &token,
            Some(Arc::clone(&secrets)),
            Some(crate::services::SliProviders(Arc::clone(&snapshots))),
        )),
        None => Arc::new(crate::services::LocalAccess {
            projects: Arc::clone(&projects),
            events: Arc::clone(&events),
            secrets: Arc::clone(&secrets),
            providers: crate::services::SliProviders(Arc::clone(&snapshots)),
            integrations: Arc::clone(&integrations),
        }),
    };
    let registration = crate::services::Registration::Local {
        integrations: Arc::clone(&integrations),
        ttl: config.uniform_integration_ttl,
    };
    crate::services::start(
        &config.services,
        service_transport,
        access,
        registration,
        &crate::services::ServiceSettings::of(config),
    )
    .await;
    // Recovery republishes open tasks: the built-in services are subscribed by now. In a cluster each
    // shard is restored when this instance acquires it.
    let directory = Arc::new(Directory::new(runtime));
    if joined.is_none() {
        let recovered = directory.recover(snapshots.as_ref()).await.context("cannot restore sequences")?;
        tracing::info!(
            executions = recovered.executions,
            running = recovered.running,
            unreadable = recovered.unreadable,
            "sequences restored"
        );
    }
    let router = EventRouter::new(directory);
    let (cluster, forwarder) = match (joined, &nats_bus) {
        (Some(joined), Some(nats)) => {
            let forwarder = crate::cluster::forward::Forwarder::new(
                Arc::clone(&joined.table),
                nats.client().clone(),
                Arc::clone(&events),
            );
            crate::cluster::deliveries::serve_deliveries(
                nats.client().clone(),
                joined.identity.node.clone(),
                router.clone(),
                Arc::clone(&joined.table),
            )
            .await
            .context("cannot subscribe to forwarded events on nats")?;
            (Some(Arc::new(joined.start(router.clone(), Arc::clone(&snapshots))?)), Some(forwarder))
        }
        _ => (None, None),
    };
    let (closing, closing_input) = tokio::sync::watch::channel(false);
    consume_bus(&router, forwarder.clone(), bus_input, nats_bus.as_ref(), closing_input).await?;

    let state = web::Data::new(AppState {
        projects,
        integrations,
        secrets,
        events: Arc::clone(&events),
        control: ControlHandle::new(router, forwarder),
        cluster: cluster.clone(),
        nats: nats_bus.clone(),
        token: ApiToken::new(token),
        auth_limiter: Default::default(),
        metrics: http::metrics::recorder(),
        max_request_body_bytes: config.max_request_body_bytes,
        request_body_timeout: config.request_body_timeout,
    });
    Ok(ControlPlane {
        state,
        storage: Storage { snapshots, events },
        in_process_bus,
        token_from_data_dir,
        token_generated,
        closing,
        nats: nats_bus.map(|bus| bus.client().clone()),
        cluster,
    })
}

/// Feeds every event arriving on the bus to the router, except the control plane's own (which its
/// actors already handled; looping them back could make the bus wait on itself).
async fn consume_bus(
    router: &EventRouter,
    forwarder: Option<crate::cluster::forward::Forwarder>,
    in_process: Option<tokio::sync::mpsc::Receiver<Arc<crate::model::event::CloudEvent>>>,
    nats: Option<&NatsBus>,
    closing: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(mut events) = in_process {
        let router = router.clone();
        let mut closing = closing.clone();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    event = events.recv() => event,
                    _ = closing.wait_for(|closing| *closing) => None,
                };
                let Some(event) = event else { break };
                router.route(event).await;
            }
        });
    }
    if let Some(bus) = nats {
        let consumer = bus.control_plane_consumer().await.context("cannot set up the jetstream consumer on nats")?;
        tokio::spawn(crate::actors::router::consume_jetstream(consumer, router.clone(), forwarder, closing));
    }
    Ok(())
}

/// A URL with any password replaced, for messages.
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

/// The token stored in the data dir, generated (and `true`) when there is none yet.
fn load_or_generate_token(data_dir: &Path) -> anyhow::Result<(String, bool)> {
    let path = data_dir.join(TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_owned();
        if !token.is_empty() {
            return Ok((token, false));
        }
    }
    let token: String = {
        use rand::Rng as _;
        let bytes: [u8; 24] = rand::rng().random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    };
    write_private_file(&path, &token, Existing::Replace).with_context(|| format!("cannot write {}", path.display()))?;
    Ok((token, true))
}

/// The secret-encryption key stored in the data dir, generated on first start.
///
/// Only a missing file is replaced: any other failure stops start-up, because a new key would make
/// every stored secret unreadable.
fn load_or_generate_secret_key(data_dir: &Path) -> anyhow::Result<crate::secrets::SecretKey> {
    let path = data_dir.join(SECRET_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return crate::secrets::SecretKey::from_base64(&text)
                .with_context(|| format!("unusable key in {}", path.display()));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", path.display())),
    }
    let text = crate::secrets::SecretKey::generate_text();
    write_private_file(&path, &text, Existing::Refuse).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(crate::secrets::SecretKey::from_base64(&text)?)
}

/// Creates `path` readable by its owner only (it holds the token, the database and credentials).
fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Makes a data dir made by an earlier release, by hand or with a lax umask readable by its owner only:
/// it holds the token, the key, the databases and (sealed) credentials. Logged when anything changes.
fn restrict_data_dir(data_dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let restrict = |path: &Path, mode: u32| {
            let Ok(metadata) = std::fs::metadata(path) else { return };
            let current = metadata.permissions().mode() & 0o777;
            if current & 0o077 == 0 {
                return;
            }
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "tightened permissions: only Keelson's user may read its data")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "data readable by other users; restrict it")
                }
            }
        };
        restrict(data_dir, 0o700);
        let Ok(entries) = std::fs::read_dir(data_dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let private = name.starts_with(SQLITE_FILE)
                || name.starts_with(HISTORY_FILE)
                || name == TOKEN_FILE
                || name == SECRET_KEY_FILE;
            if private && entry.file_type().is_ok_and(|kind| kind.is_file()) {
                restrict(&entry.path(), 0o600);
            }
        }
    }
}

/// Creates an empty file readable by its owner only, unless `path` exists.
fn create_private_file_if_missing(path: &Path) -> std::io::Result<()> {
    match write_private_file(path, "", Existing::Refuse) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Whether [`write_private_file`] may replace an existing file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Existing {
    Replace,
    /// Fail if the file exists (a key must never be overwritten).
    Refuse,
}

/// Writes `content` to `path`, readable by its owner only, and syncs it.
fn write_private_file(path: &Path, content: &str, existing: Existing) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    match existing {
        Existing::Replace => options.write(true).create(true).truncate(true),
        Existing::Refuse => options.write(true).create_new(true),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()
}

/// How long in-flight requests may run on once shutdown starts; the drain after them has the rest of
/// the ten seconds an orchestrator usually grants.
const HTTP_SHUTDOWN_SECONDS: u64 = 5;

/// A server bound and running.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub handle: actix_web::dev::ServerHandle,
    pub control_plane: ControlPlane,
    /// Completes when the server has stopped.
    pub stopped: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Builds the control plane and serves it on `listener` (bind port 0 in tests).
pub async fn start(config: &Config, listener: TcpListener) -> anyhow::Result<RunningServer> {
    start_with_clock(config, listener, Arc::new(SystemClock)).await
}

/// Like [`start`], on `clock`.
pub async fn start_with_clock(
    config: &Config,
    listener: TcpListener,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<RunningServer> {
    let control_plane = build_with_clock(config, clock).await?;
    let addr = listener.local_addr()?;
    let state = control_plane.state.clone();
    let server = HttpServer::new(move || http::app(state.clone()))
        .workers(worker_count())
        // Signals are the binary's to handle: it stops the server, then drains the control plane.
        .disable_signals()
        .shutdown_timeout(HTTP_SHUTDOWN_SECONDS)
        .listen(listener)?
        .run();
    let handle = server.handle();
    let stopped = tokio::spawn(server);
    Ok(RunningServer { addr, handle, control_plane, stopped })
}

/// One HTTP worker per core: handlers never block, so more workers would only add contention.
fn worker_count() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_key_is_generated_once_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        load_or_generate_secret_key(dir.path()).unwrap();
        let stored = std::fs::read_to_string(dir.path().join(SECRET_KEY_FILE)).unwrap();
        load_or_generate_secret_key(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join(SECRET_KEY_FILE)).unwrap(), stored, "read, not regenerated");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(SECRET_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A key file that cannot be read stops start-up instead of being replaced.
        let unreadable = tempfile::tempdir().unwrap();
        std::fs::create_dir(unreadable.path().join(SECRET_KEY_FILE)).unwrap();
        assert!(load_or_generate_secret_key(unreadable.path()).is_err());
        assert!(unreadable.path().join(SECRET_KEY_FILE).is_dir(), "nothing was written over it");
        std::fs::write(dir.path().join(SECRET_KEY_FILE), "not a key").unwrap();
        assert!(load_or_generate_secret_key(dir.path()).is_err(), "a damaged key is an error");
    }
}
