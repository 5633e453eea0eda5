//! Docker Swarm as minipaas reads it: what one command on a manager prints about a stack (its
//! services, all their tasks, the nodes' names), and the one definition of a service's health
//! and of a stack's convergence. `deploy status` reports the health; the `swarm_converged`
//! module, which rollouts, restarts and scales wait with, applies the same rules. Pure logic:
//! nothing here reaches a host.
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
//!
//! Convergence ([`converge`]): every service is `running`, but for what a deploy cannot wait
//! out (a rollback, a paused update, an image no node has, a job out of attempts), which fails
//! it at once.

pub mod converge;
pub mod health;
pub mod model;

use serde::Serialize;

use crate::template::shell_quote;
pub use model::Gathered;

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

/// One command on a manager for everything health needs: the stack's services, all their
/// tasks and the nodes' names, as one JSON object ([`Gathered`]; `{"Missing": true}` without
/// the stack). Swarm prunes old tasks as new ones come (a crash loop), so a task listed a
/// moment ago may be gone: `docker inspect` still prints the others, and its exit status is
/// ignored.
pub fn gather_script(stack: &str) -> String {
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

/// What [`gather_script`] printed.
pub fn parse(out: &str) -> Result<Gathered, serde_json::Error> {
    serde_json::from_str(out)
}

/// A moment given in seconds since the epoch as UTC RFC 3339 (`2026-01-01T10:00:00Z`), the
/// form Docker prints its times in; `None` out of range.
pub fn rfc3339(epoch_seconds: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(epoch_seconds).ok()?;
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn epoch_seconds_as_docker_prints_times() {
        assert_eq!(
            super::rfc3339(1_767_261_600).as_deref(),
            Some("2026-01-01T10:00:00Z")
        );
        assert_eq!(super::rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(super::rfc3339(i64::MAX), None);
    }
}
