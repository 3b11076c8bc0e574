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
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|candidate| candidate.trim() == etag));
    let mut response = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        // Revalidated every time (cheap with the ETag), so an upgrade never mixes old and new modules.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"));
    if fresh {
        return response.finish();
    }
    let mime = if name.ends_with(".js") {
        "text/javascript; charset=utf-8".to_owned()
    } else {
        file.metadata.mimetype().to_owned()
    };
    response.insert_header((header::CONTENT_TYPE, mime)).body(file.data.into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
