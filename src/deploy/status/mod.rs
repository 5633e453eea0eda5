//! `deploy status`: what runs on the swarm, read in one command on the main manager, and the
//! one definition of a service's health.
//!
//! Health, per service (the worst of them is the stack's):
//! - `running`: every desired task runs (for a service with a healthcheck, swarm counts a task
//!   as running only once it is healthy), and those that replaced a recently failed task have
//!   run for [`PROVEN_SECONDS`]; a job completed; a cron service whose last run did not
//!   fail (0/0 between runs).
//! - `pending`: fewer tasks run than desired and none failed recently (starting, pulling, no
//!   node free yet), an update is in flight, or a job is still running.
//! - `unhealthy`: fewer run than desired and tasks failed recently (within [`RECENT_MINUTES`]
//!   by the manager's clock) while some still run, or a task that replaced one of them has
//!   only just started (a crash loop caught between two failures), or the failures were failed
//!   healthchecks (swarm kills an unhealthy task, so a failing healthcheck shows as failed
//!   tasks), or an update paused on a failure.
//! - `failed`: nothing runs and tasks failed recently or every slot's latest task failed; a job
//!   that ran out of attempts; a cron service whose last run failed.

mod health;
mod model;

use std::collections::BTreeSet;

use serde::Serialize;

use super::cluster::{Cluster, OpsError};
use crate::template::shell_quote;
use health::assess;
use model::Gathered;

/// How far back a failed task counts as a current problem.
pub const RECENT_MINUTES: u32 = 5;

/// How long a task that replaced a recently failed one must have run to count as running: a
/// crashing container runs for a moment between failures.
pub const PROVEN_SECONDS: u32 = 30;

/// How a service runs, as swarm and swarm-cronjob see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    Replicated,
    Global,
    /// `replicated-job` or `global-job`: runs to completion.
    Job,
    /// Replicated, started by swarm-cronjob (`swarm.cronjob.enable=true`).
    Cron,
}

impl ServiceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Replicated => "replicated",
            ServiceKind::Global => "global",
            ServiceKind::Job => "job",
            ServiceKind::Cron => "cron",
        }
    }
}

/// A service's health, in increasing order of trouble (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Running,
    Pending,
    Unhealthy,
    Failed,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Running => "running",
            Health::Pending => "pending",
            Health::Unhealthy => "unhealthy",
            Health::Failed => "failed",
        }
    }
}

/// One service of the stack as `deploy status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceStatus {
    /// The name in the compose files (`web`).
    pub service: String,
    /// The swarm service (`<stack>_web`).
    pub name: String,
    pub kind: ServiceKind,
    /// Tasks wanted: replicas; for a global service the nodes it runs on; for a job its
    /// completions.
    pub desired: u64,
    /// Tasks running now.
    pub running: u64,
    /// Jobs only: tasks of the current run that completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
    pub image: String,
    /// The deployed version: the image tag of a service minipaas builds, else the service's
    /// MINIPAAS_DEPLOY_VERSION environment variable; `None` for images minipaas does not version.
    pub version: Option<String>,
    pub health: Health,
    /// Nodes running its tasks, sorted.
    pub nodes: Vec<String>,
    /// Why it is not running: the latest task error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `deploy status` of a whole stack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StackStatus {
    pub stack: String,
    pub manager: String,
    /// The worst health of its services.
    pub health: Health,
    pub services: Vec<ServiceStatus>,
}

/// One command on the manager for everything status needs: the stack's services, all their
/// tasks and the nodes' names, as one JSON object (`{"Missing": true}` without the stack).
/// Swarm prunes old tasks as new ones come (a crash loop), so a task listed a moment ago may
/// be gone: `docker inspect` still prints the others, and its exit status is ignored.
fn gather_script(stack: &str) -> String {
    let stack = shell_quote(stack);
    format!(
        "set -e; ids=$(docker stack services -q {stack}); \
         if [ -z \"$ids\" ]; then echo '{{\"Missing\": true}}'; exit 0; fi; \
         printf '{{\"Since\": \"%s\", \"Proven\": \"%s\", \"Services\": ' \
           \"$(date -u -d '{RECENT_MINUTES} minutes ago' +%Y-%m-%dT%H:%M:%SZ)\" \
           \"$(date -u -d '{PROVEN_SECONDS} seconds ago' +%Y-%m-%dT%H:%M:%SZ)\"; \
         docker service inspect $ids; printf ', \"Tasks\": '; \
         tasks=$(docker service ps -q --no-trunc $ids); \
         if [ -n \"$tasks\" ]; then docker inspect $tasks 2>/dev/null || true; else echo '[]'; fi; \
         printf ', \"Nodes\": ['; docker node ls --format '{{{{json .}}}}' | paste -sd, -; echo ']}}'"
    )
}

/// Reads the state of every service of `stack` in one command on the main manager. `built`
/// names the services whose image minipaas builds and tags with the deploy version. A stack
/// with no service is [`OpsError::NoStack`].
pub async fn status(
    c: &Cluster,
    stack: &str,
    built: &BTreeSet<String>,
) -> Result<StackStatus, OpsError> {
    let out = c.read_on_manager(&gather_script(stack)).await?;
    let gathered: Gathered =
        serde_json::from_str(&out).map_err(|source| OpsError::StatusOutput {
            host: c.manager.0.clone(),
            source,
        })?;
    if gathered.missing {
        return Err(OpsError::NoStack {
            stack: stack.to_string(),
            host: c.manager.0.clone(),
        });
    }
    let services = assess(stack, &gathered, built);
    Ok(StackStatus {
        stack: stack.to_string(),
        manager: c.manager.0.clone(),
        health: services
            .iter()
            .map(|s| s.health)
            .max()
            .unwrap_or(Health::Running),
        services,
    })
}

/// The services of `stack` by their short names, sorted; [`OpsError::NoStack`] without any.
pub async fn stack_services(c: &Cluster, stack: &str) -> Result<Vec<String>, OpsError> {
    let out = c
        .read_on_manager(&format!(
            "docker stack services --format '{{{{.Name}}}}' {}",
            shell_quote(stack)
        ))
        .await?;
    let prefix = format!("{stack}_");
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix).map(str::to_string))
        .collect();
    if names.is_empty() {
        return Err(OpsError::NoStack {
            stack: stack.to_string(),
            host: c.manager.0.clone(),
        });
    }
    names.sort();
    Ok(names)
}
