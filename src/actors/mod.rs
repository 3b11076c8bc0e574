//! The actor shell around the pure model: a project actor per project, a stage actor per project stage
//! and a sequence actor per running sequence execution, fed by the [`router::EventRouter`].
//!
//! Actors decide no domain question: they hand inputs to the pure rules in [`crate::model::sequence`]
//! (starting, stepping and controlling executions) and [`crate::model::chaining`], and perform the
//! effects those return. Each is started under an actix `Supervisor`; a panic while applying an input
//! is caught at the actor boundary, the state from before the input is restored, and the actor restarts
//! from it, so one bad input affects one execution only.
//!
//! Imports run one way: `handle` → `router` → `directory` → `project` → `sequence`, `stage` →
//! `protocol`, `read_model`, `snapshot`. Actors hold their peers as `Recipient`s of the messages in
//! [`protocol`], never as each other's concrete addresses.

pub mod directory;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod handle;
pub mod labels;
pub mod lanes;
pub mod project;
pub mod protocol;
pub mod read_model;
pub mod recovery;
pub mod router;
pub mod runtime;
pub mod sequence;
pub mod snapshot;
pub mod stage;

pub use handle::ControlHandle;
pub use read_model::ReadModel;
pub use runtime::Runtime;
