//! `GET /health`: the server answers only after start-up finished, so answering means ready.

use actix_web::HttpResponse;

#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct Health {
    status: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "operations", operation_id = "health",
    responses((status = 200, description = "The server is up and serving", body = Health)))]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "OK" })
}
