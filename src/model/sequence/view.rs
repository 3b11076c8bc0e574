//! The wire view of an execution, as `GET /api/controlPlane/v1/sequence-execution` returns it.

use serde_json::{json, Value};

use super::Execution;
use crate::model::clock::keptn_time;

impl Execution {
    /// Keptn's `SequenceExecution` document (decoded form).
    pub fn to_wire(&self) -> Value {
        let tasks: Vec<Value> = self
            .definition
            .tasks
            .iter()
            .map(|task| {
                let mut value =
                    json!({ "name": task.name, "properties": task.properties.clone().unwrap_or(Value::Null) });
                if let Some(after) = task.triggered_after {
                    value["triggeredAfter"] = json!(humantime::format_duration(after).to_string().replace(' ', ""));
                }
                value
            })
            .collect();
        let previous_tasks: Vec<Value> = self
            .previous_tasks
            .iter()
            .map(|task| {
                json!({
                    "name": task.name, "triggeredID": task.triggered_id, "result": task.result,
                    "status": task.status, "properties": *task.properties,
                })
            })
            .collect();
        let current_task = match &self.current_task {
            Some(task) => json!({
                "name": task.name,
                "triggeredID": if task.triggered_event.is_some() { task.triggered_id.as_str() } else { "" },
                "events": task.events.iter().map(|event| json!({
                    "eventType": event.event_type, "source": event.source, "result": event.result,
                    "status": event.status, "time": keptn_time(event.time),
                    "properties": event.properties.as_deref().cloned().unwrap_or(Value::Null),
                })).collect::<Vec<_>>(),
            }),
            None => json!({ "name": "", "triggeredID": "", "events": [] }),
        };
        let outcome = self.outcome.as_ref();
        json!({
            "_id": self.id,
            "schemaVersion": "1",
            "sequence": { "name": self.definition.name, "tasks": tasks },
            "status": {
                "state": self.state_name(),
                "stateBeforePause": if self.paused { self.unpaused_state_name() } else { "" },
                "previousTasks": previous_tasks,
                "currentTask": current_task,
            },
            "scope": {
                "project": self.scope.project,
                "stage": self.scope.stage,
                "service": self.scope.service,
                "keptnContext": self.scope.keptn_context,
                "triggeredId": self.scope.triggered_id,
                "gitcommitid": self.scope.gitcommitid.clone().unwrap_or_default(),
                "eventType": crate::model::event_type::sequence(&self.scope.stage, &self.definition.name, "triggered"),
                "labels": self.input.get("labels").cloned().unwrap_or(Value::Null),
                "status": outcome.map(|o| o.status.as_str()).unwrap_or_default(),
                "result": outcome.map(|o| o.result.as_str()).unwrap_or_default(),
                "message": outcome.and_then(|o| o.message.as_deref()).unwrap_or_default(),
            },
            "inputProperties": *self.input,
            "triggeredAt": keptn_time(self.triggered_at),
        })
    }
}
