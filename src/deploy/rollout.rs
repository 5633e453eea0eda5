//! A rollout: the stack files uploaded to the manager, `docker stack deploy` when they changed,
//! and the wait until every service converged.

use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use super::cluster::{Cluster, OpsError};
use super::plans::ROLLOUT;
use super::stack::{stack_digest, StackFile, STACKS_DIR};
use crate::engine::{Event, Recap};
use crate::template::shell_quote;

/// The rollout task that runs `docker stack deploy`: changed or failed means the stack was
/// deployed (or tried to be), which is what history records.
pub const DEPLOY_TASK: &str = "docker stack deploy";

/// What a rollout is for, which decides how the wait reads a rolled-back service.
pub use crate::swarm::converge::Goal as Converge;

/// What one rollout deploys.
pub struct Rollout<'a> {
    pub stack: &'a str,
    pub files: &'a [StackFile],
    /// Services that are swarm jobs (Docker 20.10's stack deploy rejects them).
    pub jobs: &'a [String],
    pub version: &'a str,
    pub timeout: Duration,
    pub converge: Converge,
}

/// Uploads the stack files to the manager, deploys them when they changed and waits until every
/// service converged (or fails naming the service, its task errors and its last log lines).
pub async fn rollout(
    c: &Cluster,
    r: &Rollout<'_>,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let Rollout {
        stack,
        files,
        jobs,
        version,
        timeout,
        converge,
    } = *r;
    let mut contents = Map::new();
    for f in files {
        contents.insert(f.name.clone(), json!(f.content));
    }
    let compose_args: Vec<String> = files
        .iter()
        .map(|f| format!("-c {}", shell_quote(&f.name)))
        .collect();
    let mut vars = Map::new();
    vars.insert("stack".into(), json!(stack));
    vars.insert("stack_dir".into(), json!(format!("{STACKS_DIR}/{stack}")));
    vars.insert(
        "stack_file_names".into(),
        json!(files.iter().map(|f| &f.name).collect::<Vec<_>>()),
    );
    vars.insert("stack_contents".into(), Value::Object(contents));
    vars.insert("compose_args".into(), json!(compose_args.join(" ")));
    vars.insert("version".into(), json!(version));
    vars.insert("jobs".into(), json!(jobs));
    vars.insert("digest".into(), json!(stack_digest(version, files)));
    vars.insert("restore".into(), json!(converge == Converge::Restore));
    vars.insert("timeout".into(), json!(timeout.as_secs()));
    c.run("rollout.yaml", ROLLOUT, &c.on_manager(), vars, events)
        .await
}
