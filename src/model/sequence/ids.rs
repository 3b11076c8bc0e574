//! Every id the control plane derives for a sequence, in one place.
//!
//! Ids are UUID v5 values, so a redelivered trigger, a replayed input or a restart after a crash derives
//! exactly the ids it derived before: the history inserts by id once, executors dedupe by id, and a
//! follower started twice maps to one execution.

use uuid::Uuid;

/// Namespace of execution ids.
const EXECUTION_NAMESPACE: Uuid = Uuid::from_u128(0x6b65_656c_736f_6e00_0000_0000_0000_0001);

/// The execution a sequence trigger starts: derived from its project and the trigger's event id.
pub fn execution_id(project: &str, trigger_id: &str) -> String {
    Uuid::new_v5(&EXECUTION_NAMESPACE, format!("{project}/{trigger_id}").as_bytes()).to_string()
}

/// The id of the event `execution_id` emits for `purpose` (a task's `.triggered`, the sequence's
/// `.finished`, a chained follower's trigger).
pub fn event_id(execution_id: &str, purpose: &str) -> String {
    // Execution ids are UUIDs; anything else (never written by Keelson) still maps to a stable namespace.
    let namespace =
        Uuid::parse_str(execution_id).unwrap_or_else(|_| Uuid::new_v5(&EXECUTION_NAMESPACE, execution_id.as_bytes()));
    Uuid::new_v5(&namespace, purpose.as_bytes()).to_string()
}

/// The `.triggered` event of task number `index`.
pub fn task_triggered_id(execution_id: &str, index: usize) -> String {
    event_id(execution_id, &format!("task/{index}/triggered"))
}

/// The sequence's `.finished` event, also the one answering a trigger that cannot start.
pub fn sequence_finished_id(execution_id: &str) -> String {
    event_id(execution_id, "finished")
}

/// The trigger of the follower `<stage>.<sequence>` that `execution_id` starts through `triggeredOn`.
pub fn chained_trigger_id(execution_id: &str, stage: &str, sequence: &str) -> String {
    event_id(execution_id, &format!("chain/{stage}/{sequence}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct() {
        // Golden values: a change here would start stored sequences twice after an upgrade.
        let execution = execution_id("sockshop", "6f0a8ea0-5b6e-4f3a-9d0c-0e5c3c1a2b3c");
        assert_eq!(execution, "d76b4784-6a28-55f5-b097-dfbb1050ed42");
        assert_eq!(task_triggered_id(&execution, 0), "a187af78-062e-5a1c-b67e-f05e5daec7a4");
        assert_ne!(execution, execution_id("other", "6f0a8ea0-5b6e-4f3a-9d0c-0e5c3c1a2b3c"));
        let namespace = Uuid::parse_str(&execution).unwrap();
        let cases = [
            (task_triggered_id(&execution, 0), "task/0/triggered"),
            (task_triggered_id(&execution, 7), "task/7/triggered"),
            (sequence_finished_id(&execution), "finished"),
            (chained_trigger_id(&execution, "prod", "delivery"), "chain/prod/delivery"),
        ];
        for (id, purpose) in &cases {
            assert_eq!(*id, Uuid::new_v5(&namespace, purpose.as_bytes()).to_string(), "{purpose}");
        }
        let distinct: std::collections::HashSet<_> = cases.iter().map(|(id, _)| id).collect();
        assert_eq!(distinct.len(), cases.len());
        assert_eq!(event_id("not-a-uuid", "finished"), event_id("not-a-uuid", "finished"));
        assert_ne!(event_id("not-a-uuid", "finished"), event_id("not-a-uuid-either", "finished"));
    }
}
