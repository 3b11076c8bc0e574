//! Pure domain types and rules: names, shipyard files, CloudEvents, project views and paging.
//!
//! Nothing in this module performs I/O or reads a clock; callers pass time in.

pub mod chaining;
pub mod clock;
pub mod duration;
pub mod evaluation_window;
pub mod event;
pub mod event_type;
pub mod host_policy;
pub mod incoming;
pub mod names;
pub mod paging;
pub mod payload;
pub mod placement;
pub mod project;
pub mod redaction;
pub mod remediation;
pub mod sequence;
pub mod shipyard;
pub mod slots;
pub mod text;
pub mod uniform;
pub mod verdict;
