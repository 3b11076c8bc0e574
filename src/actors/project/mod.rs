//! The actor of one project: it starts sequence executions, chains them through `triggeredOn`, and
//! applies pause/resume/abort to a Keptn context. What to start, what to chain and which flags a
//! command leaves are decided by [`crate::model`]; this actor performs those decisions.
//!
//! `actor` holds the actor and its sequence handling; `control` pause, resume and abort; `lifecycle`
//! restoring, retention and deletion.

mod actor;
mod control;
mod lifecycle;

pub use actor::{ProjectActor, MAILBOX_CAPACITY};
