//! Write a Keptn execution-plane service in a few lines: receive a task's `.triggered` events over NATS
//! or by polling the HTTP API, and let the SDK send `.started` and `.finished`.
//!
//! ```no_run
//! use keelson::sdk::{Service, TaskError};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), keelson::sdk::SdkError> {
//! Service::new("my-deployer", "deployment")
//!     .over_http("http://127.0.0.1:8080", "my-token")
//!     .run(|task| async move {
//!         let image = task.data()["configurationChange"]["values"]["image"].as_str().unwrap_or("?").to_owned();
//!         if image == "?" {
//!             return Err(TaskError::new("no image given"));
//!         }
//!         Ok(json!({ "deployment": { "deploymentNames": [image] } }))
//!     })
//!     .await
//! # }
//! ```
//!
//! The handler's data is merged into the `.finished` event's data (`result` defaults to `pass`, and a
//! `result` of its own wins); an error becomes a `.finished` with `status: errored`, `result: fail` and
//! the error as `message`. With an API endpoint (always, over HTTP; with [`Service::register_with`]
//! over NATS) the service registers as an integration and pings every few seconds.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::bus::{Bus as _, InProcessBus};
use crate::model::event::CloudEvent;
use crate::model::uniform::{subject_matches, SubscriptionFilter};

/// How often the integration pings the control plane (Keptn's SDK: 5 s).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often an HTTP service asks for new work (Keptn's SDK: 1 s).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Handled `.triggered` ids remembered, so a polled event still open is not handled twice.
const REMEMBERED: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("cannot reach nats: {0}")]
    Nats(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("control plane request failed: {0}")]
    Http(String),
    /// The control plane did not take the request (unreachable, or 503 before accepting): safe to retry.
    #[error("control plane unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A failed task: reported as `status: errored`, `result: fail`, with this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError(pub String);

impl TaskError {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl<E: std::fmt::Display> From<E> for TaskError {
    fn from(error: E) -> Self {
        Self(error.to_string())
    }
}

/// The `.triggered` event a task handler receives.
#[derive(Debug, Clone)]
pub struct TriggeredEvent {
    pub event: CloudEvent,
    pub task: String,
}

impl TriggeredEvent {
    fn text(&self, key: &str) -> &str {
        self.event.data.get(key).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn project(&self) -> &str {
        self.text("project")
    }

    pub fn stage(&self) -> &str {
        self.text("stage")
    }

    pub fn service(&self) -> &str {
        self.text("service")
    }

    pub fn keptn_context(&self) -> &str {
        &self.event.shkeptncontext
    }

    /// The event's `data`.
    pub fn data(&self) -> &Value {
        &self.event.data
    }

    /// The event's `data` as the handler's own type.
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.event.data.clone())
    }
}

#[derive(Clone)]
enum Transport {
    Nats(String),
    Http,
    /// The embedded bus of a Keelson in the same process (its built-in services).
    InProcess(InProcessBus),
}

#[derive(Clone)]
struct Api {
    endpoint: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.endpoint.trim_end_matches('/'))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, SdkError> {
        let response =
            request.header("x-token", &self.token).send().await.map_err(|e| SdkError::Unavailable(e.into()))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = format!("{status}: {}", body["message"].as_str().unwrap_or_default());
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            && body["message"].as_str().is_some_and(|text| text.starts_with("event not accepted"))
        {
            return Err(SdkError::Unavailable(message.into()));
        }
        Err(SdkError::Http(message))
    }
}

/// An execution-plane service: a task handler ([`Service::new`] + [`Service::run`]) or a listener to
/// any event types ([`Service::listen`] + [`Service::run_events`]).
pub struct Service {
    name: String,
    /// The task whose `.triggered` events [`Service::run`] answers (empty for a listener).
    task: String,
    /// Event types (NATS subjects, wildcards allowed) the service receives.
    subjects: Vec<String>,
    /// Event types every instance of the service receives, outside its NATS queue group.
    broadcast: Vec<String>,
    /// Event types registered as the integration's subscriptions (default: `subjects`).
    advertised: Option<Vec<String>>,
    transport: Transport,
    api: Option<Api>,
    filter: SubscriptionFilter,
    /// The in-process subscription, taken when the transport is chosen so that no event published
    /// after that moment is missed.
    pending: Option<tokio::sync::mpsc::Receiver<Arc<CloudEvent>>>,
    /// Events handled at once; more wait (and so slow the bus down instead of piling up tasks).
    concurrency: usize,
}

/// Events a service handles at once by default.
const DEFAULT_CONCURRENCY: usize = 256;

impl Service {
    /// A service called `name` that handles `sh.keptn.event.<task>.triggered`.
    pub fn new(name: impl Into<String>, task: impl Into<String>) -> Self {
        let task = task.into();
        Self {
            name: name.into(),
            subjects: vec![crate::model::event_type::task(&task, crate::model::event_type::TRIGGERED)],
            broadcast: Vec::new(),
            task,
            advertised: None,
            transport: Transport::Http,
            api: None,
            filter: SubscriptionFilter::default(),
            pending: None,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// A service called `name` that receives every event of the given types (NATS subjects such as
    /// `sh.keptn.event.get-sli.finished` or `sh.keptn.event.*.triggered`) and decides itself what to
    /// send; run it with [`Service::run_events`] over NATS or in-process.
    pub fn listen(name: impl Into<String>, subjects: &[&str]) -> Self {
        let mut service = Self::new(name, "");
        service.subjects = subjects.iter().map(|subject| (*subject).to_owned()).collect();
        service
    }

    /// Also receives these event types, on every instance of the service: over NATS they are not
    /// shared out in the service's queue group (for events that concern whichever instance holds some
    /// work, such as an abort). Call before choosing the transport.
    pub fn broadcast(mut self, subjects: &[&str]) -> Self {
        self.broadcast = subjects.iter().map(|subject| (*subject).to_owned()).collect();
        self
    }

    /// Receives and sends events over NATS (a queue group named after the service).
    pub fn over_nats(mut self, url: impl Into<String>) -> Self {
        self.transport = Transport::Nats(url.into());
        self
    }

    /// Polls the control plane's API for work and sends events to it (a remote execution plane).
    pub fn over_http(mut self, endpoint: impl Into<String>, token: impl Into<String>) -> Self {
        self.transport = Transport::Http;
        self.register_with(endpoint, token)
    }

    /// Receives and sends events on the embedded bus of a Keelson in the same process. Subscribes at
    /// once: events published from now on reach the service even before it runs.
    pub fn in_process(mut self, bus: InProcessBus) -> Self {
        let subjects: Vec<String> = self.subjects.iter().chain(&self.broadcast).cloned().collect();
        let name = self.name.clone();
        // The service's own events are left out here already: a service that waits for room to send
        // must not find its own queue full of what it sent.
        let events = bus.subscribe_filtered(Some(Box::new(move |event: &CloudEvent| {
            event.source != name && subjects.iter().any(|subject| subject_matches(subject, &event.event_type))
        })));
        self.pending = Some(events);
        self.transport = Transport::InProcess(bus);
        self
    }

    /// Handles at most `limit` events at once (default 256).
    pub fn concurrency(mut self, limit: usize) -> Self {
        self.concurrency = limit.max(1);
        self
    }

    /// Registers with the control plane's API as an integration (and pings it).
    pub fn register_with(mut self, endpoint: impl Into<String>, token: impl Into<String>) -> Self {
        self.api = Some(Api { endpoint: endpoint.into(), token: token.into(), client: reqwest::Client::new() });
        self
    }

    /// Registers these event types as the integration's subscriptions instead of the ones it receives
    /// (e.g. none, for a service whose subscriptions users manage).
    pub fn advertise(mut self, subjects: &[&str]) -> Self {
        self.advertised = Some(subjects.iter().map(|subject| (*subject).to_owned()).collect());
        self
    }

    /// Handles only events of these projects, stages and services (empty: any).
    pub fn filter(mut self, projects: &[&str], stages: &[&str], services: &[&str]) -> Self {
        let owned = |values: &[&str]| values.iter().map(|value| (*value).to_owned()).collect();
        self.filter =
            SubscriptionFilter { projects: owned(projects), stages: owned(stages), services: owned(services) };
        self
    }

    /// Runs the service until an unrecoverable error: each `.triggered` event is answered with
    /// `.started`, then `handler` runs, then `.finished` reports its outcome.
    pub async fn run<H, F>(self, handler: H) -> Result<(), SdkError>
    where
        H: Fn(TriggeredEvent) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Value, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let task = self.task.clone();
        self.run_events(move |event, sender| {
            let (handler, task) = (Arc::clone(&handler), task.clone());
            async move { sender.handle(TriggeredEvent { event, task }, handler.as_ref()).await }
        })
        .await
    }

    /// Runs the service until an unrecoverable error, calling `handler` for every event received
    /// (concurrently); the handler sends what it wants with the [`Sender`].
    pub async fn run_events<H, F>(mut self, handler: H) -> Result<(), SdkError>
    where
        H: Fn(CloudEvent, Sender) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        // Subscribed before registering: once the integration is listed, it receives events.
        let mut source = self.subscribe().await?;
        let integration_id = match &self.api {
            Some(api) => Some(self.register(api).await?),
            None => None,
        };
        let sender = Sender {
            name: self.name.clone(),
            nats: match &source {
                Source::Nats(client, _) => Some(client.clone()),
                _ => None,
            },
            bus: match &self.transport {
                Transport::InProcess(bus) => Some(bus.clone()),
                _ => None,
            },
            api: self.api.clone(),
        };
        let handler = Arc::new(handler);
        let permits = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let dispatch = |event: CloudEvent| {
            let (sender, handler, permits) = (sender.clone(), Arc::clone(&handler), Arc::clone(&permits));
            async move {
                let Ok(permit) = permits.acquire_owned().await else { return };
                tokio::spawn(async move {
                    handler(event, sender).await;
                    drop(permit);
                });
            }
        };
        match &mut source {
            Source::Nats(_, messages) => {
                while let Some(message) = messages.next().await {
                    let Ok(event) = serde_json::from_slice::<CloudEvent>(&message.payload) else { continue };
                    if self.wants(&event) {
                        dispatch(event).await;
                    }
                }
                Err(SdkError::Nats("subscription ended".into()))
            }
            Source::InProcess(events) => {
                while let Some(event) = events.recv().await {
                    if self.wants(&event) {
                        dispatch(Arc::unwrap_or_clone(event)).await;
                    }
                }
                Ok(())
            }
            Source::Polling => {
                let api = self.api.clone().expect("an HTTP service has an API endpoint");
                let mut handled = Remembered::default();
                loop {
                    for subject in &self.subjects {
                        let mut path = format!("/controlPlane/v1/event/triggered/{subject}?pageSize=100");
                        if let Some(id) = &integration_id {
                            path.push_str(&format!("&integrationId={id}"));
                        }
                        match api.send(api.client.get(api.url(&path))).await {
                            Ok(body) => {
                                for event in body["events"].as_array().cloned().unwrap_or_default() {
                                    let Ok(event) = serde_json::from_value::<CloudEvent>(event) else { continue };
                                    if self.wants(&event) && handled.insert(&event.id) {
                                        dispatch(event).await;
                                    }
                                }
                            }
                            Err(error) => tracing::warn!(%error, "polling for work failed; retrying"),
                        }
                    }
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            }
        }
    }

    async fn subscribe(&mut self) -> Result<Source, SdkError> {
        match &self.transport {
            Transport::Nats(url) => {
                let client = async_nats::connect(url.as_str()).await.map_err(|e| SdkError::Nats(e.into()))?;
                let mut subscriptions = Vec::new();
                for subject in &self.subjects {
                    subscriptions.push(
                        client
                            .queue_subscribe(subject.clone(), self.name.clone())
                            .await
                            .map_err(|e| SdkError::Nats(e.into()))?,
                    );
                }
                for subject in &self.broadcast {
                    subscriptions.push(client.subscribe(subject.clone()).await.map_err(|e| SdkError::Nats(e.into()))?);
                }
                client.flush().await.map_err(|e| SdkError::Nats(e.into()))?;
                Ok(Source::Nats(client, futures_util::stream::select_all(subscriptions)))
            }
            Transport::InProcess(_) => {
                Ok(Source::InProcess(self.pending.take().expect("subscribed when the transport was chosen")))
            }
            Transport::Http => {
                if self.subjects.iter().any(|subject| !subject.ends_with(".triggered") || subject.contains('*')) {
                    return Err(SdkError::Http(
                        "over HTTP a service can only poll for the .triggered events of named tasks".into(),
                    ));
                }
                Ok(Source::Polling)
            }
        }
    }

    fn wants(&self, event: &CloudEvent) -> bool {
        let text = |key: &str| event.data.get(key).and_then(Value::as_str).unwrap_or_default();
        let listed = |values: &Vec<String>, value: &str| values.is_empty() || values.iter().any(|item| item == value);
        // A service never receives its own events back, whatever the transport.
        event.source != self.name
            && self.subjects.iter().chain(&self.broadcast).any(|subject| subject_matches(subject, &event.event_type))
            && listed(&self.filter.projects, text("project"))
            && listed(&self.filter.stages, text("stage"))
            && listed(&self.filter.services, text("service"))
    }

    /// Registers the integration and keeps it alive with pings; returns its id.
    async fn register(&self, api: &Api) -> Result<String, SdkError> {
        let hostname = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_owned());
        let subscriptions: Vec<Value> = self
            .advertised
            .as_ref()
            .unwrap_or(&self.subjects)
            .iter()
            .map(|subject| json!({ "event": subject, "filter": self.filter }))
            .collect();
        let registration = json!({
            "name": self.name,
            "metadata": {
                "hostname": hostname, "integrationversion": env!("CARGO_PKG_VERSION"),
                "distributorversion": format!("keelson-sdk-{}", env!("CARGO_PKG_VERSION")),
                "location": match self.transport { Transport::Http => "remote-execution-plane", _ => "control-plane" },
                "kubernetesmetadata": { "namespace": "keelson", "podname": hostname, "deploymentname": self.name },
            },
            "subscriptions": subscriptions,
        });
        let body =
            api.send(api.client.post(api.url("/controlPlane/v1/uniform/registration")).json(&registration)).await?;
        let id = body["id"].as_str().unwrap_or_default().to_owned();
        let (api, ping_id) = (api.clone(), id.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let url = api.url(&format!("/controlPlane/v1/uniform/registration/{ping_id}/ping"));
                if let Err(error) = api.send(api.client.put(url)).await {
                    tracing::warn!(%error, "integration ping failed; registering again");
                    // Expired while unreachable: registering again keeps the same id.
                    let register =
                        api.client.post(api.url("/controlPlane/v1/uniform/registration")).json(&registration);
                    if let Err(error) = api.send(register).await {
                        tracing::warn!(%error, "registering again failed");
                    }
                }
            }
        });
        Ok(id)
    }
}

/// Where a running service's events come from.
enum Source {
    Nats(async_nats::Client, futures_util::stream::SelectAll<async_nats::Subscriber>),
    InProcess(tokio::sync::mpsc::Receiver<Arc<CloudEvent>>),
    Polling,
}

/// Ids seen recently, bounded.
#[derive(Default)]
struct Remembered {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Remembered {
    /// False when `id` was seen already.
    fn insert(&mut self, id: &str) -> bool {
        if !self.set.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        if self.order.len() > REMEMBERED {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        true
    }
}

/// Sends a service's events: to NATS, the in-process bus, or the control plane's API.
#[derive(Clone)]
pub struct Sender {
    name: String,
    nats: Option<async_nats::Client>,
    bus: Option<InProcessBus>,
    api: Option<Api>,
}

impl Sender {
    async fn handle<H, F>(&self, triggered: TriggeredEvent, handler: &H)
    where
        H: Fn(TriggeredEvent) -> F,
        F: Future<Output = Result<Value, TaskError>>,
    {
        let started = self.answer(&triggered, "started", json!({}));
        if let Err(error) = self.send(started).await {
            tracing::warn!(%error, "cannot send .started");
        }
        let outcome = match handler(triggered.clone()).await {
            Ok(data) => {
                let mut fields = json!({ "status": "succeeded", "result": "pass" });
                crate::model::payload::merge(&mut fields, &data);
                fields
            }
            Err(TaskError(message)) => json!({ "status": "errored", "result": "fail", "message": message }),
        };
        let finished = self.answer(&triggered, "finished", outcome);
        if let Err(error) = self.send(finished).await {
            tracing::warn!(%error, "cannot send .finished");
        }
    }

    fn answer(&self, triggered: &TriggeredEvent, kind: &str, extra: Value) -> CloudEvent {
        self.reply(&triggered.event, &crate::model::event_type::task(&triggered.task, kind), extra)
    }

    /// The name events are sent with (their `source`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new event of `event_type` answering `to`: same context and commit, `triggeredid` = `to`'s id,
    /// data = `to`'s project, stage, service and labels with `extra` merged in.
    pub fn reply(&self, to: &CloudEvent, event_type: &str, extra: Value) -> CloudEvent {
        let mut event = self.event(to, event_type, extra);
        event.triggeredid = Some(to.id.clone());
        event
    }

    /// Like [`Sender::reply`], without a `triggeredid` (e.g. a new task such as `get-sli.triggered`).
    pub fn event(&self, to: &CloudEvent, event_type: &str, extra: Value) -> CloudEvent {
        let source = &to.data;
        let mut data = json!({ "project": source["project"], "stage": source["stage"], "service": source["service"] });
        if let Some(labels) = source.get("labels").filter(|labels| !labels.is_null()) {
            data["labels"] = labels.clone();
        }
        crate::model::payload::merge(&mut data, &extra);
        let mut event = CloudEvent::emitted(
            event_type,
            uuid::Uuid::new_v4().to_string(),
            to.shkeptncontext.clone(),
            chrono::Utc::now(),
            data,
        );
        event.source = self.name.clone();
        event.gitcommitid = to.gitcommitid.clone();
        event
    }

    /// Sends `event`; logs instead of failing (for handlers that have nobody to report to).
    pub async fn send_logged(&self, event: CloudEvent) {
        let event_type = event.event_type.clone();
        if let Err(error) = self.send(event).await {
            tracing::warn!(service = %self.name, %event_type, %error, "cannot send event");
        }
    }

    /// Sends `event`.
    pub async fn send(&self, event: CloudEvent) -> Result<(), SdkError> {
        if let Some(bus) = &self.bus {
            return bus.publish(&event).await.map_err(|e| SdkError::Unavailable(e.into()));
        }
        if let Some(client) = &self.nats {
            let payload = serde_json::to_vec(&event).expect("a CloudEvent always serialises");
            return client
                .publish(event.event_type.clone(), payload.into())
                .await
                .map_err(|e| SdkError::Nats(e.into()));
        }
        let api = self.api.as_ref().expect("a service sends over NATS or HTTP");
        // Sent again only when it was not taken (unreachable, or refused before accepting): the API
        // gives every event a new id, so resending a taken one would double it.
        let mut attempt = 0;
        loop {
            match api.send(api.client.post(api.url("/v1/event")).json(&event)).await {
                Ok(_) => return Ok(()),
                Err(error @ SdkError::Unavailable(_)) if attempt < 30 => {
                    attempt += 1;
                    tracing::debug!(%error, "sending an event failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}
