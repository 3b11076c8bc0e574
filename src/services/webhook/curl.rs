//! curl syntax translated into an [`HttpRequest`]: the `v1alpha1` command lines and the `options` of
//! `v1beta1` requests.
//!
//! Keptn's webhook-service renders a curl command line and runs curl. Keelson sends requests itself, so
//! curl syntax is only *translated*; nothing here executes a process, touches the network or reads a
//! file. The flags Keelson understands are the ones that describe a request (method, headers, body,
//! URL, timeouts, TLS verification); flags that would make curl read or write local files are refused
//! by name so users learn why their webhook stopped working, and every other flag is refused too,
//! because silently ignoring a flag would send a request the user did not ask for.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::http_request::{check_method, checked_header, is_token, parse_url, HttpRequest, RequestError};
use super::templates::render;

/// Stands in for an argument in error messages when it came out of a template (and so may hold a secret).
pub(super) const TEMPLATED: &str = "<templated value>";

/// The request a raw `curl …` command line (`v1alpha1`) describes, rendered as a whole and then split
/// into words, as Keptn does.
pub(super) fn prepare_curl(command: &str, context: &Value) -> Result<HttpRequest, RequestError> {
    let rendered =
        render(command, context).map_err(|source| RequestError::Template { what: "curl command".into(), source })?;
    let words = shell_words::split(&rendered)
        .map_err(|e| RequestError::Tokenize { what: "curl command", reason: e.to_string() })?;
    match words.first() {
        Some(first) if first == "curl" => {}
        _ => return Err(RequestError::NotCurl),
    }
    let mut flags = CurlFlags::default();
    flags.parse(&words[1..], command, Place::Command)?;
    let url_arg = flags.url.take().ok_or(RequestError::NoUrl)?;
    let url = parse_url(&url_arg, shown(&url_arg, command))?;
    // curl's rule: a body turns the default GET into a POST.
    let method = match flags.method.take() {
        Some(m) => m,
        None if flags.data.is_some() => "POST".to_string(),
        None => "GET".to_string(),
    };
    let headers = std::mem::take(&mut flags.headers);
    let body = flags.data.take();
    Ok(finish(method, url, headers, body, flags))
}

/// The request with curl's defaults applied and the request-level flags (timeouts, TLS) carried over.
pub(super) fn finish(
    method: String,
    url: Url,
    mut headers: Vec<(String, String)>,
    body: Option<String>,
    flags: CurlFlags,
) -> HttpRequest {
    // curl labels `--data` bodies as form data unless told otherwise; receivers that look at the
    // content type see the same request Keptn would have sent.
    if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        headers.push(("Content-Type".into(), "application/x-www-form-urlencoded".into()));
    }
    HttpRequest {
        method,
        url,
        headers,
        body,
        max_time: flags.max_time,
        connect_timeout: flags.connect_timeout,
        insecure: flags.insecure,
    }
}

/// How an argument appears in an error message: as written if the untemplated `source` contains it
/// literally (so it holds nothing a template put there), otherwise as a placeholder.
fn shown(argument: &str, source: &str) -> String {
    if !argument.is_empty() && source.contains(argument) {
        format!("{argument:?}")
    } else {
        TEMPLATED.to_string()
    }
}

/// Where curl flags are being read: a whole v1alpha1 command, or a v1beta1 `options` field (where the
/// request itself is already described by the other fields).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    Command,
    Options,
}

/// The flags Keelson understands.
#[derive(Clone, Copy)]
enum Flag {
    Method,
    Header,
    /// `-d`, `--data`, `--data-binary`: `@file` reads a file and is refused.
    Data,
    /// `--data-raw`: never reads files, so `@` is literal.
    DataRaw,
    Url,
    MaxTime,
    ConnectTimeout,
    Insecure,
    /// Flags that only change curl's console output or how it reports failures; Keelson always treats
    /// HTTP errors as failures (Keptn appends `--fail-with-body`).
    NoOp,
}

impl Flag {
    fn takes_value(self) -> bool {
        !matches!(self, Flag::Insecure | Flag::NoOp)
    }
}

fn short_flag(c: char) -> Option<Flag> {
    Some(match c {
        'X' => Flag::Method,
        'H' => Flag::Header,
        'd' => Flag::Data,
        'm' => Flag::MaxTime,
        'k' => Flag::Insecure,
        's' | 'S' | 'f' => Flag::NoOp,
        _ => return None,
    })
}

fn long_flag(name: &str) -> Option<Flag> {
    Some(match name {
        "--request" => Flag::Method,
        "--header" => Flag::Header,
        "--data" | "--data-binary" => Flag::Data,
        "--data-raw" => Flag::DataRaw,
        "--url" => Flag::Url,
        "--max-time" => Flag::MaxTime,
        "--connect-timeout" => Flag::ConnectTimeout,
        "--insecure" => Flag::Insecure,
        "--silent" | "--show-error" | "--fail" | "--fail-with-body" => Flag::NoOp,
        _ => return None,
    })
}

/// Flags refused by name because curl would read or write local files with them. Any argument starting
/// with the long forms is refused (`--output-dir`, `--form-string`, `--config=x`, …).
const REFUSED_LONG: &[(&str, &str)] = &[
    ("--output", "it writes the response to a local file"),
    ("--form", "multipart forms can read local files"),
    ("--upload-file", "it uploads a local file"),
    ("--config", "it reads options from a local file"),
];

fn refused_short(c: char) -> Option<&'static str> {
    match c {
        'o' => Some(REFUSED_LONG[0].1),
        'F' => Some(REFUSED_LONG[1].1),
        'T' => Some(REFUSED_LONG[2].1),
        'K' => Some(REFUSED_LONG[3].1),
        _ => None,
    }
}

#[derive(Default)]
pub(super) struct CurlFlags {
    method: Option<String>,
    headers: Vec<(String, String)>,
    data: Option<String>,
    url: Option<String>,
    max_time: Option<Duration>,
    connect_timeout: Option<Duration>,
    insecure: bool,
}

impl CurlFlags {
    /// Reads `args` (the words after `curl`, or the words of `options`). `source` is the untemplated
    /// text they came from, used only to decide what error messages may quote.
    pub(super) fn parse(&mut self, args: &[String], source: &str, place: Place) -> Result<(), RequestError> {
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            i += 1;
            if arg.len() > 2 && arg.starts_with("--") {
                let long = arg.as_str();
                if let Some((prefix, reason)) = REFUSED_LONG.iter().find(|(p, _)| long.starts_with(p)) {
                    return Err(RequestError::RefusedOption { flag: prefix.to_string(), reason });
                }
                let (name, inline) = match long.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (long, None),
                };
                let flag = long_flag(name).ok_or_else(|| RequestError::UnsupportedOption(shown_flag(name, source)))?;
                let value = if flag.takes_value() {
                    match inline {
                        Some(v) => Some(v.to_string()),
                        None => {
                            let v = args.get(i).ok_or_else(|| RequestError::MissingValue(name.to_string()))?;
                            i += 1;
                            Some(v.clone())
                        }
                    }
                } else if let Some(v) = inline {
                    return Err(RequestError::InvalidOptionValue {
                        flag: name.to_string(),
                        value: shown(v, source),
                        reason: "this option takes no value",
                    });
                } else {
                    None
                };
                self.apply(flag, name, value, source, place)?;
            } else if arg.len() > 1 && arg.starts_with('-') {
                // A cluster of short flags (`-sSk`); a flag taking a value takes the rest of the word
                // (`-XPOST`) or the next word, as in curl.
                let cluster = &arg[1..];
                for (at, c) in cluster.char_indices() {
                    let name = format!("-{c}");
                    if let Some(reason) = refused_short(c) {
                        return Err(RequestError::RefusedOption { flag: name, reason });
                    }
                    let flag =
                        short_flag(c).ok_or_else(|| RequestError::UnsupportedOption(shown_flag(&name, source)))?;
                    if flag.takes_value() {
                        let rest = &cluster[at + c.len_utf8()..];
                        let value = if rest.is_empty() {
                            let v = args.get(i).ok_or_else(|| RequestError::MissingValue(name.clone()))?;
                            i += 1;
                            v.clone()
                        } else {
                            rest.to_string()
                        };
                        self.apply(flag, &name, Some(value), source, place)?;
                        break;
                    }
                    self.apply(flag, &name, None, source, place)?;
                }
            } else {
                if place == Place::Options {
                    return Err(RequestError::ArgumentInOptions(shown(arg, source)));
                }
                self.set_url(arg, source)?;
            }
        }
        Ok(())
    }

    fn set_url(&mut self, url: &str, source: &str) -> Result<(), RequestError> {
        if self.url.is_some() {
            return Err(RequestError::SecondUrl(shown(url, source)));
        }
        self.url = Some(url.to_string());
        Ok(())
    }

    fn apply(
        &mut self,
        flag: Flag,
        name: &str,
        value: Option<String>,
        source: &str,
        place: Place,
    ) -> Result<(), RequestError> {
        if place == Place::Options {
            let field = match flag {
                Flag::Method => Some("method"),
                Flag::Header => Some("headers"),
                Flag::Data | Flag::DataRaw => Some("payload"),
                Flag::Url => Some("url"),
                _ => None,
            };
            if let Some(field) = field {
                return Err(RequestError::OptionNotInOptions { flag: name.to_string(), field });
            }
        }
        let value = value.unwrap_or_default();
        match flag {
            Flag::Method => {
                check_method(&value, || shown(&value, source))?;
                self.method = Some(value);
            }
            Flag::Header => {
                let display = || shown(&value, source);
                let header = match value.split_once(':') {
                    Some((k, v)) => checked_header(k.trim(), v, display)?,
                    // curl's way of sending a header with an empty value: `-H 'Name;'`.
                    None => match value.trim().strip_suffix(';') {
                        Some(k) if is_token(k.trim()) => Some((k.trim().to_string(), String::new())),
                        _ => {
                            return Err(RequestError::InvalidHeader {
                                header: display(),
                                reason: "curl headers are written as 'Name: value'",
                            })
                        }
                    },
                };
                self.headers.extend(header);
            }
            Flag::Data | Flag::DataRaw => {
                if matches!(flag, Flag::Data) && value.starts_with('@') {
                    return Err(RequestError::RefusedOption {
                        flag: name.to_string(),
                        reason: "a value starting with '@' reads a local file (use --data-raw for a literal '@')",
                    });
                }
                // Repeated data flags are joined with '&', as curl does.
                self.data = Some(match self.data.take() {
                    Some(existing) => format!("{existing}&{value}"),
                    None => value,
                });
            }
            Flag::Url => self.set_url(&value, source)?,
            Flag::MaxTime => self.max_time = seconds(name, &value, source)?,
            Flag::ConnectTimeout => self.connect_timeout = seconds(name, &value, source)?,
            Flag::Insecure => self.insecure = true,
            Flag::NoOp => {}
        }
        Ok(())
    }
}

fn shown_flag(name: &str, source: &str) -> String {
    if source.contains(name) {
        name.to_string()
    } else {
        TEMPLATED.to_string()
    }
}

/// curl's fractional seconds. Zero means "no limit" in curl, so it maps to `None`.
fn seconds(flag: &str, value: &str, source: &str) -> Result<Option<Duration>, RequestError> {
    let invalid =
        |reason| RequestError::InvalidOptionValue { flag: flag.to_string(), value: shown(value, source), reason };
    let secs: f64 = value.trim().parse().map_err(|_| invalid("expected a number of seconds"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(invalid("expected a non-negative number of seconds"));
    }
    if secs == 0.0 {
        return Ok(None);
    }
    Duration::try_from_secs_f64(secs).map(Some).map_err(|_| invalid("the number of seconds is too large"))
}

#[cfg(test)]
#[path = "curl_tests.rs"]
mod tests;
