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

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ResourceMetadata)]
pub(super) struct Metadata {
    #[serde(rename = "upstreamURL", skip_serializing_if = "Option::is_none")]
    upstream_url: Option<String>,
    version: String,
}

fn metadata(state: &AppState, project: &str, commit: String) -> Metadata {
    Metadata { upstream_url: state.projects.repos().upstream_url(project), version: commit }
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListedResource {
    #[serde(rename = "resourceURI")]
    resource_uri: String,
    metadata: Metadata,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResourceList {
    resources: Vec<ListedResource>,
    next_page_key: String,
    #[serde(skip_serializing_if = "crate::model::paging::is_zero")]
    total_count: usize,
}

#[utoipa::path(get, path = "/api/resource-service/v1/project/{project}/resource", tag = "resource", operation_id = "getResources",
    summary = "Lists the resources", params(("project" = String, Path, description = "The project"), PageQuery, ReadQuery),
    responses(
        (status = 200, description = "A page of resource paths", body = ResourceList),
        (status = 400, description = "Invalid page parameter", body = super::error::ErrorBody),
        (status = 404, description = "No such project, stage, service or commit", body = super::error::ErrorBody),
    ))]
pub(super) async fn list(
    state: web::Data<AppState>,
    request: HttpRequest,
    query: web::Query<PageQuery>,
    at: web::Query<ReadQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project, scope) = scope_of(&state, &request)?;
    let excluded = match &scope {
        Scope::Stage(stage) => state.projects.service_names(&project, stage),
        _ => Vec::new(),
    };
    let commit = at.into_inner().git_commit_id.filter(|id| !id.is_empty() && id != "\"\"");
    let listing =
        state.projects.repos().list(&project, scope, excluded, commit).await.map_err(ProjectError::from_resource)?;
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct ReadQuery {
    /// The content at this commit instead of the branch head.
    #[serde(rename = "gitCommitID", default)]
    git_commit_id: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResourceBody {
    #[serde(rename = "resourceURI")]
    resource_uri: String,
    resource_content: String,
    metadata: Metadata,
}

#[utoipa::path(get, path = "/api/resource-service/v1/project/{project}/resource/{resourceURI}", tag = "resource", operation_id = "getResource",
    summary = "Reads a resource (base64 content)", params(("project" = String, Path, description = "The project"), ("resourceURI" = String, Path, description = "The resource's path, URL-encoded (`%2F` for `/`)"), ReadQuery),
    responses(
        (status = 200, description = "The resource", body = ResourceBody),
        (status = 404, description = "No such project, stage, service, resource or commit", body = super::error::ErrorBody),
    ))]
pub(super) async fn read(
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewResource {
    #[serde(rename = "resourceURI", default)]
    resource_uri: String,
    #[serde(default)]
    resource_content: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct NewResources {
    #[serde(default)]
    resources: Vec<NewResource>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewContent {
    #[serde(default)]
    resource_content: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct WriteResult {
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

#[utoipa::path(post, path = "/api/resource-service/v1/project/{project}/resource", tag = "resource", operation_id = "createResources",
    summary = "Adds resources in one commit", params(("project" = String, Path, description = "The project")), request_body = NewResources,
    responses(
        (status = 201, description = "Committed", body = WriteResult),
        (status = 400, description = "No resources, a bad path or content that is not base64", body = super::error::ErrorBody),
        (status = 404, description = "No such project, stage or service", body = super::error::ErrorBody),
    ))]
pub(super) async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<NewResources>,
) -> Result<HttpResponse, ApiError> {
    let files = decode_all(body.into_inner())?;
    Ok(HttpResponse::Created().json(write(&state, &request, files).await?))
}

#[utoipa::path(put, path = "/api/resource-service/v1/project/{project}/resource", tag = "resource", operation_id = "updateResources",
    summary = "Writes resources in one commit", params(("project" = String, Path, description = "The project")), request_body = NewResources,
    responses(
        (status = 200, description = "Committed", body = WriteResult),
        (status = 400, description = "No resources, a bad path or content that is not base64", body = super::error::ErrorBody),
        (status = 404, description = "No such project, stage or service", body = super::error::ErrorBody),
    ))]
pub(super) async fn update(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<NewResources>,
) -> Result<HttpResponse, ApiError> {
    let files = decode_all(body.into_inner())?;
    Ok(HttpResponse::Ok().json(write(&state, &request, files).await?))
}

#[utoipa::path(put, path = "/api/resource-service/v1/project/{project}/resource/{resourceURI}", tag = "resource", operation_id = "updateResource",
    summary = "Writes one resource", params(("project" = String, Path, description = "The project"), ("resourceURI" = String, Path, description = "The resource's path, URL-encoded (`%2F` for `/`)")), request_body = NewContent,
    responses(
        (status = 200, description = "Committed", body = WriteResult),
        (status = 400, description = "A bad path or content that is not base64", body = super::error::ErrorBody),
        (status = 404, description = "No such project, stage or service", body = super::error::ErrorBody),
    ))]
pub(super) async fn update_one(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<NewContent>,
) -> Result<HttpResponse, ApiError> {
    let (_, uri) = resource_uri(&request)?;
    let content = decode_content(&body.resource_content)?;
    Ok(HttpResponse::Ok().json(write(&state, &request, vec![(uri, content)]).await?))
}

#[utoipa::path(delete, path = "/api/resource-service/v1/project/{project}/resource/{resourceURI}", tag = "resource", operation_id = "deleteResource",
    summary = "Deletes one resource", params(("project" = String, Path, description = "The project"), ("resourceURI" = String, Path, description = "The resource's path, URL-encoded (`%2F` for `/`)")),
    responses(
        (status = 200, description = "Committed", body = WriteResult),
        (status = 404, description = "No such project, stage, service or resource", body = super::error::ErrorBody),
    ))]
pub(super) async fn delete(state: web::Data<AppState>, request: HttpRequest) -> Result<HttpResponse, ApiError> {
    let (project, scope) = scope_of(&state, &request)?;
    let (_, uri) = resource_uri(&request)?;
    let commit = state.projects.repos().delete(&project, scope, uri).await.map_err(ProjectError::from_resource)?;
    Ok(HttpResponse::Ok().json(WriteResult { metadata: metadata(&state, &project, commit.clone()), commit_id: commit }))
}
