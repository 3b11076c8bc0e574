//! A deadline for reading a request body: a client that sends its body slowly (or not at all after
//! the headers) gets 408 instead of holding a connection and a worker's attention indefinitely.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::HttpMessage as _;
use futures_util::{Stream, StreamExt as _};

/// Message of the error a late body ends with; the error handlers turn it into 408.
pub const BODY_TIMED_OUT: &str = "request body not received in time";

/// Middleware: the request's body must arrive within `timeout` of the request's start. A request
/// whose body was late is answered with `Connection: close`, and its unread body is kept until the
/// answer is sent: actix-web then closes the connection instead of draining the rest of the body, which
/// a slow client could make last for ever.
pub async fn limit_body_time(
    timeout: Duration,
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let abandoned: Rc<RefCell<Option<Payload>>> = Rc::default();
    let payload = request.take_payload();
    let timed =
        futures_util::stream::unfold((Some(payload), Rc::clone(&abandoned)), move |(payload, abandoned)| async move {
            let mut payload = payload?;
            match tokio::time::timeout_at(deadline, payload.next()).await {
                Ok(Some(chunk)) => Some((chunk, (Some(payload), abandoned))),
                Ok(None) => None,
                // One error, then the end.
                Err(_) => {
                    *abandoned.borrow_mut() = Some(payload);
                    Some((Err(timed_out()), (None, abandoned)))
                }
            }
        })
        .fuse();
    let timed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(timed);
    request.set_payload(Payload::from(timed));
    let mut response = next.call(request).await?;
    let unread = abandoned.borrow_mut().take();
    if unread.is_some() {
        response.response_mut().head_mut().set_connection_type(ConnectionType::Close);
    }
    Ok(response.map_body(|_, body| HoldingUnread { body: Box::pin(body), _unread: unread }))
}

/// An answer's body, holding the rest of a late request body until the answer is sent (the server
/// checks whether the request body is still wanted when the answer's body ends).
struct HoldingUnread<B> {
    body: Pin<Box<B>>,
    _unread: Option<Payload>,
}

impl<B: MessageBody> MessageBody for HoldingUnread<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.get_mut().body.as_mut().poll_next(cx)
    }
}

fn timed_out() -> PayloadError {
    PayloadError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, BODY_TIMED_OUT))
}

/// Whether a payload error is this middleware's deadline.
pub fn is_timeout(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
}
