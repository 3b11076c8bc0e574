//! The request a webhook sends, and the checks every way of describing one (structured or curl)
//! passes: allowed methods, http(s) URLs, header names and values.
//!
//! Error messages are built from the *untemplated* configuration text, because rendered text may carry
//! secret values from `envFrom`.

use std::fmt;
use std::time::Duration;

use thiserror::Error;
use url::Url;

use super::templates::{is_go_space, TemplateError};

/// HTTP methods a webhook may use. Keptn's UI offers GET, HEAD, POST and PUT; PATCH and DELETE are
/// added because they are ordinary API verbs and carry no risk the others do not.
pub const ALLOWED_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// A request ready to send, built from a [`RequestSpec`] after templating.
///
/// Its `Debug` output leaves out header values, the body and everything of the URL but scheme, host and
/// port, since those usually carry secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: Url,
    /// In order; a body without a `Content-Type` header gets curl's `application/x-www-form-urlencoded`.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// curl's `--max-time`: a limit on the whole exchange. `None` means no limit was asked for.
    pub max_time: Option<Duration>,
    /// curl's `--connect-timeout`.
    pub connect_timeout: Option<Duration>,
    /// curl's `--insecure`: skip TLS certificate verification.
    pub insecure: bool,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("scheme", &self.url.scheme())
            .field("host", &self.url.host_str())
            .field("port", &self.url.port_or_known_default())
            .field("header_names", &header_names)
            .field("body_len", &self.body.as_ref().map(String::len))
            .field("max_time", &self.max_time)
            .field("connect_timeout", &self.connect_timeout)
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Why a request could not be prepared. Messages quote untemplated configuration text only; a value
/// that came out of a template is shown as `<templated value>`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RequestError {
    #[error("could not render the {what}: {source}")]
    Template {
        what: String,
        #[source]
        source: TemplateError,
    },
    #[error("could not split the {what} into words: {reason}")]
    Tokenize { what: &'static str, reason: String },
    #[error("not a curl command: the first word must be `curl`")]
    NotCurl,
    #[error("method {0} is not allowed; use one of GET, HEAD, POST, PUT, PATCH, DELETE (uppercase)")]
    Method(String),
    #[error("curl option {flag} is refused: {reason}")]
    RefusedOption { flag: String, reason: &'static str },
    #[error("unsupported curl option {0}")]
    UnsupportedOption(String),
    #[error("curl option {flag} cannot be used in `options`; use the request's {field} field instead")]
    OptionNotInOptions { flag: String, field: &'static str },
    #[error("curl option {0} needs a value")]
    MissingValue(String),
    #[error("invalid value {value} for curl option {flag}: {reason}")]
    InvalidOptionValue { flag: String, value: String, reason: &'static str },
    #[error("unexpected argument {0} in `options`: the URL belongs in the request's url field")]
    ArgumentInOptions(String),
    #[error("the curl command names more than one URL ({0}); a webhook request sends to one URL")]
    SecondUrl(String),
    #[error("the curl command names no URL")]
    NoUrl,
    #[error("invalid request URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid header {header}: {reason}")]
    InvalidHeader { header: String, reason: &'static str },
}

pub(super) fn check_method(method: &str, display: impl FnOnce() -> String) -> Result<(), RequestError> {
    if ALLOWED_METHODS.contains(&method) {
        Ok(())
    } else {
        Err(RequestError::Method(display()))
    }
}

pub(super) fn parse_url(rendered: &str, display: String) -> Result<Url, RequestError> {
    let url = Url::parse(rendered.trim())
        .map_err(|e| RequestError::InvalidUrl { url: display.clone(), reason: e.to_string() })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RequestError::InvalidUrl { url: display, reason: "only http and https URLs are allowed".into() });
    }
    if url.host().is_none() {
        return Err(RequestError::InvalidUrl { url: display, reason: "the URL has no host".into() });
    }
    Ok(url)
}

/// RFC 9110 token characters, the only ones a header name may hold.
pub(super) fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Validates one header. An empty value drops the header, as curl does for `-H 'Name:'` (and so for
/// Keptn's `--header 'Name: <empty>'`). Control characters are refused: they would let a templated value
/// start a new header line.
pub(super) fn checked_header(
    name: &str,
    value: &str,
    display: impl Fn() -> String,
) -> Result<Option<(String, String)>, RequestError> {
    if !is_token(name) {
        return Err(RequestError::InvalidHeader {
            header: display(),
            reason: "the name must be a non-empty HTTP token (letters, digits and !#$%&'*+-.^_`|~)",
        });
    }
    let value = value.trim_matches(is_go_space);
    if value.chars().any(|c| (c.is_control() && c != '\t') || c == '\u{7f}') {
        return Err(RequestError::InvalidHeader { header: display(), reason: "the value contains control characters" });
    }
    Ok((!value.is_empty()).then(|| (name.to_string(), value.to_string())))
}
