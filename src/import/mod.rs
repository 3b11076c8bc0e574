//! `keelson import`: moves an existing Keptn 1.x installation's data into a running Keelson, through
//! Keelson's API: projects taken over from their git upstreams (with the services Keptn listed), the
//! event history from Keptn's MongoDB (its datastore's collection layout), and the secrets of Keptn's
//! secret-service from a `kubectl get secrets -o json` dump. Repeating an import is harmless: existing
//! projects and events are left as they are, existing secrets are updated.

pub mod keptn;

use std::path::PathBuf;

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use mongodb::bson::{doc, Document, RawDocumentBuf};
use serde_json::json;

use crate::cli::client::{api_endpoint, ApiClient, Credentials};
use crate::cli::error::CliError;
use keptn::{KeptnProject, KubernetesSecret};

/// Keptn's project collection, and the history collection of events without a project.
const PROJECTS_COLLECTION: &str = "keptnProjectsMV";
const UNMAPPED_EVENTS: &str = "keptnUnmappedEvents";
/// The database when the connection string names none (Keptn's chart uses `keptn`).
const DEFAULT_DATABASE: &str = "keptn";
/// Events per import request, and the size (of the stored documents) at which a batch is sent early.
const BATCH_EVENTS: usize = 500;
const BATCH_BYTES: usize = 2 * 1024 * 1024;

/// What `keelson import` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keptn's MongoDB (`mongodb://…/keptn`).
    pub mongodb_url: String,
    /// `kubectl get secrets -n keptn -o json` output, for upstream tokens and secret-service secrets.
    pub secrets_file: Option<PathBuf>,
    /// The running Keelson's base URL (`http://host:8080`) and API token.
    pub endpoint: String,
    pub token: String,
    /// Only these projects (all when empty).
    pub projects: Vec<String>,
    /// Leave the event history out.
    pub skip_events: bool,
}

/// What an import did; every line is also printed as it happens.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub failures: usize,
}

impl Report {
    fn say(&mut self, line: String) {
        println!("{line}");
        self.lines.push(line);
    }

    fn fail(&mut self, line: String) {
        self.failures += 1;
        self.say(format!("fail  {line}"));
    }
}

/// Runs an import; `Err` only when nothing could start (Keptn's database or the secrets file
/// unreadable, Keelson unreachable). Item failures are counted in the report.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let secrets = match &options.secrets_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            keptn::parse_secrets(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => Vec::new(),
    };
    let database = connect(&options.mongodb_url).await?;
    let keelson = keelson(&options.endpoint, &options.token).await?;

    let mut report = Report::default();
    let mut projects = Vec::new();
    let mut cursor = database
        .collection::<Document>(PROJECTS_COLLECTION)
        .find(doc! {})
        .await
        .with_context(|| format!("cannot read {PROJECTS_COLLECTION} in Keptn's database"))?;
    while let Some(document) = cursor.try_next().await.context("reading Keptn's projects")? {
        match keptn::project_from_document(&document) {
            Ok(project) if options.projects.is_empty() || options.projects.contains(&project.name) => {
                projects.push(project)
            }
            Ok(_) => {}
            Err(error) => report.fail(format!("project: {error}")),
        }
    }
    for wanted in &options.projects {
        if !projects.iter().any(|project| &project.name == wanted) {
            report.fail(format!("project {wanted}: not in Keptn's database"));
        }
    }
    for project in &projects {
        import_project(&keelson, project, &secrets, &mut report).await;
    }
    for item in keptn::keptn_secrets(&secrets) {
        match item {
            Ok(secret) => import_secret(&keelson, secret, &mut report).await,
            Err(error) => report.fail(format!("secret: {error}")),
        }
    }
    if !options.skip_events {
        for project in &projects {
            for collection in [project.name.clone(), format!("{}-invalidatedEvents", project.name)] {
                import_events(&keelson, &database, &collection, &project.name, &mut report).await;
            }
            note_open_sequences(&database, &project.name, &mut report).await;
        }
        if options.projects.is_empty() {
            import_events(&keelson, &database, UNMAPPED_EVENTS, "events without a project", &mut report).await;
        }
    }
    Ok(report)
}

async fn connect(url: &str) -> anyhow::Result<mongodb::Database> {
    let database =
        crate::store::mongo::database(url, DEFAULT_DATABASE).await.context("invalid MongoDB connection string")?;
    database.run_command(doc! { "ping": 1 }).await.context("Keptn's MongoDB does not answer")?;
    Ok(database)
}

/// The running Keelson's API, once it accepted the token.
async fn keelson(endpoint: &str, token: &str) -> anyhow::Result<ApiClient> {
    let credentials = Credentials { endpoint: api_endpoint(endpoint)?, api_token: token.to_owned() };
    let client = ApiClient::new(credentials, false);
    match client.post("/v1/auth", &json!({})).await {
        Ok(_) => Ok(client),
        Err(CliError::Auth(_)) => anyhow::bail!("Keelson at {endpoint} refused the API token"),
        Err(error) => Err(error.into()),
    }
}

/// `status message` of a refused API call, or the failure to reach the API.
fn refusal(error: &CliError) -> String {
    match error {
        CliError::Api { status, message } => format!("{status} {message}"),
        other => other.to_string(),
    }
}

async fn import_project(
    keelson: &ApiClient,
    project: &KeptnProject,
    secrets: &[KubernetesSecret],
    report: &mut Report,
) {
    let name = &project.name;
    match keelson.get(&format!("/controlPlane/v1/project/{name}")).await {
        Ok(_) => return report.say(format!("skip  project {name}: already in Keelson")),
        Err(CliError::Api { status: 404, .. }) => {}
        Err(error) => return report.fail(format!("project {name}: {}", refusal(&error))),
    }
    let credentials = match keptn::git_credentials(project, secrets) {
        Ok(credentials) => credentials,
        Err(error) => return report.fail(format!("project {name}: {error}")),
    };
    let remote = credentials["remoteURL"].as_str().unwrap_or_default().to_owned();
    let body = json!({
        "name": name,
        "gitCredentials": credentials,
        "services": project.services,
        "creationDate": project.creation_date,
    });
    match keelson.post("/v1/import/project", &body).await {
        Ok(_) => report.say(format!(
            "ok    project {name}: taken over from {} with {} service(s)",
            crate::model::project::without_password(&remote),
            project.services.len()
        )),
        Err(error) => report.fail(format!("project {name}: {}", refusal(&error))),
    }
}

async fn import_secret(keelson: &ApiClient, secret: keptn::KeptnSecret, report: &mut Report) {
    let keptn::KeptnSecret { name, scope, data } = secret;
    let keys = data.len();
    let body = json!({ "name": name, "scope": scope, "data": data });
    let mut outcome = keelson.post("/secrets/v1/secret", &body).await;
    let mut verb = "imported";
    if matches!(outcome, Err(CliError::Api { status: 409, .. })) {
        outcome = keelson.put("/secrets/v1/secret", &body).await;
        verb = "updated";
    }
    match outcome {
        Ok(_) => report.say(format!("ok    secret {scope}/{name}: {verb} ({keys} key(s))")),
        Err(error) => report.fail(format!("secret {scope}/{name}: {}", refusal(&error))),
    }
}

/// Sends one collection of Keptn's history, oldest first (so each context's first event becomes its
/// root event), in batches.
async fn import_events(
    keelson: &ApiClient,
    database: &mongodb::Database,
    collection: &str,
    what: &str,
    report: &mut Report,
) {
    let cursor =
        database.collection::<RawDocumentBuf>(collection).find(doc! {}).sort(doc! { "time": 1, "_id": 1 }).await;
    let mut cursor = match cursor {
        Ok(cursor) => cursor,
        Err(error) => return report.fail(format!("events {collection}: {error}")),
    };
    let (mut sent, mut skipped, mut batch, mut bytes) = (0usize, 0usize, Vec::new(), 0usize);
    loop {
        let next = match cursor.try_next().await {
            Ok(next) => next,
            Err(error) => return report.fail(format!("events {collection}: {error} (after {sent})")),
        };
        let done = next.is_none();
        if let Some(raw) = next {
            // The stored size stands for the size on the wire; nothing is encoded twice to measure it.
            match raw.to_document().ok().and_then(keptn::event_from_document) {
                Some(event) => {
                    bytes += raw.as_bytes().len();
                    batch.push(event);
                }
                None => skipped += 1,
            }
        }
        if !batch.is_empty() && (done || batch.len() >= BATCH_EVENTS || bytes >= BATCH_BYTES) {
            let count = batch.len();
            match keelson.post("/v1/import/events", &json!({ "events": std::mem::take(&mut batch) })).await {
                Ok(_) => sent += count,
                Err(error) => return report.fail(format!("events {collection}: {} (after {sent})", refusal(&error))),
            }
            bytes = 0;
        }
        if done {
            break;
        }
    }
    if sent > 0 || skipped > 0 {
        let skipped =
            if skipped > 0 { format!(", {skipped} document(s) that are not events left out") } else { String::new() };
        report.say(format!("ok    events {collection} ({what}): {sent} sent{skipped}"));
    }
}

/// Sequences still running in Keptn are not carried over; say how many there are.
async fn note_open_sequences(database: &mongodb::Database, project: &str, report: &mut Report) {
    let filter = doc! { "status.state": { "$in": keptn::OPEN_SEQUENCE_STATES } };
    let collection = database.collection::<Document>(&format!("{project}-sequence-execution"));
    if let Ok(open) = collection.count_documents(filter).await {
        if open > 0 {
            report.say(format!(
                "note  project {project}: {open} sequence execution(s) were still open in Keptn; they are not carried over"
            ));
        }
    }
}
