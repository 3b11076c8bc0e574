//! Every message the actors exchange, in one place: the actors import this module and never each
//! other's types, and hold their peers as [`Recipient`]s of these messages.

use std::sync::Arc;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use futures_util::future::Shared;
use tokio::sync::oneshot;

use super::snapshot::{ControlRecord, ExecutionRecord};
use crate::model::event::CloudEvent;
use crate::model::sequence::Execution;
use crate::store::history::Stored;

pub use crate::model::sequence::control::ControlCommand;

/// Told once an input has been applied and the resulting state is durable; dropped unsent when the
/// input was not applied.
pub type Ack = oneshot::Sender<()>;

/// What a sequence actor can be told.
#[derive(Debug, Clone)]
pub enum Command {
    SlotGranted {
        ticket: u64,
    },
    TaskEvent(Arc<CloudEvent>),
    Tick,
    Pause,
    Resume,
    Abort,
    /// End the execution errored: its steps kept failing.
    Fail(String),
}

/// An input for a sequence actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Apply {
    pub command: Command,
    pub ack: Option<Ack>,
}

impl Apply {
    pub fn new(command: Command) -> Self {
        Self { command, ack: None }
    }
}

/// A `<stage>.<sequence>.triggered` event for a project; `ack` is told once it is durably handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SequenceTriggered {
    pub event: Arc<CloudEvent>,
    pub ack: Option<Ack>,
    /// Resolves once the trigger is in the history; the new execution stores nothing before.
    pub history: Option<Shared<Stored>>,
}

/// Rebuilds a project's executions and pause flags from the store after a process restart.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restore {
    pub executions: Vec<ExecutionRecord>,
    pub control: ControlRecord,
}

/// An execution ended; with `chain`, its `triggeredOn` followers start. Answered once the followers
/// are durable.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ExecutionEnded {
    pub execution: Arc<Execution>,
    pub chain: bool,
}

/// `POST /sequence/{project}/{context}/control`.
#[derive(Message)]
#[rtype(result = "Result<(), ControlError>")]
pub struct Control {
    pub keptn_context: String,
    pub stage: Option<String>,
    pub command: ControlCommand,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no sequence with keptn context {0} in this project")]
    UnknownContext(String),
    /// The change could not be stored: another instance took the project over; retry.
    #[error("the project moved to another instance; retry")]
    Moved,
}

/// The project moved to another instance: stop without writing or publishing anything, and forget it
/// here. Its stored state stays for the new owner.
#[derive(Message, Clone, Copy)]
#[rtype(result = "()")]
pub struct Retire;

/// The project was deleted: abort what runs and forget its executions.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ProjectDeleted;

/// An execution asks for its service's slot in its stage.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlotRequest {
    pub service: String,
    pub execution: String,
    pub triggered_at: DateTime<Utc>,
    /// The request's number, echoed in the grant.
    pub ticket: u64,
    pub requester: Recipient<Apply>,
}

/// An execution gives its slot back or withdraws its request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlotRelease {
    pub service: String,
    pub execution: String,
}

/// After a restart: `execution` held `service`'s slot when it was stored and keeps it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestoreHolder {
    pub service: String,
    pub execution: String,
    pub ticket: u64,
    pub holder: Recipient<Apply>,
}

/// Where a sequence actor reports: its project (the end, for chaining) and its stage (slots).
#[derive(Clone)]
pub struct SequencePeers {
    pub project: Recipient<ExecutionEnded>,
    pub slot_requests: Recipient<SlotRequest>,
    pub slot_releases: Recipient<SlotRelease>,
}
