//! Answer types shared by several handlers, and the schemas of answers that handlers assemble as JSON
//! values rather than from one Rust type (the sequence views, whose optional parts depend on the
//! execution; the cluster view). The test suite checks real answers against these schemas, so they
//! cannot drift from the handlers unnoticed.

use serde::Serialize;
use utoipa::ToSchema;

/// The empty object `{}` that some operations answer with.
#[derive(Serialize, ToSchema)]
pub struct Empty {}

/// `GET /sequence/{project}`: one state document per Keptn context, newest first.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SequenceStates {
    states: Vec<SequenceState>,
    total_count: u64,
    /// Offset of the next page; absent on the last page.
    next_page_key: Option<u64>,
}

/// The Bridge's view of one context.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SequenceState {
    name: String,
    service: String,
    project: String,
    time: String,
    shkeptncontext: String,
    /// `waiting`, `started`, `paused`, `finished`, `aborted` or `timedOut`.
    state: String,
    stages: Vec<SequenceStateStage>,
    /// The worst result over the stages, once every stage ended.
    result: Option<String>,
    #[serde(rename = "problemTitle")]
    problem_title: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SequenceStateStage {
    name: String,
    state: String,
    /// Keelson's addition: how the stage's sequence ended.
    result: Option<String>,
    image: Option<String>,
    latest_event: Option<SequenceStateEvent>,
    latest_evaluation: Option<SequenceStateEvaluation>,
    latest_failed_event: Option<SequenceStateEvent>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SequenceStateEvent {
    #[serde(rename = "type")]
    event_type: String,
    id: String,
    time: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct SequenceStateEvaluation {
    result: String,
    score: f64,
}

/// `GET /sequence-execution`: Keptn's sequence execution documents, newest first.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SequenceExecutions {
    sequence_executions: Vec<SequenceExecution>,
    total_count: u64,
    page_size: u64,
    next_page_key: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct SequenceExecution {
    #[serde(rename = "_id")]
    id: String,
    schema_version: String,
    sequence: ExecutionSequence,
    status: ExecutionStatus,
    scope: ExecutionScope,
    /// The data of the event that triggered the sequence.
    input_properties: serde_json::Value,
    triggered_at: String,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ExecutionSequence {
    name: String,
    tasks: Vec<ExecutionTask>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionTask {
    name: String,
    properties: serde_json::Value,
    triggered_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStatus {
    state: String,
    state_before_pause: String,
    previous_tasks: Vec<ExecutionPreviousTask>,
    current_task: ExecutionCurrentTask,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ExecutionPreviousTask {
    name: String,
    #[serde(rename = "triggeredID")]
    triggered_id: String,
    result: String,
    status: String,
    properties: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ExecutionCurrentTask {
    name: String,
    #[serde(rename = "triggeredID")]
    triggered_id: String,
    events: Vec<ExecutionTaskEvent>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionTaskEvent {
    event_type: String,
    source: String,
    result: String,
    status: String,
    time: String,
    properties: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionScope {
    project: String,
    stage: String,
    service: String,
    keptn_context: String,
    triggered_id: String,
    gitcommitid: String,
    event_type: String,
    labels: serde_json::Value,
    status: String,
    result: String,
    message: String,
}

/// `GET /api/v1/cluster`.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    node_id: String,
    members: Vec<crate::cluster::table::MemberView>,
    shards: Vec<ShardOwner>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct ShardOwner {
    shard: u32,
    owner: Option<String>,
    epoch: Option<u64>,
}
