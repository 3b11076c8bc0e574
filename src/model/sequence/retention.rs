//! How long ended executions are kept: a Keptn context is forgotten once every execution in it has
//! ended and the last one ended longer ago than the retention.

use chrono::{DateTime, Utc};

use super::Execution;
use crate::model::duration::later;

/// Whether the context made of `executions` may be forgotten at `now`.
pub fn context_expired<'a>(
    executions: impl IntoIterator<Item = &'a Execution>,
    now: DateTime<Utc>,
    retention: std::time::Duration,
) -> bool {
    let mut last_end: Option<DateTime<Utc>> = None;
    for execution in executions {
        // A running execution, or one that ended without a recorded end, keeps the whole context.
        let Some(outcome) = execution.outcome.as_ref().filter(|_| execution.phase.is_terminal()) else {
            return false;
        };
        last_end = Some(last_end.map_or(outcome.ended_at, |end| end.max(outcome.ended_at)));
    }
    last_end.is_some_and(|end| later(end, retention) <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::sequence::{Outcome, Phase};
    use std::time::Duration;

    fn execution(phase: Phase, ended_minutes_ago: Option<i64>, now: DateTime<Utc>) -> Execution {
        let mut execution = crate::model::sequence::tests::sample_execution();
        execution.phase = phase;
        execution.outcome = ended_minutes_ago.map(|minutes| Outcome {
            status: crate::model::verdict::TaskStatus::Succeeded,
            result: crate::model::verdict::TaskResult::Pass,
            message: None,
            ended_at: now - chrono::Duration::minutes(minutes),
        });
        execution
    }

    #[test]
    fn a_context_expires_when_all_of_it_ended_long_enough_ago() {
        let now = Utc::now();
        let hour = Duration::from_secs(3600);
        let old = execution(Phase::Finished, Some(120), now);
        let recent = execution(Phase::Finished, Some(10), now);
        let running = execution(Phase::Running, None, now);
        let timed_out = execution(Phase::TimedOut, Some(90), now);
        assert!(context_expired([&old], now, hour));
        assert!(context_expired([&old, &timed_out], now, hour));
        assert!(!context_expired([&old, &recent], now, hour), "the newest end counts");
        assert!(!context_expired([&old, &running], now, hour), "a running execution keeps its context");
        assert!(!context_expired(std::iter::empty::<&Execution>(), now, hour));
        assert!(context_expired([&recent], now, Duration::from_secs(600)), "exactly the retention ago");
    }
}
