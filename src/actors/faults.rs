//! Fault injection for tests of supervision and backpressure, compiled only with the
//! `fault-injection` feature (the test suite turns it on; release builds never contain it).

use std::time::Duration;

use actix::prelude::*;

use super::handle::ControlHandle;
use super::project::ProjectActor;
use super::sequence::SequenceActor;

/// The project actor handles nothing else for this long.
#[derive(Message)]
#[rtype(result = "()")]
struct Freeze(Duration);

impl Handler<Freeze> for ProjectActor {
    type Result = ();

    fn handle(&mut self, message: Freeze, ctx: &mut Context<Self>) {
        ctx.wait(tokio::time::sleep(message.0).into_actor(self));
    }
}

/// Hands `fault` to one running execution of the project; answers whether it runs.
#[derive(Message)]
#[rtype(result = "bool")]
struct ToExecution<M> {
    execution: String,
    fault: M,
}

impl<M> Handler<ToExecution<M>> for ProjectActor
where
    M: Message<Result = ()> + Send + 'static,
    SequenceActor: Handler<M>,
{
    type Result = bool;

    fn handle(&mut self, message: ToExecution<M>, _ctx: &mut Context<Self>) -> bool {
        match self.live.get(&message.execution) {
            Some(address) => {
                address.do_send(message.fault);
                true
            }
            None => false,
        }
    }
}

/// Every later step of the execution panics, ending it included.
#[derive(Message)]
#[rtype(result = "()")]
struct Break;

impl Handler<Break> for SequenceActor {
    type Result = ();

    fn handle(&mut self, _message: Break, _ctx: &mut Context<Self>) {
        self.broken = true;
    }
}

/// The next step of the execution panics.
#[derive(Message)]
#[rtype(result = "()")]
struct InjectPanic;

impl Handler<InjectPanic> for SequenceActor {
    type Result = ();

    fn handle(&mut self, _message: InjectPanic, ctx: &mut Context<Self>) {
        self.step_with(None, None, ctx, |_, _, _| panic!("injected fault"));
    }
}

impl ControlHandle {
    /// Blocks `project`'s actor for `duration`.
    pub async fn freeze_project(&self, project: &str, duration: Duration) {
        let actor = self.router().directory().project(project).expect("project exists");
        actor.send(Freeze(duration)).await.expect("project actor runs");
    }

    /// Makes every later step of running execution `execution` of `project` panic, ending it included;
    /// false if it does not run.
    pub async fn break_execution(&self, project: &str, execution: &str) -> bool {
        self.to_execution(project, execution, Break).await
    }

    /// Makes the next step of running execution `execution` of `project` panic; false if it does not run.
    pub async fn panic_execution(&self, project: &str, execution: &str) -> bool {
        self.to_execution(project, execution, InjectPanic).await
    }

    async fn to_execution<M>(&self, project: &str, execution: &str, fault: M) -> bool
    where
        M: Message<Result = ()> + Send + 'static,
        SequenceActor: Handler<M>,
    {
        let actor = self.router().directory().project(project).expect("project exists");
        let message = ToExecution { execution: execution.to_owned(), fault };
        actor.send(message).await.expect("project actor runs")
    }
}
