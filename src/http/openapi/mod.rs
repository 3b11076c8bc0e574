//! The API described as an OpenAPI 3.1 document, generated from the handlers' annotations and types,
//! served at `/api/openapi.json`, with Swagger UI at `/api/swagger-ui/` (assets embedded in the binary).
//!
//! Both are public, like `/health`: the document holds no data, and Swagger UI asks for the token
//! (its "Authorize" button) before it sends a request.

mod swagger_ui;

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Required, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{
    api_v1, auth, cluster, control_plane, datastore, error, events, health, import, resources, secrets, sequences,
    uniform,
};

/// The header that carries the API token.
pub const TOKEN_HEADER: &str = "x-token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keelson API",
        description = "Keptn 1.4.5's API as Keelson serves it: the gateway routes `/api/v1`, `/api/controlPlane/v1`, \
            `/api/resource-service/v1`, `/api/mongodb-datastore` and `/api/secrets/v1`. Every operation needs the \
            API token in the `x-token` header. Errors are `{code, message}` with `code` the HTTP status.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        health::health,
        auth::auth,
        auth::auth_get,
        api_v1::metadata,
        events::post_event,
        cluster::status,
        import::import_project,
        import::import_events,
        control_plane::list_projects,
        control_plane::create_project,
        control_plane::update_project,
        control_plane::get_project,
        control_plane::delete_project,
        control_plane::create_service,
        control_plane::delete_service,
        control_plane::list_stages,
        control_plane::get_stage,
        control_plane::list_services,
        control_plane::get_service,
        sequences::control,
        sequences::sequence_states,
        sequences::sequence_executions,
        sequences::triggered_events,
        sequences::trigger_evaluation,
        uniform::list,
        uniform::register,
        uniform::unregister,
        uniform::ping,
        uniform::subscriptions,
        uniform::add_subscription,
        uniform::subscription,
        uniform::put_subscription,
        uniform::delete_subscription,
        uniform::add_logs,
        uniform::logs,
        resources::list,
        resources::create,
        resources::update,
        resources::read,
        resources::update_one,
        resources::delete,
        datastore::events,
        datastore::events_of_type,
        secrets::list,
        secrets::create,
        secrets::update,
        secrets::delete,
        secrets::scopes,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&TokenSecurity, &ErrorResponses, &ResourceScopes),
    tags(
        (name = "api", description = "Authentication, metadata and events (`/api/v1`)"),
        (name = "project", description = "Projects, stages and services (`/api/controlPlane/v1`)"),
        (name = "sequence", description = "Sequence control and state (`/api/controlPlane/v1`)"),
        (name = "uniform", description = "Integrations, subscriptions and their logs (`/api/controlPlane/v1`)"),
        (name = "resource", description = "Versioned resources in git (`/api/resource-service/v1`)"),
        (name = "datastore", description = "The event history (`/api/mongodb-datastore`)"),
        (name = "secret", description = "Secrets (`/api/secrets/v1`)"),
        (name = "operations", description = "Health and cluster state"),
        (name = "import", description = "Moving a Keptn installation over (`keelson import`)"),
    )
)]
struct ApiDoc;

/// Every operation under `/api` needs the token; `/health` needs none.
struct TokenSecurity;

impl Modify for TokenSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            TOKEN_HEADER,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                TOKEN_HEADER,
                "The API token (printed at the first start, or KEELSON_API_TOKEN)",
            ))),
        );
        let requirement = utoipa::openapi::security::SecurityRequirement::new(TOKEN_HEADER, Vec::<String>::new());
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            for operation in operations(item) {
                operation.security.get_or_insert_with(Vec::new).push(requirement.clone());
            }
        }
    }
}

/// Every `/api` operation may answer 401 (token), 413/415 (body), 503 (store or instance unavailable)
/// and any error status with `{code, message}`; documented as the operation's `default` response.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error_response = || -> Response {
            ResponseBuilder::new()
                .description("An error: `code` repeats the HTTP status, `message` says what went wrong")
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            for operation in operations(item) {
                operation.responses.responses.entry("default".to_owned()).or_insert_with(|| error_response().into());
            }
        }
    }
}

/// The resource operations are annotated once, at project scope; the same handlers serve the stage
/// and service scopes, so their paths are copied with the extra path parameters.
struct ResourceScopes;

impl Modify for ResourceScopes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        const PROJECT_SCOPE: &str = "/api/resource-service/v1/project/{project}/";
        let project_paths: Vec<(String, utoipa::openapi::PathItem)> = openapi
            .paths
            .paths
            .iter()
            .filter(|(path, _)| path.starts_with(PROJECT_SCOPE))
            .map(|(path, item)| (path.clone(), item.clone()))
            .collect();
        let name = |name: &str, description: &str| -> Parameter {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(description))
                .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String)))
                .build()
        };
        for (path, item) in project_paths {
            let rest = &path[PROJECT_SCOPE.len()..];
            let scopes = [
                (format!("{PROJECT_SCOPE}stage/{{stage}}/{rest}"), vec![name("stage", "The stage")]),
                (
                    format!("{PROJECT_SCOPE}stage/{{stage}}/service/{{service}}/{rest}"),
                    vec![name("stage", "The stage"), name("service", "The service")],
                ),
            ];
            for (scoped_path, extra) in scopes {
                let mut scoped = item.clone();
                let scope_word = if extra.len() == 1 { "stage" } else { "service" };
                for operation in operations(&mut scoped) {
                    let parameters = operation.parameters.get_or_insert_with(Vec::new);
                    parameters.splice(1..1, extra.iter().cloned());
                    if let Some(id) = &mut operation.operation_id {
                        id.push_str(&format!("_{scope_word}"));
                    }
                    if let Some(summary) = &mut operation.summary {
                        summary.push_str(&format!(" (at {scope_word} scope)"));
                    }
                }
                openapi.paths.paths.insert(scoped_path, scoped);
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().expect("the OpenAPI document serializes"))
}

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/api/openapi.json", web::get().to(serve_document))
        .route("/api/swagger-ui", web::get().to(swagger_ui::to_index))
        .route("/api/swagger-ui/{path:.*}", web::get().to(swagger_ui::asset));
}

async fn serve_document() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(document())
}
