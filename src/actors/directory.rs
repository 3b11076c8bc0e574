//! Where the project actors are: started on first use, one arbiter (thread) per core, each project on
//! the arbiter its name hashes to (its stage and sequence actors share it).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use actix::{Addr, Arbiter, ArbiterHandle, Supervisor};
use dashmap::DashMap;

use super::project::{self, ProjectActor};
use super::protocol::Retire;
use super::runtime::Runtime;

pub struct Directory {
    runtime: Arc<Runtime>,
    projects: DashMap<String, Addr<ProjectActor>>,
    arbiters: Vec<Arbiter>,
}

impl Directory {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        Self { runtime, projects: DashMap::new(), arbiters: (0..cores).map(|_| Arbiter::new()).collect() }
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    fn arbiter_for(&self, project: &str) -> ArbiterHandle {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        project.hash(&mut hasher);
        self.arbiters[(hasher.finish() as usize) % self.arbiters.len()].handle()
    }

    /// The project's actor, started on first use; `None` for a project that does not exist.
    pub fn project(&self, project: &str) -> Option<Addr<ProjectActor>> {
        if let Some(address) = self.running(project) {
            return Some(address);
        }
        self.runtime.projects.get(project)?;
        let address = match self.projects.entry(project.to_owned()) {
            dashmap::mapref::entry::Entry::Occupied(occupied) if occupied.get().connected() => occupied.get().clone(),
            entry => {
                let runtime = Arc::clone(&self.runtime);
                let name = project.to_owned();
                let address = Supervisor::start_in_arbiter(&self.arbiter_for(project), move |ctx| {
                    ctx.set_mailbox_capacity(project::MAILBOX_CAPACITY);
                    ProjectActor::new(name, runtime)
                });
                entry.insert(address.clone());
                address
            }
        };
        Some(address)
    }

    /// The project's actor if it runs; never starts one.
    pub fn running(&self, project: &str) -> Option<Addr<ProjectActor>> {
        self.projects.get(project).map(|address| address.clone()).filter(Addr::connected)
    }

    /// Forgets a deleted project's actor.
    pub fn forget(&self, project: &str) {
        self.projects.remove(project);
    }

    /// Stops the actors of every running project `moved` selects (they went to another instance)
    /// without writing or publishing anything, and forgets them; returns how many were running.
    pub async fn retire(&self, moved: impl Fn(&str) -> bool) -> usize {
        let leaving: Vec<(String, Addr<ProjectActor>)> = self
            .projects
            .iter()
            .filter(|entry| moved(entry.key()))
            .map(|entry| (entry.key().clone(), entry.value().clone()))
            .collect();
        for (project, address) in &leaving {
            self.projects.remove(project);
            let _ = address.send(Retire).await;
        }
        // A project may have had nothing running yet still have entries in the read model.
        self.runtime.read_model.forget_projects(&moved);
        leaving.len()
    }
}
