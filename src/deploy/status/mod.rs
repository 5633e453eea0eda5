//! `deploy status`: what runs on the swarm, read in one command on the main manager, judged by
//! the one definition of a service's health ([`crate::swarm`], where the rules are written
//! down), with the versions and node names minipaas adds ([`assess`]).

mod assess;

use std::collections::BTreeSet;

use serde::Serialize;

use super::cluster::{Cluster, OpsError};
pub use crate::swarm::{Health, ServiceKind, PROVEN_SECONDS, RECENT_MINUTES};
use crate::template::shell_quote;
use assess::assess;

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
    /// A stateful runtime service: the inventory host it is pinned to, where its data is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_to: Option<String>,
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

/// Reads the state of every service of `stack` in one command on the main manager. `built`
/// names the services whose image minipaas builds and tags with the deploy version. A stack
/// with no service is [`OpsError::NoStack`].
pub async fn status(
    c: &Cluster,
    stack: &str,
    built: &BTreeSet<String>,
) -> Result<StackStatus, OpsError> {
    let out = c
        .read_on_manager(&crate::swarm::gather_script(stack))
        .await?;
    let gathered = crate::swarm::parse(&out).map_err(|source| OpsError::StatusOutput {
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
