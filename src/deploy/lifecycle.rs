//! Day-2 changes to a deployed stack, on the main manager: restart, scale and remove. Each is
//! a plan embedded in the binary (src/deploy/plans/) run by the engine, so it reports
//! ok/changed, honours `--check` and is idempotent. Nothing here reads CLI flags or prints.

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::cluster::{Cluster, OpsError};
use super::plans::{LIFECYCLE_SH, REMOVE, RESTART, SCALE};
use super::stack::STACKS_DIR;
use crate::engine::{Event, Recap};

/// Forces new tasks for `services` (full names), then waits at most `timeout` until the stack
/// has converged. Always reports a change per service.
pub async fn restart(
    c: &Cluster,
    stack: &str,
    services: &[String],
    timeout: Duration,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let mut vars = Map::new();
    vars.insert("stack".into(), json!(stack));
    vars.insert("services".into(), json!(services));
    vars.insert("timeout".into(), json!(timeout.as_secs()));
    c.run("restart.yaml", RESTART, &c.manager.0, vars, events)
        .await
}

/// Sets each `(service, replicas)` (full names) unless it has that count, then waits at most
/// `timeout` until the stack has converged.
pub async fn scale(
    c: &Cluster,
    stack: &str,
    scales: &[(String, u32)],
    timeout: Duration,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let items: Vec<Value> = scales
        .iter()
        .map(|(s, n)| json!({"service": s, "replicas": n}))
        .collect();
    let mut vars = Map::new();
    vars.insert("stack".into(), json!(stack));
    vars.insert("scales".into(), json!(items));
    vars.insert("lifecycle_script".into(), json!(LIFECYCLE_SH));
    vars.insert("timeout".into(), json!(timeout.as_secs()));
    c.run("scale.yaml", SCALE, &c.manager.0, vars, events).await
}

/// Removes `services` (full names) that exist, or with none the whole stack, waiting at most
/// `timeout` until its services, networks and containers are gone. Volumes, secrets and
/// configs stay. Drops the rollout record so the next rollout deploys again.
pub async fn remove(
    c: &Cluster,
    stack: &str,
    services: &[String],
    timeout: Duration,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let mut vars = Map::new();
    vars.insert("stack".into(), json!(stack));
    vars.insert("stack_dir".into(), json!(format!("{STACKS_DIR}/{stack}")));
    vars.insert("services".into(), json!(services));
    vars.insert("lifecycle_script".into(), json!(LIFECYCLE_SH));
    vars.insert("timeout".into(), json!(timeout.as_secs()));
    c.run("remove.yaml", REMOVE, &c.manager.0, vars, events)
        .await
}
