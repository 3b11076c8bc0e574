//! The actor of one project stage: it hands out each service's run slot (see [`SlotTable`]).

use std::collections::HashMap;

use actix::prelude::*;
use chrono::{DateTime, Utc};

use super::sequence::{Apply, Command, SequenceActor};
use crate::model::slots::SlotTable;

/// An execution asks for its service's slot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlotRequest {
    pub service: String,
    pub execution: String,
    pub triggered_at: DateTime<Utc>,
    /// The request's number, echoed in the grant.
    pub ticket: u64,
    pub requester: Addr<SequenceActor>,
}

/// An execution gives its slot back or withdraws its request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SlotRelease {
    pub service: String,
    pub execution: String,
}

/// After a restart: `execution` held `service`'s slot when it was stored and keeps it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RestoreHolder {
    pub service: String,
    pub execution: String,
    pub ticket: u64,
    pub holder: Addr<SequenceActor>,
}

#[derive(Default)]
pub struct StageActor {
    slots: SlotTable,
    /// Executions holding or waiting for a slot, with their latest request number. Bounded by the live
    /// executions of the stage.
    requesters: HashMap<String, (Addr<SequenceActor>, u64)>,
}

impl StageActor {
    fn grant(&mut self, grant: Option<crate::model::slots::Grant>) {
        if let Some(grant) = grant {
            if let Some((requester, ticket)) = self.requesters.get(&grant.execution) {
                requester.do_send(Apply::new(Command::SlotGranted { ticket: *ticket }));
            }
        }
    }
}

impl Actor for StageActor {
    type Context = Context<Self>;
}

impl Supervised for StageActor {}

impl Handler<SlotRequest> for StageActor {
    type Result = ();

    fn handle(&mut self, request: SlotRequest, _ctx: &mut Context<Self>) {
        self.requesters.insert(request.execution.clone(), (request.requester, request.ticket));
        let grant = self.slots.request(&request.service, &request.execution, request.triggered_at);
        self.grant(grant);
    }
}

impl Handler<SlotRelease> for StageActor {
    type Result = ();

    fn handle(&mut self, release: SlotRelease, _ctx: &mut Context<Self>) {
        // Dropping the address lets an ended execution's actor stop once nothing else refers to it.
        self.requesters.remove(&release.execution);
        let grant = self.slots.release(&release.service, &release.execution);
        self.grant(grant);
    }
}

impl Handler<RestoreHolder> for StageActor {
    type Result = ();

    fn handle(&mut self, restore: RestoreHolder, _ctx: &mut Context<Self>) {
        if self.slots.restore_holder(&restore.service, &restore.execution) {
            self.requesters.insert(restore.execution, (restore.holder, restore.ticket));
        } else {
            tracing::warn!(service = %restore.service, execution = %restore.execution, "two stored holders of one slot; the later one waits");
            self.requesters.insert(restore.execution.clone(), (restore.holder, restore.ticket));
        }
    }
}
