//! A webhook request description turned into the HTTP request the service sends: templates rendered
//! (each part on its own, for structured requests), then the method, URL and headers checked.
//!
//! Everything that can end up in a `.finished` event (error messages) is built from the *untemplated*
//! configuration text, because rendered text may carry secret values from `envFrom`.

use serde_json::Value;

use super::config::RequestSpec;
use super::curl::{finish, prepare_curl, CurlFlags, Place};
use super::http_request::{check_method, checked_header, parse_url};
pub use super::http_request::{HttpRequest, RequestError, ALLOWED_METHODS};
use super::templates::render;

/// Builds the request a [`RequestSpec`] describes, rendering its templates against `context`.
///
/// Structured requests render the URL, each header name and value and the payload separately, so a
/// templated value can never add curl flags, whatever quotes it contains. Their `options` are split into
/// words before rendering, for the same reason. Raw curl commands are rendered as a whole and then split
/// into words, as Keptn does; the flag parsing of [`super::curl`] still refuses anything that would read
/// or write files. Method must be one of [`ALLOWED_METHODS`]; the URL must be http or https.
pub fn prepare(spec: &RequestSpec, context: &Value) -> Result<HttpRequest, RequestError> {
    match spec {
        RequestSpec::Structured { url, method, headers, payload, options } => {
            prepare_structured(url, method, headers, payload.as_deref(), options.as_deref(), context)
        }
        RequestSpec::Curl(command) => prepare_curl(command, context),
    }
}

fn prepare_structured(
    url: &str,
    method: &str,
    headers: &[(String, String)],
    payload: Option<&str>,
    options: Option<&str>,
    context: &Value,
) -> Result<HttpRequest, RequestError> {
    check_method(method, || format!("{method:?}"))?;
    let what_url = format!("URL {url:?}");
    let rendered_url =
        render(url, context).map_err(|source| RequestError::Template { what: what_url.clone(), source })?;
    let url = parse_url(&rendered_url, format!("{url:?}"))?;

    let mut out_headers = Vec::with_capacity(headers.len() + 1);
    for (key, value) in headers {
        let what = format!("header {key:?}");
        let name =
            render(key, context).map_err(|source| RequestError::Template { what: format!("{what} name"), source })?;
        let value = render(value, context)
            .map_err(|source| RequestError::Template { what: format!("{what} value"), source })?;
        if let Some(header) = checked_header(name.trim(), &value, || format!("{key:?}"))? {
            out_headers.push(header);
        }
    }

    let body = payload
        .map(|p| render(p, context))
        .transpose()
        .map_err(|source| RequestError::Template { what: "payload".into(), source })?;

    let mut flags = CurlFlags::default();
    if let Some(options) = options {
        let words = shell_words::split(options)
            .map_err(|e| RequestError::Tokenize { what: "options", reason: e.to_string() })?;
        let args = words
            .iter()
            .map(|word| {
                render(word, context)
                    .map_err(|source| RequestError::Template { what: format!("option {word:?}"), source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        flags.parse(&args, options, Place::Options)?;
    }

    Ok(finish(method.to_string(), url, out_headers, body, flags))
}

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;
