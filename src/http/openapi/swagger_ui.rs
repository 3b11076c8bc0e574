//! Swagger UI from the vendored `swagger-ui-dist` bundle in `src/http/swagger-ui/`, embedded at build
//! time, with a page of our own that loads `/api/openapi.json`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::http::error::ApiError;

#[derive(rust_embed::RustEmbed)]
#[folder = "src/http/swagger-ui/"]
struct Assets;

/// Swagger UI sets inline styles, so styles may be inline; scripts come from this origin only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub async fn to_index() -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, "/api/swagger-ui/")).finish()
}

pub async fn asset(request: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    let name = if path.is_empty() { "index.html" } else { path.as_str() };
    match Assets::get(name) {
        Some(file) => super::super::embedded::serve(&request, file, name, CSP),
        None => ApiError::not_found(format!("no Swagger UI file {name}")).error_response(),
    }
}
