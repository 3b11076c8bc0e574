//! Keelson: a Keptn-compatible control plane for continuous delivery and automated operations.
//!
//! # Layout
//! - [`config`]: the configuration file and `KEELSON_*` environment variables.
//! - [`model`]: pure types and rules — names, shipyards, CloudEvents, project views, paging, clocks.
//! - [`store`]: snapshot and event-history storage (Redis, MongoDB, embedded SQLite).
//! - [`bus`]: the event bus (NATS or in-process) and the emitter that stores and publishes events.
//! - [`resources`]: git-backed project resources, one repository per project, one branch per stage.
//! - [`projects`]: project, stage and service lifecycle, keeping repository, record and events consistent.
//! - [`actors`]: the actor system running sequences, with durable state and recovery.
//! - [`cluster`]: several instances sharing the servers, each project served by one of them.
//! - [`integrations`]: registered execution-plane services (uniform API) and their logs.
//! - [`secrets`]: secrets for webhooks, encrypted at rest.
//! - [`services`]: the built-in execution-plane services (approval, lighthouse, remediation, webhook).
//! - [`http`]: the REST API in Keptn's gateway layout, auth, metrics.
//! - [`server`]: start-up wiring and the HTTP server; [`check`]: `keelson check-config`.
//! - [`cli`]: the `keptn` command line.
//! - [`telemetry`]: OTLP traces of requests, events and sequence steps.
//! - [`sdk`]: write a Keptn execution-plane service (NATS or HTTP polling) in a few lines.

pub mod actors;
pub mod bus;
pub mod check;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod emitter;
pub mod http;
pub mod import;
pub mod integrations;
pub mod model;
pub mod projects;
pub mod resources;
pub mod sdk;
pub mod secrets;
pub mod server;
pub mod services;
pub mod store;
pub mod telemetry;
