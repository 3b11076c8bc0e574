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

/// A family-A page on the wire: `nextPageKey` always present, `totalCount` omitted when zero.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PageBody<T> {
    #[serde(flatten)]
    items: T,
    next_page_key: String,
    #[serde(skip_serializing_if = "is_zero")]
    total_count: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

fn page_body<T, W>(page: Page<T>, wrap: impl FnOnce(Vec<T>) -> W) -> PageBody<W> {
    PageBody { items: wrap(page.items), next_page_key: page.next_page_key, total_count: page.total_count }
}

fn paginate<T>(query: &PageQuery, items: Vec<T>) -> Result<Page<T>, ApiError> {
    query.paginate(items).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn project(state: &AppState, name: &str) -> Result<std::sync::Arc<ProjectRecord>, ApiError> {
    state.projects.get(name).ok_or_else(|| ProjectError::project_not_found(name).into())
}

#[derive(Serialize)]
struct Projects {
    projects: Vec<ExpandedProject>,
}

async fn list_projects(state: web::Data<AppState>, query: web::Query<PageQuery>) -> Result<HttpResponse, ApiError> {
    let page = paginate(&query, state.projects.list_current().await?)?;
    let page = Page {
        items: page.items.iter().map(|record| state.projects.expand(record)).collect(),
        next_page_key: page.next_page_key,
        total_count: page.total_count,
    };
    Ok(HttpResponse::Ok().json(page_body(page, |projects| Projects { projects })))
}

async fn create_project(state: web::Data<AppState>, body: web::Json<CreateProject>) -> Result<HttpResponse, ApiError> {
    state.projects.create(body.into_inner()).await?;
    Ok(HttpResponse::Created().finish())
}

async fn update_project(state: web::Data<AppState>, body: web::Json<UpdateProject>) -> Result<HttpResponse, ApiError> {
    state.projects.update(body.into_inner()).await?;
    Ok(HttpResponse::Created().finish())
}

async fn get_project(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let record = project(&state, &path)?;
    Ok(HttpResponse::Ok().json(state.projects.expand(&record)))
}

#[derive(Serialize)]
struct MessageBody {
    message: String,
}

async fn delete_project(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let message = state.projects.delete(&path).await?;
    // Running sequences of the project end (aborted) and its executions are forgotten.
    state.control.project_deleted(&path).await;
    Ok(HttpResponse::Ok().json(MessageBody { message }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateServiceBody {
    #[serde(default)]
    service_name: String,
}

async fn create_service(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<CreateServiceBody>,
) -> Result<HttpResponse, ApiError> {
    state.projects.create_service(&path, &body.service_name).await?;
    Ok(HttpResponse::Ok().json(MessageBody { message: String::new() }))
}

async fn delete_service(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (project, service) = path.into_inner();
    state.projects.delete_service(&project, &service).await?;
    Ok(HttpResponse::Ok().json(MessageBody { message: String::new() }))
}

#[derive(Serialize)]
struct Stages {
    stages: Vec<ExpandedStage>,
}

async fn list_stages(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let record = project(&state, &path)?;
    let activity = state.projects.activity_of(&record.name);
    let mut stages: Vec<ExpandedStage> = record.stages.iter().map(|stage| stage.expand(&activity)).collect();
    stages.sort_by(|a, b| a.stage_name.cmp(&b.stage_name));
    let page = paginate(&query, stages)?;
    Ok(HttpResponse::Ok().json(page_body(page, |stages| Stages { stages })))
}

fn stage_not_found(stage: &str) -> ApiError {
    ApiError::not_found(format!("Stage not found: {stage}"))
}

async fn get_stage(state: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (project_name, stage) = path.into_inner();
    let record = project(&state, &project_name)?;
    let stage = record.stage(&stage).ok_or_else(|| stage_not_found(&stage))?;
    let expanded = stage.expand(&state.projects.activity_of(&record.name));
    Ok(HttpResponse::Ok().json(expanded))
}

#[derive(Serialize)]
struct Services {
    services: Vec<ExpandedService>,
}

async fn list_services(
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
    Ok(HttpResponse::Ok().json(page_body(page, |services| Services { services })))
}

async fn get_service(
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
