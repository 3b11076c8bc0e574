//! A deadline for reading a request body: a client that sends its body slowly (or not at all after
//! the headers) gets 408 instead of holding a connection and a worker's attention indefinitely.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage as _;
use futures_util::{Stream, StreamExt as _};
use std::pin::Pin;

/// Message of the error a late body ends with; the error handlers turn it into 408.
pub const BODY_TIMED_OUT: &str = "request body not received in time";

/// Middleware: the request's body must arrive within `timeout` of the request's start.
pub async fn limit_body_time(
    timeout: Duration,
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let payload = request.take_payload();
    let timed = futures_util::stream::unfold(Some(payload), move |payload| async move {
        let mut payload = payload?;
        match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(Some(chunk)) => Some((chunk, Some(payload))),
            Ok(None) => None,
            // One error, then the end: the connection is not read any further.
            Err(_) => Some((Err(timed_out()), None)),
        }
    });
    let timed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(timed);
    request.set_payload(Payload::from(timed));
    next.call(request).await
}

fn timed_out() -> PayloadError {
    PayloadError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, BODY_TIMED_OUT))
}

/// Whether a payload error is this middleware's deadline.
pub fn is_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}
