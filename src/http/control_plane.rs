//! `/api/controlPlane/v1`: projects, stages and services.

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::state::AppState;
use crate::model::paging::{Page, PageQuery};
use crate::model::project::{ExpandedProject, ExpandedService, ExpandedStage, ProjectRecord};
use crate::projects::{CreateProject, ProjectError, UpdateProject};

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/project", web::get().to(list_projects))
        .route("/project", web::post().to(create_project))
        .route("/project", web::put().to(update_project))
        .route("/project/{project}", web::get().to(get_project))
        .route("/project/{project}", web::delete().to(delete_project))
        .route("/project/{project}/service", web::post().to(create_service))
        .route("/project/{project}/service/{service}", web::delete().to(delete_service))
        .route("/project/{project}/stage", web::get().to(list_stages))
        .route("/project/{project}/stage/{stage}", web::get().to(get_stage))
        .route("/project/{project}/stage/{stage}/service", web::get().to(list_services))
        .route("/project/{project}/stage/{stage}/service/{service}", web::get().to(get_service));
}

fn paginate<T>(query: &PageQuery, items: Vec<T>) -> Result<Page<T>, ApiError> {
    query.paginate(items).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn project(state: &AppState, name: &str) -> Result<std::sync::Arc<ProjectRecord>, ApiError> {
    state.projects.get(name).ok_or_else(|| ProjectError::project_not_found(name).into())
}

/// A family-A page on the wire: `nextPageKey` always present (`"0"` on the last page), `totalCount`
/// omitted when zero.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExpandedProjects {
    projects: Vec<ExpandedProject>,
    next_page_key: String,
    #[serde(skip_serializing_if = "crate::model::paging::is_zero")]
    total_count: usize,
}

#[utoipa::path(get, path = "/api/controlPlane/v1/project", tag = "project", operation_id = "getProjects",
    summary = "Lists the projects", params(PageQuery),
    responses((status = 200, description = "A page of projects", body = ExpandedProjects)))]
pub(super) async fn list_projects(
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = paginate(&query, state.projects.list_current().await?)?;
    Ok(HttpResponse::Ok().json(ExpandedProjects {
        projects: page.items.iter().map(|record| state.projects.expand(record)).collect(),
        next_page_key: page.next_page_key,
        total_count: page.total_count,
    }))
}

#[utoipa::path(post, path = "/api/controlPlane/v1/project", tag = "project", operation_id = "createProject",
    summary = "Creates a project from a base64 shipyard, optionally with a git upstream",
    request_body = CreateProject,
    responses(
        (status = 201, description = "Created (empty body)"),
        (status = 400, description = "Invalid name, shipyard or credentials", body = super::error::ErrorBody),
        (status = 409, description = "The project exists, or its upstream holds another project", body = super::error::ErrorBody),
    ))]
pub(super) async fn create_project(
    state: web::Data<AppState>,
    body: web::Json<CreateProject>,
) -> Result<HttpResponse, ApiError> {
    state.projects.create(body.into_inner()).await?;
    Ok(HttpResponse::Created().finish())
}

#[utoipa::path(put, path = "/api/controlPlane/v1/project", tag = "project", operation_id = "updateProject",
    summary = "Changes a project's git upstream or shipyard (same stages)",
    request_body = UpdateProject,
    responses(
        (status = 201, description = "Updated (empty body)"),
        (status = 400, description = "Invalid request", body = super::error::ErrorBody),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
    ))]
pub(super) async fn update_project(
    state: web::Data<AppState>,
    body: web::Json<UpdateProject>,
) -> Result<HttpResponse, ApiError> {
    state.projects.update(body.into_inner()).await?;
    Ok(HttpResponse::Created().finish())
}

#[utoipa::path(get, path = "/api/controlPlane/v1/project/{project}", tag = "project", operation_id = "getProject",
    summary = "One project with its stages and services",
    params(("project" = String, Path, description = "The project")),
    responses(
        (status = 200, description = "The project", body = ExpandedProject),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
    ))]
pub(super) async fn get_project(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let record = project(&state, &path)?;
    Ok(HttpResponse::Ok().json(state.projects.expand(&record)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct MessageBody {
    message: String,
}

#[utoipa::path(delete, path = "/api/controlPlane/v1/project/{project}", tag = "project", operation_id = "deleteProject",
    summary = "Deletes a project, its repository and its running sequences",
    params(("project" = String, Path, description = "The project")),
    responses(
        (status = 200, description = "Deleted; `message` mentions what was left upstream", body = MessageBody),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
    ))]
pub(super) async fn delete_project(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let message = state.projects.delete(&path).await?;
    // Running sequences of the project end (aborted) and its executions are forgotten.
    state.control.project_deleted(&path).await;
    Ok(HttpResponse::Ok().json(MessageBody { message }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CreateServiceBody {
    #[serde(default)]
    service_name: String,
}

#[utoipa::path(post, path = "/api/controlPlane/v1/project/{project}/service", tag = "project", operation_id = "createService",
    summary = "Adds a service to every stage of a project",
    params(("project" = String, Path, description = "The project")),
    request_body = CreateServiceBody,
    responses(
        (status = 200, description = "Created", body = MessageBody),
        (status = 400, description = "Invalid service name", body = super::error::ErrorBody),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
        (status = 409, description = "The service exists", body = super::error::ErrorBody),
    ))]
pub(super) async fn create_service(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CreateServiceBody>,
) -> Result<HttpResponse, ApiError> {
    state.projects.create_service(&path, &body.service_name).await?;
    Ok(HttpResponse::Ok().json(MessageBody { message: String::new() }))
}

#[utoipa::path(delete, path = "/api/controlPlane/v1/project/{project}/service/{service}", tag = "project", operation_id = "deleteService",
    summary = "Removes a service from every stage of a project",
    params(("project" = String, Path, description = "The project"), ("service" = String, Path, description = "The service")),
    responses(
        (status = 200, description = "Deleted", body = MessageBody),
        (status = 404, description = "No such project or service", body = super::error::ErrorBody),
    ))]
pub(super) async fn delete_service(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, service) = path.into_inner();
    state.projects.delete_service(&project, &service).await?;
    Ok(HttpResponse::Ok().json(MessageBody { message: String::new() }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExpandedStages {
    stages: Vec<ExpandedStage>,
    next_page_key: String,
    #[serde(skip_serializing_if = "crate::model::paging::is_zero")]
    total_count: usize,
}

#[utoipa::path(get, path = "/api/controlPlane/v1/project/{project}/stage", tag = "project", operation_id = "getStages",
    summary = "Lists a project's stages",
    params(("project" = String, Path, description = "The project"), PageQuery),
    responses(
        (status = 200, description = "A page of stages", body = ExpandedStages),
        (status = 404, description = "No such project", body = super::error::ErrorBody),
    ))]
pub(super) async fn list_stages(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let record = project(&state, &path)?;
    let activity = state.projects.activity_of(&record.name);
    let mut stages: Vec<ExpandedStage> = record.stages.iter().map(|stage| stage.expand(&activity)).collect();
    stages.sort_by(|a, b| a.stage_name.cmp(&b.stage_name));
    let page = paginate(&query, stages)?;
    Ok(HttpResponse::Ok().json(ExpandedStages {
        stages: page.items,
        next_page_key: page.next_page_key,
        total_count: page.total_count,
    }))
}

fn stage_not_found(stage: &str) -> ApiError {
    ApiError::not_found(format!("Stage not found: {stage}"))
}

#[utoipa::path(get, path = "/api/controlPlane/v1/project/{project}/stage/{stage}", tag = "project", operation_id = "getStage",
    summary = "One stage with its services",
    params(("project" = String, Path, description = "The project"), ("stage" = String, Path, description = "The stage")),
    responses(
        (status = 200, description = "The stage", body = ExpandedStage),
        (status = 404, description = "No such project or stage", body = super::error::ErrorBody),
    ))]
pub(super) async fn get_stage(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_name, stage) = path.into_inner();
    let record = project(&state, &project_name)?;
    let stage = record.stage(&stage).ok_or_else(|| stage_not_found(&stage))?;
    let expanded = stage.expand(&state.projects.activity_of(&record.name));
    Ok(HttpResponse::Ok().json(expanded))
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExpandedServices {
    services: Vec<ExpandedService>,
    next_page_key: String,
    #[serde(skip_serializing_if = "crate::model::paging::is_zero")]
    total_count: usize,
}

#[utoipa::path(get, path = "/api/controlPlane/v1/project/{project}/stage/{stage}/service", tag = "project", operation_id = "getServices",
    summary = "Lists the services of a stage",
    params(("project" = String, Path, description = "The project"), ("stage" = String, Path, description = "The stage"), PageQuery),
    responses(
        (status = 200, description = "A page of services", body = ExpandedServices),
        (status = 404, description = "No such project or stage", body = super::error::ErrorBody),
    ))]
pub(super) async fn list_services(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (project_name, stage) = path.into_inner();
    let record = project(&state, &project_name)?;
    let stage = record.stage(&stage).ok_or_else(|| stage_not_found(&stage))?;
    let activity = state.projects.activity_of(&record.name);
    let services: Vec<ExpandedService> =
        stage.services.iter().map(|service| service.expand(activity(&stage.name, &service.name).as_deref())).collect();
    let page = paginate(&query, services)?;
    Ok(HttpResponse::Ok().json(ExpandedServices {
        services: page.items,
        next_page_key: page.next_page_key,
        total_count: page.total_count,
    }))
}

#[utoipa::path(get, path = "/api/controlPlane/v1/project/{project}/stage/{stage}/service/{service}", tag = "project", operation_id = "getService",
    summary = "One service of a stage, with its latest events",
    params(("project" = String, Path, description = "The project"), ("stage" = String, Path, description = "The stage"), ("service" = String, Path, description = "The service")),
    responses(
        (status = 200, description = "The service", body = ExpandedService),
        (status = 404, description = "No such project, stage or service", body = super::error::ErrorBody),
    ))]
pub(super) async fn get_service(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project_name, stage, service) = path.into_inner();
    let record = project(&state, &project_name)?;
    let stage = record.stage(&stage).ok_or_else(|| stage_not_found(&stage))?;
    let service =
        stage.service(&service).ok_or_else(|| ApiError::not_found(format!("Service not found: {service}")))?;
    let activity = state.projects.activity_of(&record.name)(&stage.name, &service.name);
    Ok(HttpResponse::Ok().json(service.expand(activity.as_deref())))
}
