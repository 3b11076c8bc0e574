//! Pause, resume and abort of a Keptn context in this project: the flags (decided by
//! [`crate::model::sequence::control`]) are stored before the answer, the running executions told.

use actix::prelude::*;
use tokio::sync::oneshot;

use super::actor::ProjectActor;
use crate::actors::protocol::{Apply, Command, Control, ControlCommand, ControlError};
use crate::actors::sequence::SequenceActor;
use crate::actors::snapshot::{control_key, ControlRecord, SCHEMA_VERSION};
use crate::model::sequence::control;

impl ProjectActor {
    /// Applies a control command; the receivers resolve once each execution it reached has stored
    /// its changed state.
    pub(super) fn control(&mut self, control: Control) -> Result<Vec<oneshot::Receiver<()>>, ControlError> {
        let Some(execution_ids) = self.contexts.get(&control.keptn_context) else {
            return Err(ControlError::UnknownContext(control.keptn_context));
        };
        let stage = control.stage.as_deref();
        let read_model = &self.runtime.read_model;
        let in_scope: Vec<&Addr<SequenceActor>> = execution_ids
            .iter()
            .filter(|id| stage.is_none() || read_model.execution(id).is_some_and(|e| control::reaches(&e, stage)))
            .filter_map(|id| self.live.get(id))
            .collect();
        let command = match control.command {
            ControlCommand::Pause => Command::Pause,
            ControlCommand::Resume => Command::Resume,
            ControlCommand::Abort => Command::Abort,
        };
        let applied = in_scope
            .into_iter()
            .map(|address| {
                let (ack, applied) = oneshot::channel();
                address.do_send(Apply { command: command.clone(), ack: Some(ack) });
                applied
            })
            .collect();
        let shipyard = self.runtime.projects.shipyard(&self.name);
        let stages = shipyard.iter().flat_map(|shipyard| shipyard.stage_names());
        self.paused.apply(control.command, &control.keptn_context, stage, stages);
        Ok(applied)
    }

    /// Queues the pause flags for storing (synchronously, so successive changes keep their order); the
    /// future resolves once they are durable (true), or refused because the project moved (false).
    pub(super) fn save_control(&self) -> impl std::future::Future<Output = bool> {
        let record = ControlRecord { schema_version: SCHEMA_VERSION, paused: self.paused.to_stored() };
        let bytes = serde_json::to_vec(&record).expect("pause flags always serialise");
        self.runtime.snapshots.queue_in_order(control_key(&self.name), Some(bytes)).durable()
    }
}

impl Handler<Control> for ProjectActor {
    type Result = ResponseFuture<Result<(), ControlError>>;

    fn handle(&mut self, message: Control, _ctx: &mut Context<Self>) -> Self::Result {
        let outcome = self.control(message);
        let persisted = self.save_control();
        // Answers once the pause flags and the executions' changed states are durable, so an
        // acknowledged pause, resume or abort survives a crash.
        Box::pin(async move {
            if !persisted.await {
                return Err(ControlError::Moved);
            }
            let applied = outcome?;
            for execution in applied {
                // An execution that stopped meanwhile drops its acknowledgement: nothing to wait for.
                let _ = execution.await;
            }
            Ok(())
        })
    }
}
