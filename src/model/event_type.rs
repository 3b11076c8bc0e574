//! Keptn's event type grammar: `sh.keptn.event.<task>.<kind>` (5 parts) for tasks and
//! `sh.keptn.event.<stage>.<sequence>.<kind>` (6 parts) for sequences.

/// What an event type names. Only the number of dot-separated parts decides, as in Keptn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType<'a> {
    Task { task: &'a str, kind: &'a str },
    Sequence { stage: &'a str, sequence: &'a str, kind: &'a str },
    Other,
}

pub const TRIGGERED: &str = "triggered";
pub const STARTED: &str = "started";
pub const FINISHED: &str = "finished";

/// Prefix of every task and sequence event type.
pub const PREFIX: &str = "sh.keptn.event.";

pub fn parse(event_type: &str) -> EventType<'_> {
    let parts: Vec<&str> = event_type.split('.').collect();
    if parts.iter().any(|part| part.is_empty()) {
        return EventType::Other;
    }
    match parts.as_slice() {
        [_, _, _, task, kind] => EventType::Task { task, kind },
        [_, _, _, stage, sequence, kind] => EventType::Sequence { stage, sequence, kind },
        _ => EventType::Other,
    }
}

pub fn task(task: &str, kind: &str) -> String {
    format!("{PREFIX}{task}.{kind}")
}

pub fn sequence(stage: &str, sequence: &str, kind: &str) -> String {
    format!("{PREFIX}{stage}.{sequence}.{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_decide_the_kind() {
        assert_eq!(
            parse("sh.keptn.event.deployment.finished"),
            EventType::Task { task: "deployment", kind: "finished" }
        );
        assert_eq!(
            parse("sh.keptn.event.dev.delivery.triggered"),
            EventType::Sequence { stage: "dev", sequence: "delivery", kind: "triggered" }
        );
        assert_eq!(parse("sh.keptn.log.error"), EventType::Other);
        assert_eq!(parse("sh.keptn.event..finished.x"), EventType::Other);
        assert_eq!(parse("a.b.c.d.e.f.g"), EventType::Other);
        assert_eq!(task("test", STARTED), "sh.keptn.event.test.started");
        assert_eq!(sequence("dev", "delivery", FINISHED), "sh.keptn.event.dev.delivery.finished");
    }
}
