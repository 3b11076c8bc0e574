//! The actor of one project stage: it hands out each service's run slot (see [`SlotTable`]).

use std::collections::HashMap;

use actix::prelude::*;

use super::protocol::{Apply, Command, RestoreHolder, Retire, SlotRelease, SlotRequest};
use crate::model::slots::{Grant, SlotTable};

/// Mailbox capacity. Executions reach their stage with `do_send`, which never waits, so this bounds
/// only senders that wait for room; a stage gets two messages per execution (request, release), and
/// 1 024 absorbs a burst of that many sequences starting at once.
pub const MAILBOX_CAPACITY: usize = 1024;

#[derive(Default)]
pub struct StageActor {
    slots: SlotTable,
    /// Executions holding or waiting for a slot, with their latest request number. Bounded by the live
    /// executions of the stage.
    requesters: HashMap<String, (Recipient<Apply>, u64)>,
}

impl StageActor {
    fn grant(&mut self, grant: Option<Grant>) {
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

impl Handler<Retire> for StageActor {
    type Result = ();

    /// Lets go of the executions (so that nothing keeps their actors alive) and stops.
    fn handle(&mut self, _message: Retire, ctx: &mut Context<Self>) {
        self.requesters.clear();
        self.slots = SlotTable::default();
        ctx.stop();
    }
}

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
        // Dropping the recipient lets an ended execution's actor stop once nothing else refers to it.
        self.requesters.remove(&release.execution);
        let grant = self.slots.release(&release.service, &release.execution);
        self.grant(grant);
    }
}

impl Handler<RestoreHolder> for StageActor {
    type Result = ();

    fn handle(&mut self, restore: RestoreHolder, _ctx: &mut Context<Self>) {
        if !self.slots.restore_holder(&restore.service, &restore.execution) {
            tracing::warn!(service = %restore.service, execution = %restore.execution, "two stored holders of one slot; the later one waits");
        }
        self.requesters.insert(restore.execution, (restore.holder, restore.ticket));
    }
}
