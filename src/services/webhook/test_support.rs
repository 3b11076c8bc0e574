//! What the template, request and curl tests share: the event context requests are rendered against.

use serde_json::{json, Value};

/// An event with nested data of every JSON type, and one secret value under `env`.
pub(super) fn context() -> Value {
    json!({
        "id": "e1",
        "type": "sh.keptn.event.evaluation.finished",
        "data": {
            "project": "sockshop",
            "evaluation": {"result": "pass", "score": 92.5, "count": 3, "big": 1_000_000, "tiny": 0.00001,
                           "ok": true, "none": null, "labels": {"a": "b"}, "list": [1, "x"]},
            "injected": "{{.env.token}}"
        },
        "env": {"token": "s3cr3t"}
    })
}
