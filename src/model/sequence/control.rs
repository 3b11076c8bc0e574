//! Pause, resume and abort of a Keptn context: which flags a command leaves, and which executions it
//! reaches. Keptn keeps pause flags per context and per context stage; so does Keelson.

use std::collections::BTreeSet;

use super::Execution;

/// `POST /sequence/{project}/{context}/control` states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlCommand {
    Pause,
    Resume,
    Abort,
}

/// A project's pause flags: whole contexts (`None`) and context stages (`Some(stage)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PauseFlags {
    flags: BTreeSet<(String, Option<String>)>,
}

impl PauseFlags {
    pub fn from_stored(flags: impl IntoIterator<Item = (String, Option<String>)>) -> Self {
        Self { flags: flags.into_iter().collect() }
    }

    /// The flags in a stable order, for storing.
    pub fn to_stored(&self) -> Vec<(String, Option<String>)> {
        self.flags.iter().cloned().collect()
    }

    pub fn merge(&mut self, other: PauseFlags) {
        self.flags.extend(other.flags);
    }

    /// Whether an execution of `keptn_context` in `stage` starts paused.
    pub fn is_paused(&self, keptn_context: &str, stage: &str) -> bool {
        self.flags.contains(&(keptn_context.to_owned(), None))
            || self.flags.contains(&(keptn_context.to_owned(), Some(stage.to_owned())))
    }

    /// Applies `command` for `keptn_context` (in `stage`, or the whole context). `stages` are the
    /// shipyard's stage names: resuming one stage of a paused context keeps the other stages paused.
    pub fn apply<'a>(
        &mut self,
        command: ControlCommand,
        keptn_context: &str,
        stage: Option<&str>,
        stages: impl IntoIterator<Item = &'a str>,
    ) {
        match (command, stage) {
            (ControlCommand::Pause, _) => {
                self.flags.insert((keptn_context.to_owned(), stage.map(str::to_owned)));
            }
            (ControlCommand::Resume, None) | (ControlCommand::Abort, _) => {
                self.context_ended(keptn_context);
            }
            (ControlCommand::Resume, Some(stage)) => {
                if self.flags.remove(&(keptn_context.to_owned(), None)) {
                    for other in stages.into_iter().filter(|other| *other != stage) {
                        self.flags.insert((keptn_context.to_owned(), Some(other.to_owned())));
                    }
                }
                self.flags.remove(&(keptn_context.to_owned(), Some(stage.to_owned())));
            }
        }
    }

    /// Forgets every flag of `keptn_context` (nothing of it runs any more, as Keptn cleans up when a
    /// sequence ends). Returns whether any flag was set.
    pub fn context_ended(&mut self, keptn_context: &str) -> bool {
        let before = self.flags.len();
        self.flags.retain(|(context, _)| context != keptn_context);
        self.flags.len() != before
    }
}

/// Whether a control command for `stage` (or the whole context) reaches `execution`.
pub fn reaches(execution: &Execution, stage: Option<&str>) -> bool {
    stage.is_none_or(|stage| execution.scope.stage == stage)
}

#[cfg(test)]
mod tests {
    use super::ControlCommand::*;
    use super::*;

    const STAGES: [&str; 3] = ["dev", "staging", "prod"];

    type Flags<'a> = &'a [(&'a str, Option<&'a str>)];

    fn flags(list: &[(&str, Option<&str>)]) -> PauseFlags {
        PauseFlags::from_stored(list.iter().map(|(c, s)| ((*c).to_owned(), s.map(str::to_owned))))
    }

    #[test]
    fn commands_leave_keptns_pause_flags() {
        let cases: &[(Flags, ControlCommand, &str, Option<&str>, Flags)] = &[
            (&[], Pause, "c", None, &[("c", None)]),
            (&[], Pause, "c", Some("dev"), &[("c", Some("dev"))]),
            (&[("c", None)], Resume, "c", None, &[]),
            (&[("c", None), ("c", Some("dev")), ("d", None)], Resume, "c", None, &[("d", None)]),
            // Resuming one stage of a paused context keeps the others paused.
            (&[("c", None)], Resume, "c", Some("dev"), &[("c", Some("prod")), ("c", Some("staging"))]),
            (&[("c", Some("dev")), ("c", Some("prod"))], Resume, "c", Some("dev"), &[("c", Some("prod"))]),
            (&[("c", None), ("c", Some("dev")), ("d", Some("dev"))], Abort, "c", Some("dev"), &[("d", Some("dev"))]),
            (&[("d", None)], Abort, "c", None, &[("d", None)]),
        ];
        for (before, command, context, stage, after) in cases {
            let mut state = flags(before);
            state.apply(*command, context, *stage, STAGES);
            assert_eq!(state, flags(after), "{command:?} {context} {stage:?} on {before:?}");
        }
    }

    #[test]
    fn a_flag_pauses_its_context_or_its_stage() {
        let state = flags(&[("c", None), ("d", Some("dev"))]);
        let cases =
            [("c", "dev", true), ("c", "prod", true), ("d", "dev", true), ("d", "prod", false), ("e", "dev", false)];
        for (context, stage, paused) in cases {
            assert_eq!(state.is_paused(context, stage), paused, "{context} {stage}");
        }
        let mut ended = state.clone();
        assert!(ended.context_ended("c"));
        assert!(!ended.context_ended("c"), "nothing left to forget");
        assert_eq!(ended, flags(&[("d", Some("dev"))]));
        assert_eq!(state.to_stored()[0], ("c".to_owned(), None), "stored in a stable order");
    }
}
