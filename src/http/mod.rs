//! The HTTP surface on one port, in Keptn's gateway layout: `/api/v1`, `/api/controlPlane/v1`,
//! `/api/resource-service/v1`, `/api/mongodb-datastore`, `/api/secrets/v1`, plus `/health` and `/metrics`. Every `/api/*` route needs `x-token`.

pub mod api_v1;
pub mod auth;
pub mod body_timeout;
pub mod bridge;
pub mod cluster;
pub mod control_plane;
pub mod datastore;
pub mod embedded;
pub mod error;
pub mod events;
pub mod health;
pub mod import;
pub mod metrics;
pub mod openapi;
pub mod params;
pub mod resources;
pub mod schemas;
pub mod secrets;
pub mod sequences;
pub mod state;
pub mod token;
pub mod uniform;

use actix_web::middleware::{from_fn, NormalizePath, TrailingSlash};
use actix_web::web;

pub use state::AppState;

/// Registers every route on an actix `App`.
pub fn configure(state: web::Data<AppState>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |config: &mut web::ServiceConfig| {
        let body_limit = state.max_request_body_bytes;
        config
            .app_data(state)
            // Keptn's gin services read JSON whatever the content type says; so do we.
            .app_data(
                web::JsonConfig::default()
                    .limit(body_limit)
                    .content_type_required(false)
                    .error_handler(error::json_error),
            )
            .app_data(web::PayloadConfig::default().limit(body_limit))
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .route("/health", web::get().to(health::health))
            .configure(bridge::routes)
            .route("/metrics", web::get().to(metrics::render))
            // Public, so registered before the token-checked `/api` scope.
            .configure(openapi::routes)
            .service(
                web::scope("/api")
                    // Registered first, so it runs after the token check: only authorised requests
                    // are proxied to other members.
                    .wrap(from_fn(cluster::route_to_owner))
                    .wrap(from_fn(auth::require_token))
                    .route("/v1/auth", web::post().to(auth::auth))
                    .route("/v1/auth", web::get().to(auth::auth_get))
                    .route("/v1/metadata", web::get().to(api_v1::metadata))
                    .route("/v1/event", web::post().to(events::post_event))
                    .route("/v1/cluster", web::get().to(cluster::status))
                    .configure(import::routes)
                    .route("/internal/v1/open-tasks/{event_type}", web::get().to(cluster::open_tasks))
                    .configure(fault_routes)
                    .service(
                        web::scope("/controlPlane/v1")
                            .configure(control_plane::routes)
                            .configure(sequences::routes)
                            .configure(uniform::routes),
                    )
                    .service(web::scope("/resource-service/v1").configure(resources::routes))
                    .service(web::scope("/mongodb-datastore").configure(datastore::routes))
                    .service(web::scope("/secrets/v1").configure(secrets::routes)),
            )
            .default_service(web::to(error::not_found));
    }
}

/// Fault injection for the test suite's process tests; absent from normal builds.
fn fault_routes(config: &mut web::ServiceConfig) {
    #[cfg(feature = "fault-injection")]
    config.route("/internal/v1/fault", web::post().to(cluster::fault));
    #[cfg(not(feature = "fault-injection"))]
    let _ = config;
}

/// Builds the complete actix `App` with middleware.
pub fn app(
    state: web::Data<AppState>,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_timeout = state.request_body_timeout;
    actix_web::App::new()
        .configure(configure(state))
        .wrap(from_fn(move |request, next| body_timeout::limit_body_time(body_timeout, request, next)))
        .wrap(from_fn(metrics::track_requests))
        // Keptn's gateway merges duplicate slashes (go-utils sends `/project/p//resource`).
        .wrap(NormalizePath::new(TrailingSlash::MergeOnly))
}
