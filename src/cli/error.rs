//! What can go wrong in a command, and the exit code each failure leaves.

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Auth(String),
    #[error("{message}")]
    Api { status: u16, message: String },
    #[error("{0}")]
    Io(String),
    /// A watched sequence ended without passing.
    #[error("{0}")]
    SequenceFailed(String),
    #[error("{0}")]
    WatchTimedOut(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::SequenceFailed(_) => 3,
            CliError::WatchTimedOut(_) => 4,
            _ => 1,
        }
    }
}
