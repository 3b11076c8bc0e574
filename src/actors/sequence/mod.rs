//! The actor hosting one sequence execution.
//!
//! Each step: apply the input to the pure state machine, store the new state together with the events
//! it emitted (the outbox), acknowledge the input, then publish the events. Events leave the outbox once
//! the history has them; a crash before that publishes them again, with the same ids, on recovery.
//!
//! `actor` holds the actor and its step; `persistence` the durable part of a step; `waiting` slots,
//! timers and the open task; `outbox` the unconfirmed events.

mod actor;
mod outbox;
mod persistence;
mod waiting;

pub use actor::{SequenceActor, Start, MAILBOX_CAPACITY};
