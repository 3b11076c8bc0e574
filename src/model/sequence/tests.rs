//! Table tests of the sequence state machine: one test per behaviour, stepping time by hand.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;
use crate::model::event::CloudEvent;

const TIMEOUTS: Timeouts = Timeouts { started: Duration::from_secs(600), finished: None };
const EXECUTION_ID: &str = "7f0c7a43-35a1-4cf7-9a0e-4d6d2f6c1b10";

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap() + chrono::Duration::seconds(seconds)
}

fn task(name: &str) -> TaskDefinition {
    TaskDefinition { name: name.into(), triggered_after: None, properties: None }
}

fn definition(tasks: Vec<TaskDefinition>) -> Arc<Definition> {
    Arc::new(Definition { name: "delivery".into(), tasks })
}

fn scope() -> Scope {
    Scope {
        project: "sockshop".into(),
        stage: "dev".into(),
        service: "carts".into(),
        keptn_context: "ctx-1".into(),
        triggered_id: "trigger-1".into(),
        gitcommitid: Some("abc123".into()),
    }
}

fn input() -> Arc<Value> {
    Arc::new(json!({
        "project": "sockshop", "stage": "dev", "service": "carts",
        "labels": { "buildId": "42" }, "message": "hello",
        "configurationChange": { "values": { "image": "carts:0.1" } }
    }))
}

fn new_execution(tasks: Vec<TaskDefinition>, paused: bool) -> (Execution, Vec<Effect>) {
    Execution::new(EXECUTION_ID.into(), definition(tasks), scope(), input(), t(0), paused)
}

/// A new execution of a one-task sequence (for other modules' tests).
pub(crate) fn sample_execution() -> Execution {
    new_execution(vec![task("deployment")], false).0
}

/// An execution that holds its slot and has dispatched its first task.
fn running(tasks: Vec<TaskDefinition>) -> Execution {
    let (mut execution, effects) = new_execution(tasks, false);
    assert_eq!(effects, vec![Effect::RequestSlot { ticket: 1 }]);
    let step = execution.apply(Input::SlotGranted { ticket: 1 }, t(1), TIMEOUTS);
    assert_eq!(step.applied, Applied::Changed);
    execution
}

fn task_event(execution: &Execution, kind: &str, id: &str, data: Value) -> CloudEvent {
    let task = execution.current_task.as_ref().expect("open task");
    let mut event =
        CloudEvent::emitted(&format!("sh.keptn.event.{}.{kind}", task.name), id.into(), "ctx-1".into(), t(0), data);
    event.source = "executor".into();
    event.triggeredid = Some(task.triggered_id.clone());
    event
}

fn finished_data(result: &str, status: &str) -> Value {
    json!({ "project": "sockshop", "stage": "dev", "service": "carts", "result": result, "status": status })
}

/// Sends `.started` then `.finished` for the open task.
fn complete_task(execution: &mut Execution, at: i64, data: Value) -> Step {
    let started = task_event(execution, "started", &format!("s-{at}"), json!({}));
    assert_eq!(execution.apply(Input::TaskEvent(&started), t(at), TIMEOUTS).applied, Applied::Changed);
    let finished = task_event(execution, "finished", &format!("f-{at}"), data);
    execution.apply(Input::TaskEvent(&finished), t(at), TIMEOUTS)
}

fn published(effects: &[Effect]) -> Vec<&CloudEvent> {
    effects
        .iter()
        .filter_map(|effect| if let Effect::Publish(event) = effect { Some(event.as_ref()) } else { None })
        .collect()
}

fn published_types(effects: &[Effect]) -> Vec<&str> {
    published(effects).iter().map(|event| event.event_type.as_str()).collect()
}

#[test]
fn new_execution_queues_for_its_slot_and_starts_when_granted() {
    let (mut execution, effects) = new_execution(vec![task("deployment"), task("test")], false);
    assert_eq!(effects, vec![Effect::RequestSlot { ticket: 1 }]);
    assert_eq!(execution.state_name(), "triggered");

    let step = execution.apply(Input::SlotGranted { ticket: 1 }, t(1), TIMEOUTS);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.deployment.triggered"]);
    assert!(step.effects.contains(&Effect::WakeAt(t(1) + TIMEOUTS.started)), "started timeout armed");
    assert_eq!(execution.state_name(), "started");
    let event = published(&step.effects)[0];
    assert_eq!(event.id, execution.derived_id("task/0/triggered"));
    assert_eq!(event.shkeptncontext, "ctx-1");
    assert_eq!(event.gitcommitid.as_deref(), Some("abc123"));
    assert_eq!(event.data["configurationChange"]["values"]["image"], "carts:0.1");
    assert_eq!(event.data["labels"]["buildId"], "42");
    assert_eq!(event.data["message"], "", "message is cleared");
    assert_eq!(execution.open_triggered_event().map(|e| e.id.clone()), Some(event.id.clone()));
}

#[test]
fn paused_before_start_waits_without_asking_for_a_slot() {
    let (mut execution, effects) = new_execution(vec![task("deployment")], true);
    assert!(effects.is_empty());
    assert_eq!(execution.state_name(), "paused");
    let step = execution.apply(Input::Resume, t(5), TIMEOUTS);
    assert_eq!(step.effects, vec![Effect::RequestSlot { ticket: 1 }]);
}

#[test]
fn tasks_run_in_order_and_payloads_accumulate() {
    let mut tasks = vec![task("deployment"), task("test")];
    tasks[1].properties = Some(json!({ "teststrategy": "functional" }));
    let mut execution = running(tasks);
    let mut data = finished_data("pass", "succeeded");
    data["deployment"] = json!({ "deploymentURIsPublic": ["http://carts"] });
    data["message"] = json!("deployed");
    let step = complete_task(&mut execution, 10, data);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.test.triggered"]);
    let test_triggered = published(&step.effects)[0];
    assert_eq!(test_triggered.data["deployment"]["deploymentURIsPublic"][0], "http://carts");
    assert_eq!(test_triggered.data["test"]["teststrategy"], "functional");
    assert_eq!(test_triggered.data["result"], "pass");
    assert_eq!(test_triggered.data["status"], "succeeded");
    assert_eq!(test_triggered.data["message"], "");
    assert_eq!(test_triggered.id, execution.derived_id("task/1/triggered"));
    assert_eq!(execution.previous_tasks.len(), 1);
    assert_eq!(execution.previous_tasks[0].name, "deployment");
}

#[test]
fn last_task_finishing_ends_the_sequence_with_a_finished_event() {
    let mut execution = running(vec![task("deployment")]);
    let step = complete_task(&mut execution, 10, finished_data("pass", "succeeded"));
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.dev.delivery.finished"]);
    let finished = published(&step.effects)[0];
    assert_eq!(finished.triggeredid.as_deref(), Some("trigger-1"));
    assert_eq!(finished.data["result"], "pass");
    assert_eq!(finished.data["status"], "succeeded");
    assert_eq!(finished.data["labels"]["buildId"], "42");
    assert!(step.effects.contains(&Effect::ReleaseSlot));
    assert!(step.effects.contains(&Effect::Ended { chain: true }));
    assert!(!step.effects.iter().any(|e| matches!(e, Effect::WakeAt(_))), "no timer after the end");
    assert_eq!(execution.state_name(), "finished");
}

#[test]
fn a_failing_or_errored_task_stops_the_sequence() {
    for (result, status, expected_result, expected_status) in [
        ("fail", "succeeded", "fail", "succeeded"),
        ("pass", "errored", "pass", "errored"),
        ("pass", "aborted", "pass", "aborted"),
        ("", "succeeded", "fail", "succeeded"),
    ] {
        let mut execution = running(vec![task("deployment"), task("test")]);
        let step = complete_task(&mut execution, 10, finished_data(result, status));
        assert_eq!(published_types(&step.effects), ["sh.keptn.event.dev.delivery.finished"], "{result}/{status}");
        let finished = published(&step.effects)[0];
        assert_eq!(finished.data["result"], expected_result);
        assert_eq!(finished.data["status"], expected_status);
        assert_eq!(execution.last_task_name(), Some("deployment"));
    }
}

#[test]
fn an_errored_or_aborted_stop_chains_as_fail_and_keeps_the_executor_message() {
    for status in ["errored", "aborted"] {
        let mut execution = running(vec![task("deployment"), task("test")]);
        let mut data = finished_data("pass", status);
        data["message"] = json!("helm upgrade failed");
        let step = complete_task(&mut execution, 10, data);
        assert_eq!(published(&step.effects)[0].data["message"], "helm upgrade failed");
        assert_eq!(execution.chaining_result().as_str(), "fail", "{status} must not promote");
    }
}

#[test]
fn a_warning_is_not_lost_by_a_later_pass() {
    let mut execution = running(vec![task("evaluation"), task("release")]);
    complete_task(&mut execution, 10, finished_data("warning", "succeeded"));
    let step = complete_task(&mut execution, 20, finished_data("pass", "succeeded"));
    assert_eq!(published(&step.effects)[0].data["result"], "warning");
    assert_eq!(execution.result().as_str(), "warning");
}

#[test]
fn several_executors_complete_a_task_together() {
    let mut execution = running(vec![task("test"), task("release")]);
    for id in ["s1", "s2"] {
        let started = task_event(&execution, "started", id, json!({}));
        execution.apply(Input::TaskEvent(&started), t(2), TIMEOUTS);
    }
    let first = task_event(&execution, "finished", "f1", finished_data("pass", "succeeded"));
    let step = execution.apply(Input::TaskEvent(&first), t(3), TIMEOUTS);
    assert!(published(&step.effects).is_empty(), "one of two executors finished");
    let second = task_event(&execution, "finished", "f2", finished_data("warning", "succeeded"));
    let step = execution.apply(Input::TaskEvent(&second), t(4), TIMEOUTS);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.release.triggered"]);
    assert_eq!(execution.previous_tasks[0].result.as_str(), "warning");
}

#[test]
fn a_finished_without_started_completes_the_task() {
    let mut execution = running(vec![task("deployment"), task("test")]);
    let finished = task_event(&execution, "finished", "f1", finished_data("pass", "succeeded"));
    let step = execution.apply(Input::TaskEvent(&finished), t(2), TIMEOUTS);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.test.triggered"]);
}

#[test]
fn events_that_do_not_fit_are_ignored() {
    let mut execution = running(vec![task("deployment"), task("test")]);
    let started = task_event(&execution, "started", "s1", json!({}));
    assert_eq!(execution.apply(Input::TaskEvent(&started), t(2), TIMEOUTS).applied, Applied::Changed);
    let duplicate = execution.apply(Input::TaskEvent(&started), t(2), TIMEOUTS);
    assert_eq!(duplicate.applied, Applied::Ignored("duplicate event id"));

    let mut wrong_id = task_event(&execution, "finished", "f1", finished_data("pass", "succeeded"));
    wrong_id.triggeredid = Some("someone-else".into());
    assert!(matches!(execution.apply(Input::TaskEvent(&wrong_id), t(3), TIMEOUTS).applied, Applied::Ignored(_)));
    let mut no_id = wrong_id.clone();
    no_id.triggeredid = None;
    assert!(matches!(execution.apply(Input::TaskEvent(&no_id), t(3), TIMEOUTS).applied, Applied::Ignored(_)));
    let mut wrong_task = task_event(&execution, "finished", "f2", finished_data("pass", "succeeded"));
    wrong_task.event_type = "sh.keptn.event.test.finished".into();
    assert!(matches!(execution.apply(Input::TaskEvent(&wrong_task), t(3), TIMEOUTS).applied, Applied::Ignored(_)));
    let mut triggered = task_event(&execution, "triggered", "x", json!({}));
    triggered.event_type = "sh.keptn.event.deployment.triggered".into();
    assert!(matches!(execution.apply(Input::TaskEvent(&triggered), t(3), TIMEOUTS).applied, Applied::Ignored(_)));
    assert_eq!(execution.current_task.as_ref().unwrap().events.len(), 1, "only the first started counted");
}

#[test]
fn triggered_after_delays_dispatch_until_due() {
    let mut tasks = vec![task("deployment"), task("evaluation")];
    tasks[1].triggered_after = Some(Duration::from_secs(60));
    let mut execution = running(tasks);
    let step = complete_task(&mut execution, 10, finished_data("pass", "succeeded"));
    assert!(published(&step.effects).is_empty(), "not due yet");
    assert!(step.effects.contains(&Effect::WakeAt(t(70))));
    let early = execution.apply(Input::Tick, t(40), TIMEOUTS);
    assert!(published(&early.effects).is_empty());
    assert!(early.effects.contains(&Effect::WakeAt(t(70))), "timer re-armed");
    let due = execution.apply(Input::Tick, t(70), TIMEOUTS);
    assert_eq!(published_types(&due.effects), ["sh.keptn.event.evaluation.triggered"]);
    assert_eq!(published(&due.effects)[0].time, Some(t(70)));
}

#[test]
fn a_task_without_response_times_the_sequence_out() {
    let mut execution = running(vec![task("deployment"), task("test")]);
    let early = execution.apply(Input::Tick, t(300), TIMEOUTS);
    assert!(published(&early.effects).is_empty());
    let step = execution.apply(Input::Tick, t(1) + TIMEOUTS.started, TIMEOUTS);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.dev.delivery.finished"]);
    let finished = published(&step.effects)[0];
    assert_eq!(finished.data["status"], "errored");
    assert_eq!(finished.data["result"], "fail");
    assert_eq!(
        finished.data["message"],
        "sequence timed out while waiting for task sh.keptn.event.deployment.triggered to receive a correlating .started or .finished event"
    );
    assert!(step.effects.contains(&Effect::Ended { chain: false }), "no chaining after a timeout");
    assert!(step.effects.contains(&Effect::ReleaseSlot));
    assert_eq!(execution.state_name(), "timedOut");
}

#[test]
fn a_started_task_is_not_timed_out_unless_a_finished_timeout_is_set() {
    let mut execution = running(vec![task("deployment")]);
    let started = task_event(&execution, "started", "s1", json!({}));
    let step = execution.apply(Input::TaskEvent(&started), t(5), TIMEOUTS);
    assert!(!step.effects.iter().any(|e| matches!(e, Effect::WakeAt(_))), "no deadline once started");
    let late = execution.apply(Input::Tick, t(5000), TIMEOUTS);
    assert!(published(&late.effects).is_empty());

    let with_finished = Timeouts { started: TIMEOUTS.started, finished: Some(Duration::from_secs(100)) };
    let mut execution = running(vec![task("deployment")]);
    let started = task_event(&execution, "started", "s1", json!({}));
    let step = execution.apply(Input::TaskEvent(&started), t(5), with_finished);
    assert!(step.effects.contains(&Effect::WakeAt(t(105))));
    let step = execution.apply(Input::Tick, t(105), with_finished);
    let finished = published(&step.effects)[0];
    assert_eq!(finished.data["status"], "errored");
    assert!(finished.data["message"].as_str().unwrap().contains("to receive a .finished event"));
}

#[test]
fn approval_releases_the_slot_and_the_next_task_asks_again() {
    let mut execution = running(vec![task("deployment"), task(APPROVAL_TASK), task("release")]);
    let step = complete_task(&mut execution, 10, finished_data("pass", "succeeded"));
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.approval.triggered"]);
    assert!(step.effects.contains(&Effect::ReleaseSlot), "open approvals block nobody");
    assert_eq!(execution.state_name(), "waitingForApproval");
    assert!(!execution.holds_slot);

    let step = complete_task(&mut execution, 20, finished_data("pass", "succeeded"));
    let ticket = execution.slot_ticket;
    assert_eq!(step.effects.iter().filter(|e| **e == Effect::RequestSlot { ticket }).count(), 1);
    assert!(published(&step.effects).is_empty(), "release waits for the slot");
    let step = execution.apply(Input::SlotGranted { ticket }, t(30), TIMEOUTS);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.release.triggered"]);
    assert_eq!(execution.state_name(), "started");
}

#[test]
fn pause_holds_the_next_task_and_resume_sends_it() {
    let mut execution = running(vec![task("deployment"), task("test")]);
    assert_eq!(execution.apply(Input::Pause, t(2), TIMEOUTS).applied, Applied::Changed);
    assert_eq!(execution.state_name(), "paused");
    assert_eq!(execution.apply(Input::Pause, t(2), TIMEOUTS).applied, Applied::Ignored("already paused"));
    let step = complete_task(&mut execution, 10, finished_data("pass", "succeeded"));
    assert!(published(&step.effects).is_empty(), "the running task finished but the next one waits");
    assert!(execution.holds_slot, "a paused sequence keeps its service's slot");
    let step = execution.apply(Input::Resume, t(20), TIMEOUTS);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.test.triggered"]);
    assert_eq!(execution.apply(Input::Resume, t(21), TIMEOUTS).applied, Applied::Ignored("not paused"));
}

#[test]
fn pausing_a_queued_execution_withdraws_its_request() {
    let (mut execution, _) = new_execution(vec![task("deployment")], false);
    let step = execution.apply(Input::Pause, t(1), TIMEOUTS);
    assert_eq!(step.effects, vec![Effect::ReleaseSlot]);
    let granted_anyway = execution.apply(Input::SlotGranted { ticket: 1 }, t(2), TIMEOUTS);
    assert_eq!(granted_anyway.applied, Applied::Ignored("stale slot grant"));
    assert!(granted_anyway.effects.is_empty(), "the stage took the request back when it saw the withdrawal");
    assert!(!execution.holds_slot);
}

/// Regression: a grant for a request withdrawn by a pause and renewed by a resume must not be taken,
/// or two sequences would run one service at once.
#[test]
fn a_grant_for_a_withdrawn_request_is_not_taken_after_resume() {
    let (mut execution, effects) = new_execution(vec![task("deployment")], false);
    assert_eq!(effects, vec![Effect::RequestSlot { ticket: 1 }]);
    execution.apply(Input::Pause, t(1), TIMEOUTS);
    let step = execution.apply(Input::Resume, t(2), TIMEOUTS);
    assert_eq!(step.effects, vec![Effect::RequestSlot { ticket: 3 }]);
    let stale = execution.apply(Input::SlotGranted { ticket: 1 }, t(3), TIMEOUTS);
    assert_eq!(stale.applied, Applied::Ignored("stale slot grant"));
    assert!(!execution.holds_slot);
    let fresh = execution.apply(Input::SlotGranted { ticket: 3 }, t(4), TIMEOUTS);
    assert_eq!(published_types(&fresh.effects), ["sh.keptn.event.deployment.triggered"]);
}

#[test]
fn abort_ends_with_aborted_pass_and_ignores_later_events() {
    let mut execution = running(vec![task("deployment"), task("test")]);
    let late = task_event(&execution, "finished", "f1", finished_data("pass", "succeeded"));
    let step = execution.apply(Input::Abort, t(5), TIMEOUTS);
    let finished = published(&step.effects)[0];
    assert_eq!(finished.event_type, "sh.keptn.event.dev.delivery.finished");
    assert_eq!(finished.data["status"], "aborted");
    assert_eq!(finished.data["result"], "pass");
    assert!(step.effects.contains(&Effect::Ended { chain: false }));
    assert!(step.effects.contains(&Effect::ReleaseSlot));
    let ignored = execution.apply(Input::TaskEvent(&late), t(6), TIMEOUTS);
    assert_eq!(ignored.applied, Applied::Ignored("sequence has ended"));
    assert!(ignored.effects.is_empty());
    assert!(execution.apply(Input::SlotGranted { ticket: 1 }, t(7), TIMEOUTS).effects.is_empty());
    assert!(execution.apply(Input::Abort, t(8), TIMEOUTS).effects.is_empty(), "abort is idempotent");
}

#[test]
fn replaying_the_same_inputs_yields_the_same_events() {
    let run = || {
        let mut execution = running(vec![task("deployment"), task("test")]);
        let step = complete_task(&mut execution, 10, finished_data("pass", "succeeded"));
        published(&step.effects).iter().map(|e| (e.id.clone(), e.data.clone())).collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}

#[test]
fn accumulated_payload_feeds_chained_sequences() {
    let mut execution = running(vec![task("deployment")]);
    let mut data = finished_data("pass", "succeeded");
    data["deployment"] = json!({ "deploymentNames": ["carts"] });
    complete_task(&mut execution, 10, data);
    let payload = execution.accumulated_payload();
    assert_eq!(payload["deployment"]["deploymentNames"][0], "carts");
    assert_eq!(payload["configurationChange"]["values"]["image"], "carts:0.1");
    assert_eq!(payload["result"], "pass");
}

/// Seeded simulation: random inputs, including wrong ids, duplicates and timer ticks, never break the
/// invariants (checked inside `apply`), never trigger a task twice, and always end once aborted.
#[test]
fn random_inputs_keep_the_invariants() {
    for seed in 1..=300u64 {
        let mut rng = seed;
        let mut next = move |bound: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % bound
        };
        let tasks = vec![task("deployment"), task(APPROVAL_TASK), task("test"), task("release")];
        let (mut execution, _) = new_execution(tasks, next(4) == 0);
        let mut triggered_ids = std::collections::HashSet::new();
        let mut now = 0;
        for step_index in 0..60 {
            now += next(400) as i64;
            let event_kind = if next(2) == 0 { "started" } else { "finished" };
            let result = ["pass", "warning", "fail"][next(3) as usize];
            let event = execution.current_task.as_ref().map(|_| {
                let mut event =
                    task_event(&execution, event_kind, &format!("e{}", next(8)), finished_data(result, "succeeded"));
                if next(5) == 0 {
                    event.triggeredid = Some("unrelated".into());
                }
                event
            });
            let input = match next(7) {
                0 => Input::SlotGranted { ticket: execution.slot_ticket - next(2).min(execution.slot_ticket) },
                1 => Input::Tick,
                2 => Input::Pause,
                3 => Input::Resume,
                _ => match &event {
                    Some(event) => Input::TaskEvent(event),
                    None => Input::Tick,
                },
            };
            let step = execution.apply(input, t(now), TIMEOUTS);
            for event in published(&step.effects) {
                if event.event_type.ends_with(".triggered") {
                    assert!(
                        triggered_ids.insert(event.id.clone()),
                        "seed {seed} step {step_index}: task triggered twice"
                    );
                }
            }
        }
        execution.apply(Input::Abort, t(now + 1), TIMEOUTS);
        assert!(execution.phase.is_terminal(), "seed {seed}: abort always ends the execution");
    }
}

#[test]
fn durations_beyond_any_date_wait_forever_instead_of_overflowing() {
    // A record stored before durations were bounded may hold any value: it must not panic.
    let mut tasks = vec![task("deployment")];
    tasks[0].triggered_after = Some(Duration::from_secs(100_000_000_000 * 3600));
    let huge = Timeouts { started: Duration::MAX, finished: Some(Duration::MAX) };
    let (mut execution, _) = new_execution(tasks, false);
    let step = execution.apply(Input::SlotGranted { ticket: 1 }, t(1), huge);
    assert!(published(&step.effects).is_empty(), "not due");
    assert!(step.effects.contains(&Effect::WakeAt(DateTime::<Utc>::MAX_UTC)));
    let tick = execution.apply(Input::Tick, t(100), huge);
    assert!(published(&tick.effects).is_empty());

    let mut execution = running(vec![task("deployment")]);
    let started = task_event(&execution, "started", "s1", json!({}));
    let step = execution.apply(Input::TaskEvent(&started), t(5), huge);
    assert!(step.effects.contains(&Effect::WakeAt(DateTime::<Utc>::MAX_UTC)));
    assert!(published(&execution.apply(Input::Tick, t(10_000), huge).effects).is_empty());
}

#[test]
fn a_failed_execution_ends_errored_with_the_message_and_releases_its_slot() {
    let mut execution = running(vec![task("deployment"), task("test")]);
    let step = execution.apply(Input::Fail { message: "its step failed 3 times in a row" }, t(5), TIMEOUTS);
    assert_eq!(published_types(&step.effects), ["sh.keptn.event.dev.delivery.finished"]);
    let finished = published(&step.effects)[0];
    assert_eq!(finished.data["status"], "errored");
    assert_eq!(finished.data["result"], "fail");
    assert_eq!(finished.data["message"], "its step failed 3 times in a row");
    assert!(step.effects.contains(&Effect::ReleaseSlot));
    assert!(step.effects.contains(&Effect::Ended { chain: false }));
    assert_eq!(execution.state_name(), "finished");
    let again = execution.apply(Input::Fail { message: "again" }, t(6), TIMEOUTS);
    assert_eq!(again.applied, Applied::Ignored("sequence has ended"));
}
