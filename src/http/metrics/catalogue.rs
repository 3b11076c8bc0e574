//! Every metric Keelson exports: its type, help text, buckets (histograms) and the label values it is
//! registered with at start, so that a counter that never moved reads 0 instead of being absent.
//! `docs/operations.md` lists the same families (a test checks both agree).

/// A metric family.
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Labels whose values are known in advance, registered at start with zero. Families whose labels
    /// are open (an HTTP route, a task name, a project) appear with their first sample.
    pub labels: &'static [(&'static str, &'static [&'static str])],
}

pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

/// HTTP requests: a millisecond to ten seconds.
const HTTP_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// From a task's completion to the next `.triggered`: ten microseconds to five seconds.
const DISPATCH_BUCKETS: &[f64] =
    &[0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 5.0];
/// What executors take for a task: a tenth of a second to four hours.
const TASK_BUCKETS: &[f64] = &[0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0];
/// Store round trips and cluster operations: half a millisecond to ten seconds.
const STORE_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

const RESULTS: &[&str] = &["pass", "warning", "fail"];

pub const FAMILIES: &[Family] = &[
    // HTTP
    Family {
        name: "keelson_http_requests_total",
        kind: Kind::Counter,
        help: "HTTP requests by method, route pattern and status.",
        labels: &[],
    },
    Family {
        name: "keelson_http_request_duration_seconds",
        kind: Kind::Histogram(HTTP_BUCKETS),
        help: "HTTP request latency by method and route pattern.",
        labels: &[],
    },
    // Sequences
    Family {
        name: "keelson_sequences",
        kind: Kind::Gauge,
        help: "Sequence executions by Keptn state, counted at scrape time.",
        labels: &[("state", &["triggered", "started", "waitingForApproval", "paused", "finished", "timedOut"])],
    },
    Family {
        name: "keelson_sequences_active",
        kind: Kind::Gauge,
        help: "Sequence executions that have not ended.",
        labels: &[],
    },
    Family {
        name: "keelson_sequences_queued",
        kind: Kind::Gauge,
        help: "Sequence executions waiting for their service's slot, by project and stage (scrape time).",
        labels: &[],
    },
    Family {
        name: "keelson_sequences_started_total",
        kind: Kind::Counter,
        help: "Sequence executions started.",
        labels: &[],
    },
    Family {
        name: "keelson_sequences_finished_total",
        kind: Kind::Counter,
        help: "Sequence executions ended, by result and status.",
        labels: &[("result", RESULTS), ("status", &["succeeded", "errored", "aborted"])],
    },
    Family {
        name: "keelson_tasks_completed_total",
        kind: Kind::Counter,
        help: "Tasks completed, by result.",
        labels: &[("result", RESULTS)],
    },
    Family {
        name: "keelson_task_duration_seconds",
        kind: Kind::Histogram(TASK_BUCKETS),
        help: "From a task's .triggered to its completion, by task.",
        labels: &[],
    },
    Family {
        name: "keelson_dispatch_latency_seconds",
        kind: Kind::Histogram(DISPATCH_BUCKETS),
        help: "From the event that completes a task to the next task's .triggered being published.",
        labels: &[],
    },
    Family {
        name: "keelson_executions_forgotten_total",
        kind: Kind::Counter,
        help: "Ended executions forgotten after their retention.",
        labels: &[],
    },
    // Actors and queues
    Family {
        name: "keelson_mailbox_full_total",
        kind: Kind::Counter,
        help: "Deliveries that waited for room in an actor's mailbox, by actor.",
        labels: &[("actor", &["ProjectActor", "SequenceActor"])],
    },
    Family {
        name: "keelson_lane_full_total",
        kind: Kind::Counter,
        help: "Events whose project lane was full (waited for, or handed back to NATS).",
        labels: &[],
    },
    Family {
        name: "keelson_lane_depth",
        kind: Kind::Gauge,
        help: "Events waiting in the project lanes for their actor (scrape time).",
        labels: &[],
    },
    Family {
        name: "keelson_actor_panics_total",
        kind: Kind::Counter,
        help: "Panics caught at an actor boundary (the actor restarted from its last state), by actor.",
        labels: &[("actor", &["sequence"])],
    },
    // Stores
    Family {
        name: "keelson_store_up",
        kind: Kind::Gauge,
        help: "1 while a store takes writes, 0 while its writes fail, by store (scrape time).",
        labels: &[],
    },
    Family {
        name: "keelson_writer_queue_depth",
        kind: Kind::Gauge,
        help: "Writes queued and not yet durable, by writer (scrape time).",
        labels: &[],
    },
    Family { name: "keelson_snapshot_writes_total", kind: Kind::Counter, help: "Snapshot writes stored.", labels: &[] },
    Family {
        name: "keelson_snapshot_batches_total",
        kind: Kind::Counter,
        help: "Round trips (batches) that stored snapshot writes.",
        labels: &[],
    },
    Family {
        name: "keelson_snapshot_batch_seconds",
        kind: Kind::Histogram(STORE_BUCKETS),
        help: "Time to store one snapshot batch.",
        labels: &[],
    },
    Family {
        name: "keelson_snapshot_write_failures_total",
        kind: Kind::Counter,
        help: "Failed snapshot batches (kept and retried).",
        labels: &[],
    },
    Family {
        name: "keelson_snapshot_unreadable_total",
        kind: Kind::Counter,
        help: "Stored execution records that could not be read at start (left in place).",
        labels: &[],
    },
    Family {
        name: "keelson_history_events_stored_total",
        kind: Kind::Counter,
        help: "Events written to the event history.",
        labels: &[],
    },
    Family {
        name: "keelson_history_batch_seconds",
        kind: Kind::Histogram(STORE_BUCKETS),
        help: "Time to write one batch of events to the history.",
        labels: &[],
    },
    Family {
        name: "keelson_history_write_failures_total",
        kind: Kind::Counter,
        help: "Failed event-history batches (retried).",
        labels: &[],
    },
    // Bus
    Family {
        name: "keelson_bus_up",
        kind: Kind::Gauge,
        help: "1 while the event bus is connected (scrape time).",
        labels: &[],
    },
    Family {
        name: "keelson_event_emit_failures_total",
        kind: Kind::Counter,
        help: "Events that could not be stored or published, by stage.",
        labels: &[("stage", &["store", "publish"])],
    },
    Family {
        name: "keelson_bus_malformed_events_total",
        kind: Kind::Counter,
        help: "Messages on the bus that are not CloudEvents (acknowledged and dropped).",
        labels: &[],
    },
    Family {
        name: "keelson_jetstream_consumer_pending",
        kind: Kind::Gauge,
        help: "Events in the stream not yet delivered to the control plane's consumer (NATS, scrape time).",
        labels: &[],
    },
    Family {
        name: "keelson_jetstream_consumer_ack_pending",
        kind: Kind::Gauge,
        help: "Events delivered to the control plane and not yet acknowledged (NATS, scrape time).",
        labels: &[],
    },
    Family {
        name: "keelson_jetstream_consumer_redelivered",
        kind: Kind::Gauge,
        help: "Events delivered more than once and not yet acknowledged (NATS, scrape time).",
        labels: &[],
    },
    // Built-in services
    Family {
        name: "keelson_approvals_total",
        kind: Kind::Counter,
        help: "Approvals the built-in approval service decided at once, or left to a person.",
        labels: &[("decision", &["approved", "declined", "manual"])],
    },
    Family {
        name: "keelson_evaluations_total",
        kind: Kind::Counter,
        help: "Quality-gate evaluations the built-in lighthouse scored, by result.",
        labels: &[("result", RESULTS)],
    },
    Family {
        name: "keelson_webhook_requests_total",
        kind: Kind::Counter,
        help: "Webhook requests by outcome.",
        labels: &[("outcome", &["succeeded", "failed", "invalid"])],
    },
    Family {
        name: "keelson_job_tasks_total",
        kind: Kind::Counter,
        help: "Job executor tasks by outcome.",
        labels: &[("outcome", &["succeeded", "failed", "stopped"])],
    },
    // Cluster
    Family {
        name: "keelson_shards_owned",
        kind: Kind::Gauge,
        help: "Shards this instance holds (cluster mode).",
        labels: &[],
    },
    Family {
        name: "keelson_shard_acquisitions_total",
        kind: Kind::Counter,
        help: "Shards acquired, by reason (cluster mode).",
        labels: &[("reason", &["placement", "orphan"])],
    },
    Family {
        name: "keelson_shard_losses_total",
        kind: Kind::Counter,
        help: "Shards lost without a handoff, by reason (cluster mode).",
        labels: &[("reason", &["lease", "guard", "fenced"])],
    },
    Family {
        name: "keelson_fenced_writes_total",
        kind: Kind::Counter,
        help: "Writes refused for a shard this instance no longer holds, by where (cluster mode).",
        labels: &[("side", &["redis", "local"])],
    },
    Family {
        name: "keelson_forwarded_total",
        kind: Kind::Counter,
        help: "Events and requests sent to another instance, by kind and outcome (cluster mode).",
        labels: &[("kind", &["event", "http"]), ("outcome", &["ok", "busy", "not-owner", "failed", "misdirected"])],
    },
    Family {
        name: "keelson_lease_renew_seconds",
        kind: Kind::Histogram(STORE_BUCKETS),
        help: "Time to renew this instance's membership and leases (cluster mode).",
        labels: &[],
    },
    Family {
        name: "keelson_shard_restore_seconds",
        kind: Kind::Histogram(STORE_BUCKETS),
        help: "Time to restore acquired shards (cluster mode).",
        labels: &[],
    },
    Family {
        name: "keelson_handoff_seconds",
        kind: Kind::Histogram(STORE_BUCKETS),
        help: "Time to drain and release a shard handed to another instance (cluster mode).",
        labels: &[],
    },
    // Process
    Family {
        name: "keelson_build_info",
        kind: Kind::Gauge,
        help: "Always 1, labelled with the running version.",
        labels: &[],
    },
    Family {
        name: "process_resident_memory_bytes",
        kind: Kind::Gauge,
        help: "Resident memory size in bytes.",
        labels: &[],
    },
    Family {
        name: "process_cpu_seconds_total",
        kind: Kind::Counter,
        help: "User and system CPU time spent in seconds.",
        labels: &[],
    },
    Family { name: "process_open_fds", kind: Kind::Gauge, help: "Open file descriptors.", labels: &[] },
    Family {
        name: "process_start_time_seconds",
        kind: Kind::Gauge,
        help: "Start time of the process since the Unix epoch in seconds.",
        labels: &[],
    },
];

/// Describes every family to the recorder and registers the known series at zero.
pub fn register() {
    for family in FAMILIES {
        match family.kind {
            Kind::Counter => metrics::describe_counter!(family.name, family.help),
            Kind::Gauge => metrics::describe_gauge!(family.name, family.help),
            Kind::Histogram(_) => metrics::describe_histogram!(family.name, family.help),
        }
        if matches!(family.kind, Kind::Histogram(_)) || is_open(family) {
            continue;
        }
        for labels in combinations(family.labels) {
            match family.kind {
                Kind::Counter => metrics::counter!(family.name, labels).increment(0),
                Kind::Gauge => metrics::gauge!(family.name, labels).increment(0.0),
                Kind::Histogram(_) => {}
            }
        }
    }
}

/// Families whose series appear with their first sample (labels with open values).
fn is_open(family: &Family) -> bool {
    matches!(
        family.name,
        "keelson_http_requests_total" | "keelson_sequences_queued" | "keelson_store_up" | "keelson_writer_queue_depth"
    ) || family.name.starts_with("keelson_jetstream_")
        || family.name == "keelson_build_info"
}

/// Every combination of the known label values.
fn combinations(labels: &[(&'static str, &'static [&'static str])]) -> Vec<Vec<metrics::Label>> {
    labels.iter().fold(vec![Vec::new()], |sets, (key, values)| {
        sets.iter()
            .flat_map(|set| {
                values.iter().map(move |value| {
                    let mut set = set.clone();
                    set.push(metrics::Label::new(*key, *value));
                    set
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_conventions_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for family in FAMILIES {
            assert!(seen.insert(family.name), "{} twice", family.name);
            assert!(!family.help.is_empty());
            match family.kind {
                Kind::Counter => assert!(family.name.ends_with("_total"), "{}", family.name),
                Kind::Histogram(buckets) => {
                    assert!(family.name.ends_with("_seconds"), "{}", family.name);
                    assert!(buckets.windows(2).all(|pair| pair[0] < pair[1]), "{} buckets ascend", family.name);
                }
                Kind::Gauge => assert!(!family.name.ends_with("_total"), "{}", family.name),
            }
        }
    }

    #[test]
    fn known_label_values_multiply_out() {
        let family = FAMILIES.iter().find(|family| family.name == "keelson_forwarded_total").unwrap();
        assert_eq!(combinations(family.labels).len(), 10);
        assert_eq!(combinations(&[]).len(), 1, "an unlabelled family has one series");
    }

    #[test]
    fn the_operations_guide_lists_every_metric() {
        let guide = include_str!("../../../docs/operations.md");
        for family in FAMILIES {
            assert!(guide.contains(&format!("`{}`", family.name)), "docs/operations.md lacks {}", family.name);
        }
    }
}
