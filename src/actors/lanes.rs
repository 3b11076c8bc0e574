//! Per-project delivery lanes: the router never waits on one project's full mailboxes while events for
//! other projects are ready. An event goes straight to its actor when that project has nothing queued
//! and the mailbox has room; otherwise it joins the project's lane, whose task delivers in order and
//! waits for room. A lane is bounded: when it is full, the caller decides whether to wait (HTTP, the
//! in-process bus) or to hand the event back to NATS for later redelivery.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::dev::SendError;
use actix::Recipient;
use dashmap::DashMap;
use tokio::sync::mpsc;

use super::protocol::{Apply, SequenceTriggered};

/// Events queued per project before the lane counts as full.
pub const LANE_CAPACITY: usize = 4_096;

/// An event on its way to the actor that handles it.
pub enum Delivery {
    Trigger(Recipient<SequenceTriggered>, SequenceTriggered),
    Task(Recipient<Apply>, Apply),
}

impl Delivery {
    /// Delivers now if the mailbox has room; hands the delivery back if it is full.
    fn try_now(self) -> Result<(), Delivery> {
        match self {
            Delivery::Trigger(address, message) => match address.try_send(message) {
                Err(SendError::Full(message)) => Err(Delivery::Trigger(address, message)),
                _ => Ok(()),
            },
            Delivery::Task(address, message) => match address.try_send(message) {
                Err(SendError::Full(message)) => Err(Delivery::Task(address, message)),
                _ => Ok(()),
            },
        }
    }

    /// Delivers, waiting for room in the mailbox.
    async fn wait_and_send(self) {
        match self {
            Delivery::Trigger(address, message) => {
                if let Err(SendError::Full(message)) = address.try_send(message) {
                    metrics::counter!("keelson_mailbox_full_total", "actor" => "ProjectActor").increment(1);
                    let _ = address.send(message).await;
                }
            }
            Delivery::Task(address, message) => {
                if let Err(SendError::Full(message)) = address.try_send(message) {
                    metrics::counter!("keelson_mailbox_full_total", "actor" => "SequenceActor").increment(1);
                    let _ = address.send(message).await;
                }
            }
        }
    }
}

struct Lane {
    sender: mpsc::Sender<Delivery>,
    /// Deliveries queued in or being delivered by the lane: while any are, newer ones queue behind them.
    pending: Arc<AtomicUsize>,
}

#[derive(Default)]
pub struct Lanes {
    lanes: DashMap<String, Lane>,
}

impl Lanes {
    fn lane(&self, project: &str) -> (mpsc::Sender<Delivery>, Arc<AtomicUsize>) {
        if let Some(lane) = self.lanes.get(project) {
            return (lane.sender.clone(), Arc::clone(&lane.pending));
        }
        let lane = self.lanes.entry(project.to_owned()).or_insert_with(|| {
            let (sender, mut receiver) = mpsc::channel::<Delivery>(LANE_CAPACITY);
            let pending = Arc::new(AtomicUsize::new(0));
            let lane_pending = Arc::clone(&pending);
            tokio::spawn(async move {
                while let Some(delivery) = receiver.recv().await {
                    delivery.wait_and_send().await;
                    lane_pending.fetch_sub(1, Ordering::AcqRel);
                }
            });
            Lane { sender, pending }
        });
        (lane.sender.clone(), Arc::clone(&lane.pending))
    }

    /// Delivers now or queues in the project's lane; hands the delivery back when the lane is full.
    pub fn deliver(&self, project: &str, delivery: Delivery) -> Result<(), Delivery> {
        let (sender, pending) = self.lane(project);
        let delivery = if pending.load(Ordering::Acquire) == 0 {
            match delivery.try_now() {
                Ok(()) => return Ok(()),
                Err(delivery) => delivery,
            }
        } else {
            delivery
        };
        pending.fetch_add(1, Ordering::AcqRel);
        match sender.try_send(delivery) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(delivery)) | Err(mpsc::error::TrySendError::Closed(delivery)) => {
                pending.fetch_sub(1, Ordering::AcqRel);
                metrics::counter!("keelson_lane_full_total").increment(1);
                Err(delivery)
            }
        }
    }

    /// Deliveries queued in or being delivered by any lane.
    pub fn pending(&self) -> usize {
        self.lanes.iter().map(|lane| lane.pending.load(Ordering::Acquire)).sum()
    }

    /// Like [`Lanes::deliver`], waiting for room in a full lane.
    pub async fn deliver_waiting(&self, project: &str, delivery: Delivery) {
        let Err(delivery) = self.deliver(project, delivery) else { return };
        let (sender, pending) = self.lane(project);
        pending.fetch_add(1, Ordering::AcqRel);
        if sender.send(delivery).await.is_err() {
            pending.fetch_sub(1, Ordering::AcqRel);
        }
    }
}
