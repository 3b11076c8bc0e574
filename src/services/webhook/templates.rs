//! Go `text/template` field references (`{{.data.project}}`) rendered against an event and the
//! webhook's secret values: the part of Go's template language webhook requests use. Everything else Go
//! offers is refused, so a request never carries a literal `{{if …}}`.

use serde_json::Value;
use thiserror::Error;

/// Why a template could not be rendered. Messages quote only template text, never rendered values.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TemplateError {
    #[error("template: unclosed action at line {line}")]
    Unclosed { line: usize },
    #[error("template: unclosed comment at line {line}")]
    UnclosedComment { line: usize },
    #[error("template: empty action at line {line}")]
    Empty { line: usize },
    #[error("unsupported template action: {action}")]
    Unsupported { action: String },
    #[error("template: map has no entry for key {key:?} (evaluating {path})")]
    MissingKey { key: String, path: String },
    #[error("template: can't evaluate field {key} in {found} (evaluating {path})")]
    NotAMap { key: String, found: &'static str, path: String },
}

/// Go's template whitespace, the set the trim markers remove.
pub(super) fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte].matches('\n').count() + 1
}

/// Renders Go `text/template` field references (`{{.a.b.c}}`) against `context`, which is the incoming
/// event envelope as a JSON object plus `env` (the secret values).
///
/// Supported: field paths, whitespace inside the braces, the trim markers `{{- ` and ` -}}`, and
/// comments `{{/* … */}}`. Everything else Go offers (`if`, `range`, pipes, functions, variables, `.`)
/// is an error rather than being passed through, so a webhook never sends a literal `{{if …}}`.
/// Rendering is one pass: a value containing `{{` is output as it is.
///
/// As with Keptn's `missingkey=error`, a missing key is an error. Values differ from Go where Go's
/// output is unhelpful: JSON `null` renders as the empty string (Go: `<no value>`), objects and arrays as
/// compact JSON (Go: `map[…]` / `[…]`), and integers with all their digits (Go decodes JSON numbers to
/// float64 and prints `1e+06`). Other numbers follow Go's `%v` (`92.5`, `1e-05`).
pub fn render(template: &str, context: &Value) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(template.len());
    let mut pos = 0;
    // Set by a ` -}}`: the following text loses its leading whitespace.
    let mut trim_next = false;
    loop {
        let Some(offset) = template[pos..].find("{{") else {
            let text = &template[pos..];
            out.push_str(if trim_next { text.trim_start_matches(is_go_space) } else { text });
            return Ok(out);
        };
        let open = pos + offset;
        let mut text = &template[pos..open];
        if trim_next {
            text = text.trim_start_matches(is_go_space);
        }
        let mut inner_start = open + 2;
        // Go's left trim marker is a dash followed by whitespace; `{{-3}}` would be a number.
        if template[inner_start..].starts_with('-')
            && template[inner_start + 1..].chars().next().is_some_and(is_go_space)
        {
            text = text.trim_end_matches(is_go_space);
            inner_start += 2;
        }
        out.push_str(text);

        // A comment must start right at the delimiter (after the trim marker) and runs to the first
        // `*/`, which may be followed only by the closing delimiter: Go's rules.
        if template[inner_start..].starts_with("/*") {
            let line = line_of(template, open);
            let end = template[inner_start + 2..].find("*/").ok_or(TemplateError::UnclosedComment { line })?;
            let after = inner_start + 2 + end + 2;
            let rest = &template[after..];
            if rest.starts_with("}}") {
                trim_next = false;
                pos = after + 2;
            } else if rest.chars().next().is_some_and(is_go_space) && rest[1..].starts_with("-}}") {
                trim_next = true;
                pos = after + 4;
            } else {
                return Err(TemplateError::UnclosedComment { line });
            }
            continue;
        }

        // Only field paths are supported, and they cannot contain `}}`, so the first `}}` closes the
        // action; anything that Go would parse differently (strings holding `}}`) is unsupported anyway.
        let close = inner_start
            + template[inner_start..].find("}}").ok_or(TemplateError::Unclosed { line: line_of(template, open) })?;
        let mut inner = &template[inner_start..close];
        trim_next = false;
        if let Some(before_dash) = inner.strip_suffix('-') {
            if before_dash.ends_with(is_go_space) {
                inner = before_dash;
                trim_next = true;
            }
        }
        let action = inner.trim_matches(is_go_space);
        if action.is_empty() {
            return Err(TemplateError::Empty { line: line_of(template, open) });
        }
        let Some(segments) = field_path(action) else {
            return Err(TemplateError::Unsupported { action: template[open..close + 2].to_string() });
        };
        let value = lookup(context, &segments, action)?;
        write_value(&mut out, value);
        pos = close + 2;
    }
}

/// The keys of a `.a.b.c` field chain, or `None` if `action` is anything else.
fn field_path(action: &str) -> Option<Vec<&str>> {
    let path = action.strip_prefix('.')?;
    let segments: Vec<&str> = path.split('.').collect();
    let identifier = |s: &&str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric())
    };
    // `{{ . }}` (the whole context) is deliberately not supported: it would print every secret.
    segments.iter().all(identifier).then_some(segments)
}

fn lookup<'v>(context: &'v Value, segments: &[&str], path: &str) -> Result<&'v Value, TemplateError> {
    let mut current = context;
    for key in segments {
        current = match current {
            Value::Object(map) => map
                .get(*key)
                .ok_or_else(|| TemplateError::MissingKey { key: key.to_string(), path: path.to_string() })?,
            other => {
                let found = match other {
                    Value::Null => "a nil value",
                    Value::Bool(_) => "a bool",
                    Value::Number(_) => "a number",
                    Value::String(_) => "a string",
                    Value::Array(_) => "a list",
                    Value::Object(_) => unreachable!("objects are handled above"),
                };
                return Err(TemplateError::NotAMap { key: key.to_string(), found, path: path.to_string() });
            }
        };
    }
    Ok(current)
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::String(s) => out.push_str(s),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&go_float(f));
            }
        }
        Value::Array(_) | Value::Object(_) => out.push_str(&value.to_string()),
    }
}

/// Formats a float like Go's `%v` (shortest `%g`) with one difference: Go already writes `1e+06` for a
/// million, Keelson writes integral values in full up to 1e21 (as it does integers, see [`render`]).
/// Below 1e-4 both use the exponent form (`1e-05`).
fn go_float(f: f64) -> String {
    let magnitude = f.abs();
    if f.is_finite() && magnitude != 0.0 && !(1e-4..1e21).contains(&magnitude) {
        // Rust writes `1e-5`; Go writes `1e-05` (sign always, at least two exponent digits).
        let formatted = format!("{f:e}");
        let (mantissa, exponent) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exponent),
        };
        format!("{mantissa}e{sign}{digits:0>2}")
    } else {
        // Shortest round-trip digits, no `.0` for integral values: Go's `%v` in this range.
        f.to_string()
    }
}

#[cfg(test)]
#[path = "templates_tests.rs"]
mod tests;
