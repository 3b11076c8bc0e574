//! The Bridge: Keelson's web UI, plain ES modules, HTML and CSS from `bridge/`, embedded in the binary.
//!
//! `/` redirects to `/bridge/`; a path under `/bridge/` that is not a file gets `index.html`, so every
//! screen has a deep link. The UI talks only to the public API, with the token the user typed (kept in
//! the browser tab's session storage). Pages carry a strict content security policy: scripts, styles
//! and API calls from this origin only.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

#[derive(rust_embed::RustEmbed)]
#[folder = "bridge/"]
struct Assets;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(to_bridge))
        .route("/bridge", web::get().to(to_bridge))
        .route("/bridge/{path:.*}", web::get().to(asset));
}

async fn to_bridge() -> HttpResponse {
    HttpResponse::Found().insert_header((header::LOCATION, "/bridge/")).finish()
}

async fn asset(request: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    // Anything that is not a file is a screen of the single-page app.
    let (file, name) = match Assets::get(&path).filter(|_| !path.is_empty()) {
        Some(file) => (file, path.as_str()),
        None => match Assets::get("index.html") {
            Some(file) => (file, "index.html"),
            None => return HttpResponse::NotFound().finish(),
        },
    };
    super::embedded::serve(&request, file, name, CSP)
}
