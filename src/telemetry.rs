//! Traces: spans per HTTP request, per incoming event and per sequence step, exported over OTLP/HTTP
//! when `otlp_endpoint` is set. Off, no layer listens to [`TARGET`] and the spans cost an interest check.
//!
//! Every span about a Keptn context joins the trace whose id *is* the context (a UUID is 128 bits, a
//! trace id too), so a sequence's steps, its events and its follow-up stages share one trace without
//! passing a trace context through the actors, and an operator finds the trace from the context.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The target every trace span uses: what the exporter layer listens to, and what logs leave out.
pub const TARGET: &str = "keelson_trace";

/// The trace id of a Keptn context (its UUID's 128 bits); `None` for a context that is no UUID.
pub fn trace_id(keptn_context: &str) -> Option<TraceId> {
    let uuid = uuid::Uuid::parse_str(keptn_context).ok()?;
    Some(TraceId::from_bytes(*uuid.as_bytes())).filter(|id| *id != TraceId::INVALID)
}

/// Puts `span` into the trace of `keptn_context` (nothing when tracing is off or the span disabled).
pub fn join_context(span: &tracing::Span, keptn_context: &str) {
    if span.is_disabled() {
        return;
    }
    let Some(trace_id) = trace_id(keptn_context) else { return };
    // The context itself stands as the remote parent: its span id is derived from the trace id, so
    // every span of the context hangs off the same root.
    let root = SpanId::from_bytes(trace_id.to_bytes()[8..].try_into().expect("eight bytes"));
    let parent = SpanContext::new(trace_id, root, TraceFlags::SAMPLED, true, TraceState::default());
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_keptn_context_is_its_trace_id() {
        let id = super::trace_id("0f8fad5b-d9cb-469f-a165-70867728950e").unwrap();
        assert_eq!(id.to_string(), "0f8fad5bd9cb469fa16570867728950e");
        assert_eq!(super::trace_id("not-a-uuid"), None);
        assert_eq!(super::trace_id("00000000-0000-0000-0000-000000000000"), None);
    }
}
