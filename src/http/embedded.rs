//! Answers with a file embedded in the binary (the Bridge, Swagger UI): an ETag so that a browser
//! revalidates cheaply, no caching without revalidation (an upgrade never mixes old and new files),
//! and the page's content security policy.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// `file`, stored under `name`, for `request`: 304 when the browser holds this version already.
pub fn serve(request: &HttpRequest, file: rust_embed::EmbeddedFile, name: &str, csp: &'static str) -> HttpResponse {
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let fresh = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split(',').any(|candidate| candidate.trim() == etag));
    let mut response = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp))
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
