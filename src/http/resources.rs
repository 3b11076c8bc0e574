//! `/api/resource-service/v1`: resources at project, stage and service scope, backed by git.

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::AppState;
use crate::model::paging::PageQuery;
use crate::projects::ProjectError;
use crate::resources::Scope;

const SCOPES: [&str; 3] =
    ["/project/{project}", "/project/{project}/stage/{stage}", "/project/{project}/stage/{stage}/service/{service}"];

pub fn routes(config: &mut web::ServiceConfig) {
    for scope in SCOPES {
        config
            .route(&format!("{scope}/resource"), web::get().to(list))
            .route(&format!("{scope}/resource"), web::post().to(create))
            .route(&format!("{scope}/resource"), web::put().to(update))
            .route(&format!("{scope}/resource/{{uri:.+}}"), web::get().to(read))
            .route(&format!("{scope}/resource/{{uri:.+}}"), web::put().to(update_one))
            .route(&format!("{scope}/resource/{{uri:.+}}"), web::delete().to(delete));
    }
}

/// The project and scope named by the request path, after checking they exist.
fn scope_of(state: &AppState, request: &HttpRequest) -> Result<(String, Scope), ApiError> {
    let info = request.match_info();
    let project = info.get("project").unwrap_or_default().to_owned();
    let scope = match (info.get("stage"), info.get("service")) {
        (Some(stage), Some(service)) => Scope::Service { stage: stage.to_owned(), service: service.to_owned() },
        (Some(stage), None) => Scope::Stage(stage.to_owned()),
        _ => Scope::Project,
    };
    state.projects.check_scope(&project, &scope)?;
    Ok((project, scope))
}

/// The resource URI of the path as given, and decoded: one escaped segment (`a%2Fb.yaml`), a
/// double-escaped one (`a%252Fb.yaml`, as Keptn's Bridge sends it) or a plain multi-segment tail.
fn resource_uri(request: &HttpRequest) -> Result<(String, String), ApiError> {
    let raw = request.match_info().get("uri").unwrap_or_default().to_owned();
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|uri| uri.into_owned())
            .map_err(|_| ApiError::bad_request("invalid resource uri: it is not UTF-8"))
    };
    let mut decoded = decode(&raw)?;
    if decoded.contains("%2F") || decoded.contains("%2f") {
        decoded = decode(&decoded)?;
    }
    Ok((raw, decoded))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(rename = "upstreamURL", skip_serializing_if = "Option::is_none")]
    upstream_url: Option<String>,
    version: String,
}

fn metadata(state: &AppState, project: &str, commit: String) -> Metadata {
    Metadata { upstream_url: state.projects.repos().upstream_url(project), version: commit }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListedResource {
    #[serde(rename = "resourceURI")]
    resource_uri: String,
    metadata: Metadata,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceList {
    resources: Vec<ListedResource>,
    next_page_key: String,
    #[serde(skip_serializing_if = "is_zero")]
    total_count: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, scope) = scope_of(&state, &request)?;
    let excluded = match &scope {
        Scope::Stage(stage) => state.projects.service_names(&project, stage),
        _ => Vec::new(),
    };
    let listing = state.projects.repos().list(&project, scope, excluded).await.map_err(ProjectError::from_resource)?;
    let page = query.paginate(listing.uris).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let resources = page
        .items
        .into_iter()
        .map(|resource_uri| ListedResource {
            resource_uri,
            metadata: metadata(&state, &project, listing.commit.clone()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(ResourceList {
        resources,
        next_page_key: page.next_page_key,
        total_count: page.total_count,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadQuery {
    #[serde(rename = "gitCommitID", default)]
    git_commit_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceBody {
    #[serde(rename = "resourceURI")]
    resource_uri: String,
    resource_content: String,
    metadata: Metadata,
}

async fn read(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<ReadQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, scope) = scope_of(&state, &request)?;
    let (raw_uri, uri) = resource_uri(&request)?;
    // Keptn clients sometimes send the literal `""` for "no commit".
    let commit = query.into_inner().git_commit_id.filter(|id| !id.is_empty() && id != "\"\"");
    let (content, commit) =
        state.projects.repos().read(&project, scope, uri, commit).await.map_err(ProjectError::from_resource)?;
    Ok(HttpResponse::Ok().json(ResourceBody {
        // Keptn answers with the URI as given in the path, still escaped.
        resource_uri: raw_uri,
        resource_content: base64::engine::general_purpose::STANDARD.encode(content),
        metadata: metadata(&state, &project, commit),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewResource {
    #[serde(rename = "resourceURI", default)]
    resource_uri: String,
    #[serde(default)]
    resource_content: String,
}

#[derive(Deserialize)]
struct NewResources {
    #[serde(default)]
    resources: Vec<NewResource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewContent {
    #[serde(default)]
    resource_content: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WriteResult {
    #[serde(rename = "commitID")]
    commit_id: String,
    metadata: Metadata,
}

fn decode_content(content: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(content.trim())
        .map_err(|_| ApiError::bad_request("resource content is not base64 encoded"))
}

async fn write(
    state: &AppState,
    request: &HttpRequest,
    files: Vec<(String, Vec<u8>)>,
) -> Result<WriteResult, ApiError> {
    let (project, scope) = scope_of(state, request)?;
    if files.is_empty() {
        return Err(ApiError::bad_request("no resources given"));
    }
    let commit = state.projects.repos().write(&project, scope, files).await.map_err(ProjectError::from_resource)?;
    Ok(WriteResult { metadata: metadata(state, &project, commit.clone()), commit_id: commit })
}

fn decode_all(body: NewResources) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    body.resources
        .into_iter()
        .map(|resource| Ok((resource.resource_uri, decode_content(&resource.resource_content)?)))
        .collect()
}

async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<NewResources>,
) -> Result<HttpResponse, ApiError> {
    let files = decode_all(body.into_inner())?;
    Ok(HttpResponse::Created().json(write(&state, &request, files).await?))
}

async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<NewResources>,
) -> Result<HttpResponse, ApiError> {
    let files = decode_all(body.into_inner())?;
    Ok(HttpResponse::Ok().json(write(&state, &request, files).await?))
}

async fn update_one(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<NewContent>,
) -> Result<HttpResponse, ApiError> {
    let (_, uri) = resource_uri(&request)?;
    let content = decode_content(&body.resource_content)?;
    Ok(HttpResponse::Ok().json(write(&state, &request, vec![(uri, content)]).await?))
}

async fn delete(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (project, scope) = scope_of(&state, &request)?;
    let (_, uri) = resource_uri(&request)?;
    let commit = state.projects.repos().delete(&project, scope, uri).await.map_err(ProjectError::from_resource)?;
    Ok(HttpResponse::Ok().json(WriteResult { metadata: metadata(&state, &project, commit.clone()), commit_id: commit }))
}
