//! auth, status, version, and the create/update/delete/get/add-resource commands on projects,
//! stages, services and secrets.

use base64::Engine as _;
use serde_json::{json, Value};

use super::args::{
    AddResourceArgs, AuthArgs, Create, Delete, Format, Get, GetProjectArgs, GetServiceArgs, GetStageArgs, GitArgs,
    SecretArgs, Update,
};
use super::client::{api_endpoint, ApiClient, Credentials};
use super::error::CliError;
use super::input::{encode, key_values};
use super::output::Printer;
use super::output::{formatted, table, text};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn read_file(path: &std::path::Path, what: &str) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|error| CliError::Usage(format!("cannot read {what} {}: {error}", path.display())))
}

/// Keptn's name rules, checked before calling the API.
fn check_name(kind: &str, name: &str) -> Result<(), CliError> {
    let checked = match kind {
        "project" => crate::model::names::validate_project_name(name),
        _ => crate::model::names::validate_service_name(name),
    };
    checked.map_err(|reason| CliError::Usage(format!("invalid {kind} name '{name}': {reason}")))
}

pub async fn auth(args: AuthArgs, verbose: bool, out: &Printer) -> Result<(), CliError> {
    if args.export {
        let credentials = Credentials::load()?;
        out.data(format!("Endpoint: {}\nAPI Token: {}", credentials.endpoint, credentials.api_token));
        return Ok(());
    }
    let (Some(endpoint), Some(api_token)) = (args.endpoint, args.api_token) else {
        return Err(CliError::Usage("keptn auth needs --endpoint and --api-token".into()));
    };
    let credentials = Credentials { endpoint: api_endpoint(&endpoint)?, api_token };
    let client = ApiClient::new(credentials, verbose);
    client.post("/v1/auth", &json!({})).await?;
    client.credentials.store()?;
    out.line(format!("Successfully authenticated against {}", client.credentials.endpoint));
    out.line(format!("Bridge URL: {}", client.credentials.bridge_url()));
    Ok(())
}

pub async fn status(client: &ApiClient, out: &Printer) -> Result<(), CliError> {
    client.post("/v1/auth", &json!({})).await?;
    out.line(format!("Successfully authenticated against {}", client.credentials.endpoint));
    out.line(format!("Bridge URL: {}", client.credentials.bridge_url()));
    Ok(())
}

pub async fn version(client: Option<ApiClient>, out: &Printer) -> Result<(), CliError> {
    out.data(format!(
        "Keptn CLI version: {} (Keelson {})",
        crate::http::api_v1::KEPTN_COMPATIBLE_VERSION,
        env!("CARGO_PKG_VERSION")
    ));
    if let Some(client) = client {
        match client.get("/v1/metadata").await {
            Ok(metadata) => out.data(format!("Keptn cluster version: {}", text(&metadata["keptnversion"]))),
            Err(error) => out.data(format!("Keptn cluster version: unknown ({error})")),
        }
    }
    Ok(())
}

/// The `gitCredentials` of a create/update, checked as Keptn's CLI does.
fn git_credentials(git: &GitArgs) -> Result<Option<Value>, CliError> {
    let Some(remote) = git.git_remote_url.as_deref().filter(|url| !url.is_empty()) else {
        let any = git.git_user.is_some() || git.git_token.is_some() || git.git_private_key.is_some();
        if any {
            return Err(CliError::Usage("git credentials need --git-remote-url".into()));
        }
        return Ok(None);
    };
    let mut credentials = json!({ "remoteURL": remote });
    if let Some(user) = &git.git_user {
        credentials["user"] = json!(user);
    }
    if remote.starts_with("ssh://") {
        if git.git_token.is_some() {
            return Err(CliError::Usage("an ssh:// remote takes --git-private-key, not --git-token".into()));
        }
        if git.git_proxy_url.is_some() {
            return Err(CliError::Usage("a proxy cannot be used with an ssh:// remote".into()));
        }
        let key = git
            .git_private_key
            .as_ref()
            .ok_or_else(|| CliError::Usage("an ssh:// remote needs --git-private-key".into()))?;
        credentials["ssh"] = json!({
            "privateKey": b64(&read_file(key, "private key")?),
            "privateKeyPass": git.git_private_key_pass.clone().unwrap_or_default(),
        });
    } else {
        if git.git_private_key.is_some() {
            return Err(CliError::Usage("--git-private-key needs an ssh:// remote".into()));
        }
        let mut https =
            json!({ "token": git.git_token.clone().unwrap_or_default(), "insecureSkipTLS": git.insecure_skip_tls });
        if let Some(pem) = &git.git_pem_certificate {
            https["certificate"] = json!(b64(&read_file(pem, "certificate")?));
        }
        if let Some(proxy) = &git.git_proxy_url {
            let scheme = git
                .git_proxy_scheme
                .clone()
                .ok_or_else(|| CliError::Usage("--git-proxy-url needs --git-proxy-scheme".into()))?;
            https["proxy"] = json!({
                "url": proxy, "scheme": scheme,
                "user": git.git_proxy_user.clone().unwrap_or_default(),
                "password": git.git_proxy_password.clone().unwrap_or_default(),
            });
        }
        credentials["https"] = https;
    }
    Ok(Some(credentials))
}

fn literals(args: &SecretArgs) -> Result<Value, CliError> {
    if args.from_literal.is_empty() {
        return Err(CliError::Usage("give the secret's data with --from-literal key=value".into()));
    }
    Ok(json!({ "name": args.name, "scope": args.scope, "data": key_values("--from-literal", &args.from_literal)? }))
}

pub async fn create(client: &ApiClient, what: Create, out: &Printer) -> Result<(), CliError> {
    match what {
        Create::Project(args) => {
            check_name("project", &args.name)?;
            let shipyard = read_file(&args.shipyard, "shipyard")?;
            let mut body = json!({ "name": args.name, "shipyard": b64(&shipyard) });
            if let Some(credentials) = git_credentials(&args.git)? {
                body["gitCredentials"] = credentials;
            }
            client.post("/controlPlane/v1/project", &body).await?;
            out.line("Project created successfully");
        }
        Create::Service(args) => {
            check_name("service", &args.name)?;
            let path = format!("/controlPlane/v1/project/{}/service", encode(&args.project));
            client.post(&path, &json!({ "serviceName": args.name })).await?;
            out.line("Service created successfully");
        }
        Create::Secret(args) => {
            client.post("/secrets/v1/secret", &literals(&args)?).await?;
            out.line(format!("Secret {} created successfully", args.name));
        }
    }
    Ok(())
}

pub async fn update(client: &ApiClient, what: Update, out: &Printer) -> Result<(), CliError> {
    match what {
        Update::Project(args) => {
            check_name("project", &args.name)?;
            let credentials = git_credentials(&args.git)?
                .ok_or_else(|| CliError::Usage("keptn update project needs --git-remote-url".into()))?;
            client
                .put("/controlPlane/v1/project", &json!({ "name": args.name, "gitCredentials": credentials }))
                .await?;
            out.line("Project updated successfully");
        }
        Update::Secret(args) => {
            client.put("/secrets/v1/secret", &literals(&args)?).await?;
            out.line(format!("Secret {} updated successfully", args.name));
        }
    }
    Ok(())
}

pub async fn delete(client: &ApiClient, what: Delete, out: &Printer) -> Result<(), CliError> {
    match what {
        Delete::Project(args) => {
            let answer = client.delete(&format!("/controlPlane/v1/project/{}", encode(&args.name))).await?;
            out.line("Project deleted successfully");
            if let Some(message) = answer["message"].as_str().filter(|message| !message.is_empty()) {
                out.line(message);
            }
        }
        Delete::Service(args) => {
            let path = format!("/controlPlane/v1/project/{}/service/{}", encode(&args.project), encode(&args.name));
            let answer = client.delete(&path).await?;
            out.line("Service deleted successfully");
            if let Some(message) = answer["message"].as_str().filter(|message| !message.is_empty()) {
                out.line(message);
            }
        }
        Delete::Secret(args) => {
            let path = format!("/secrets/v1/secret?name={}&scope={}", encode(&args.name), encode(&args.scope));
            client.delete(&path).await?;
            out.line(format!("Secret {} has been deleted", args.name));
        }
    }
    Ok(())
}

/// Every item of a paged controlPlane list (`nextPageKey` until `"0"` or absent).
async fn all_pages(client: &ApiClient, path: &str, key: &str) -> Result<Vec<Value>, CliError> {
    let separator = if path.contains('?') { '&' } else { '?' };
    client.pages(&format!("{path}{separator}pageSize=50"), key, usize::MAX).await
}

fn print_list(
    out: &Printer,
    format: Option<Format>,
    items: Value,
    header: &[&str],
    rows: Vec<Vec<String>>,
) -> Result<(), CliError> {
    match format {
        Some(format) => out.data(formatted(&items, format)?),
        None => out.data(table(header, rows)),
    }
    Ok(())
}

pub async fn get(client: &ApiClient, what: Get, out: &Printer) -> Result<(), CliError> {
    match what {
        Get::Project(args) => get_projects(client, args, out).await,
        Get::Stage(args) => get_stages(client, args, out).await,
        Get::Service(args) => get_services(client, args, out).await,
        Get::Event(args) => super::events::get_event(client, args, out).await,
        Get::Secret(args) => {
            let answer = client.get("/secrets/v1/secret").await?;
            let secrets = answer["Secrets"].as_array().cloned().unwrap_or_default();
            if secrets.is_empty() && args.output.is_none() {
                out.data("No secrets found");
                return Ok(());
            }
            let rows = secrets
                .iter()
                .map(|secret| {
                    let keys: Vec<String> = secret["keys"].as_array().into_iter().flatten().map(text).collect();
                    vec![text(&secret["name"]), text(&secret["scope"]), keys.join(",")]
                })
                .collect();
            print_list(out, args.output, Value::Array(secrets), &["NAME", "SCOPE", "KEYS"], rows)
        }
    }
}

async fn get_projects(client: &ApiClient, args: GetProjectArgs, out: &Printer) -> Result<(), CliError> {
    let mut projects = all_pages(client, "/controlPlane/v1/project", "projects").await?;
    if let Some(name) = &args.name {
        projects.retain(|project| project["projectName"] == name.as_str());
        if projects.is_empty() {
            return Err(CliError::Api { status: 404, message: format!("No project {name} found") });
        }
    } else if projects.is_empty() && args.output.output.is_none() {
        out.data("No projects found");
        return Ok(());
    }
    let rows = projects
        .iter()
        .map(|p| vec![text(&p["projectName"]), creation_date(&p["creationDate"]), text(&p["shipyardVersion"])])
        .collect();
    print_list(out, args.output.output, Value::Array(projects), &["NAME", "CREATION DATE", "SHIPYARD VERSION"], rows)
}

/// Keptn's creation dates are Unix nanoseconds as text; shown as RFC 3339.
fn creation_date(value: &Value) -> String {
    let raw = text(value);
    raw.parse::<i64>()
        .ok()
        .map(chrono::DateTime::from_timestamp_nanos)
        .map(|time| time.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or(raw)
}

async fn get_stages(client: &ApiClient, args: GetStageArgs, out: &Printer) -> Result<(), CliError> {
    let path = format!("/controlPlane/v1/project/{}/stage", encode(&args.project));
    let mut stages = all_pages(client, &path, "stages").await?;
    if let Some(name) = &args.name {
        stages.retain(|stage| stage["stageName"] == name.as_str());
        if stages.is_empty() {
            return Err(CliError::Api {
                status: 404,
                message: format!("No stage {name} found in project {}", args.project),
            });
        }
    }
    let rows = stages.iter().map(|stage| vec![text(&stage["stageName"]), "n/a".to_owned()]).collect();
    print_list(out, args.output.output, Value::Array(stages), &["NAME", "CREATION DATE"], rows)
}

async fn get_services(client: &ApiClient, args: GetServiceArgs, out: &Printer) -> Result<(), CliError> {
    let path = format!("/controlPlane/v1/project/{}/stage", encode(&args.project));
    let stages = all_pages(client, &path, "stages").await?;
    let mut rows = Vec::new();
    let mut listed = Vec::new();
    for stage in &stages {
        for service in stage["services"].as_array().into_iter().flatten() {
            if args.name.as_deref().is_some_and(|name| service["serviceName"] != name) {
                continue;
            }
            rows.push(vec![
                text(&service["serviceName"]),
                args.project.clone(),
                text(&stage["stageName"]),
                creation_date(&service["creationDate"]),
            ]);
            let mut entry = service.clone();
            entry["stage"] = stage["stageName"].clone();
            listed.push(entry);
        }
    }
    if listed.is_empty() {
        let name = args.name.as_deref().map(|name| format!("{name} ")).unwrap_or_default();
        return Err(CliError::Api {
            status: 404,
            message: format!("No services {name}found in project {}", args.project),
        });
    }
    print_list(out, args.output.output, Value::Array(listed), &["NAME", "PROJECT", "STAGE", "CREATION DATE"], rows)
}

pub async fn add_resource(client: &ApiClient, args: AddResourceArgs, out: &Printer) -> Result<(), CliError> {
    if args.service.is_some() && args.stage.is_none() && !args.all_stages {
        return Err(CliError::Usage("--service needs --stage or --all-stages".into()));
    }
    let content = read_file(&args.resource, "resource")?;
    let uri = args.resource_uri.clone().unwrap_or_else(|| args.resource.to_string_lossy().into_owned());
    let body = json!({ "resources": [{ "resourceURI": uri, "resourceContent": b64(&content) }] });
    let project = encode(&args.project);
    let stages: Vec<String> = if args.all_stages {
        let path = format!("/controlPlane/v1/project/{project}/stage");
        all_pages(client, &path, "stages").await?.iter().map(|stage| text(&stage["stageName"])).collect()
    } else {
        args.stage.iter().cloned().collect()
    };
    if args.all_stages && stages.is_empty() {
        return Err(CliError::Api { status: 404, message: format!("project {} has no stages", args.project) });
    }
    if stages.is_empty() {
        client.post(&format!("/resource-service/v1/project/{project}/resource"), &body).await?;
    }
    for stage in &stages {
        let path = match &args.service {
            Some(service) => {
                format!(
                    "/resource-service/v1/project/{project}/stage/{}/service/{}/resource",
                    encode(stage),
                    encode(service)
                )
            }
            None => format!("/resource-service/v1/project/{project}/stage/{}/resource", encode(stage)),
        };
        client.post(&path, &body).await?;
    }
    out.line(format!("Resource {uri} has been uploaded"));
    Ok(())
}
