//! Releases over time: a deploy step (rollout, rollback, canary, promote, abort) is a rollout
//! of some stack files, recorded in the stack's history on the cluster with the files it
//! deployed; a step that fails to converge rolls back to what ran before, unless told not to.
//! Going back means deploying recorded files again. Nothing here reads CLI flags or prints: the
//! engine's events, and a notice before each rollback, go to the caller's progress.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use super::canary;
use super::cluster::{Cluster, OpsError};
use super::history::{self, Action, Outcome, Record};
use super::rollout::{self, Converge, Rollout};
use super::stack::{self, StackFile};
use super::DeployError;
use crate::engine::{Event, Mode, Recap, Status};

/// What the history does not allow.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("the history of stack `{stack}` holds no successful deploy: run `minipaas deploy rollout` first")]
    NoHistory { stack: String },
    #[error("the history of stack `{stack}` holds no successful deploy of version `{version}` (it has: {known})")]
    NoSuchVersion {
        stack: String,
        version: String,
        known: String,
    },
    #[error("stack `{stack}` runs version {version}, and its history holds nothing earlier to go back to")]
    NothingBefore { stack: String, version: String },
    #[error("stack `{stack}` runs no canary: start one with `minipaas deploy canary SERVICE`")]
    NoCanary { stack: String },
}

/// What happens when a deploy fails to converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Deploy again what ran before (from the history).
    RollBack,
    /// Leave the stack as the failed deploy left it (`--no-rollback`).
    Leave,
}

/// One deploy step to record.
pub struct Step<'a> {
    pub action: Action,
    /// The `MINIPAAS_DEPLOY_VERSION` the files were deployed with.
    pub version: &'a str,
    pub files: &'a [StackFile],
    pub detail: String,
    /// Swarm jobs among the services (checked against the Docker version).
    pub jobs: &'a [String],
    pub converge: Converge,
}

/// True when the recap's `docker stack deploy` ran (or failed): a deploy happened.
fn deployed(recap: &Recap) -> bool {
    recap.tasks.iter().any(|t| {
        t.task == rollout::DEPLOY_TASK && matches!(t.status, Status::Changed | Status::Failed)
    })
}

/// The releases of one stack on one cluster, reporting to `events`.
pub struct Releases<'a> {
    pub cluster: &'a Cluster,
    pub stack: &'a str,
    pub timeout: Duration,
    pub events: UnboundedSender<Event>,
}

impl Releases<'_> {
    fn notice(&self, text: String) {
        let _ = self.events.send(Event::Notice(text));
    }

    /// Deploys the step's files and waits for them; records the step when a deploy happened
    /// (not in check mode, not when the files were already deployed). Returns the recap and
    /// whether a deploy happened and failed to converge.
    async fn deploy_and_record(&self, step: &Step<'_>) -> Result<(Recap, bool), OpsError> {
        let rollout = Rollout {
            stack: self.stack,
            files: step.files,
            jobs: step.jobs,
            version: step.version,
            timeout: self.timeout,
            converge: step.converge,
        };
        let mut recap = rollout::rollout(self.cluster, &rollout, self.events.clone()).await?;
        if self.cluster.mode == Mode::Check || !deployed(&recap) {
            return Ok((recap, false));
        }
        let ok = recap.success();
        let record = Record::new(
            step.action,
            step.version,
            Outcome::of(ok),
            &stack::stack_digest(step.version, step.files),
        )
        .with_files(step.files)
        .with_detail(step.detail.clone());
        recap
            .absorb(history::record(self.cluster, self.stack, &record, self.events.clone()).await?);
        Ok((recap, !ok))
    }

    /// Deploys and records `step`; when it failed (and `on_failure` says so) deploys again the
    /// current step of `before`, the history as it was. Returns the combined recap.
    pub async fn deploy(
        &self,
        step: Step<'_>,
        on_failure: OnFailure,
        before: &[Record],
    ) -> Result<Recap, OpsError> {
        let (mut recap, failed) = self.deploy_and_record(&step).await?;
        if !failed {
            return Ok(recap);
        }
        let action = step.action.as_str();
        if on_failure == OnFailure::Leave {
            self.notice(format!(
                "the {action} failed; the stack is left as it is (--no-rollback)"
            ));
            return Ok(recap);
        }
        let Some(target) = history::current(before) else {
            self.notice(format!(
                "the {action} failed, and the history of `{}` holds no earlier successful \
                 deploy to go back to",
                self.stack
            ));
            return Ok(recap);
        };
        self.notice(format!(
            "the {action} failed; rolling back to version {} (the {} of {} by {})",
            target.version,
            target.action.as_str(),
            target.time,
            target.by
        ));
        let detail = format!(
            "automatic, after the failed {action} of version {}",
            step.version
        );
        recap.absorb(self.restore(target, Action::Rollback, detail).await?);
        Ok(recap)
    }

    /// Deploys a recorded step's files again and records that as `action`.
    pub async fn restore(
        &self,
        target: &Record,
        action: Action,
        detail: String,
    ) -> Result<Recap, OpsError> {
        let files = target.stack_files();
        let step = Step {
            action,
            version: &target.version,
            files: &files,
            detail,
            jobs: &[],
            converge: Converge::Restore,
        };
        Ok(self.deploy_and_record(&step).await?.0)
    }
}

/// The step `deploy rollback` goes back to, with the one running now: the named version's last
/// successful deploy, or the successful deploy before the current one.
pub fn rollback_target<'a>(
    records: &'a [Record],
    stack: &str,
    to: Option<&str>,
) -> Result<(&'a Record, &'a Record), ReleaseError> {
    let current = history::current(records).ok_or_else(|| ReleaseError::NoHistory {
        stack: stack.to_string(),
    })?;
    let target = match to {
        Some(v) => history::of_version(records, v).ok_or_else(|| {
            let mut known: Vec<&str> = records
                .iter()
                .filter(|r| r.result == Outcome::Succeeded && r.action != Action::Canary)
                .map(|r| r.version.as_str())
                .collect();
            known.dedup();
            ReleaseError::NoSuchVersion {
                stack: stack.to_string(),
                version: v.to_string(),
                known: known.join(", "),
            }
        })?,
        None => history::previous(records, current).ok_or_else(|| ReleaseError::NothingBefore {
            stack: stack.to_string(),
            version: current.version.clone(),
        })?,
    };
    Ok((current, target))
}

/// The stable step (the last successful deploy that was not a canary).
pub fn stable<'a>(records: &'a [Record], stack: &str) -> Result<&'a Record, ReleaseError> {
    history::stable(records).ok_or_else(|| ReleaseError::NoHistory {
        stack: stack.to_string(),
    })
}

/// The canary step running now.
pub fn running_canary<'a>(records: &'a [Record], stack: &str) -> Result<&'a Record, ReleaseError> {
    history::current(records)
        .filter(|r| r.action == Action::Canary)
        .ok_or_else(|| ReleaseError::NoCanary {
            stack: stack.to_string(),
        })
}

/// The files of a canary step: the stable step's, and `service` of `new_files` (the env's
/// version) as `SERVICE-canary` with `replicas` tasks next to them.
pub async fn canary_files(
    cluster: &Cluster,
    stack: &str,
    stable: &Record,
    new_files: &[StackFile],
    version: &str,
    service: &str,
    replicas: u32,
) -> Result<Vec<StackFile>, CanaryError> {
    let merged = stack::merged_config(cluster, new_files, version).await?;
    let content = canary::file(&merged, stack, service, replicas)?;
    let mut files = stable.stack_files();
    files.push(StackFile {
        name: "99-canary.yaml".into(),
        content,
    });
    Ok(files)
}

#[derive(Debug, thiserror::Error)]
pub enum CanaryError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error(transparent)]
    Env(#[from] DeployError),
}
