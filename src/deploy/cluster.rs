//! The cluster an env deploys to: its inventory, the main manager every swarm operation goes to,
//! and the two ways to act on it: plans run by the engine (changes, reported per task) and
//! reads over one connection (status, history, logs). Errors of every deploy operation.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::{self, Event, Mode, Options, Recap};
use crate::inventory::{HostName, Inventory, InventoryError};
use crate::plan::{Plan, PlanError};
use crate::transport::{HostKeyPolicy, Transport};

/// Hosts that are swarm nodes.
pub(super) const SWARM_NODES: &str = "managers:workers";

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("inventory `{}` has no host in group `managers`: deploys go to the first manager", .inventory.display())]
    NoManager { inventory: PathBuf },
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("{command} failed:\n{stderr}")]
    Local { command: String, stderr: String },
    #[error("cannot run `{program}` on this machine (is it installed?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} `{}`", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no manager of inventory `{}` answers as a swarm manager:\n{}", .inventory.display(), .tried.iter().map(|(h, why)| format!("  {h}: {why}")).collect::<Vec<_>>().join("\n"))]
    NoManagerAnswers {
        inventory: PathBuf,
        /// Each manager tried, in inventory order, with why it was passed over.
        tried: Vec<(String, String)>,
    },
    #[error("no node runs a task of service `{service}`: run `minipaas deploy rollout` first")]
    NoCaddy { service: String },
    #[error("host `{host}`: no stack `{stack}` on the swarm: run `minipaas deploy rollout` first")]
    NoStack { stack: String, host: String },
    #[error("host `{host}`: cannot read the state of the stack's services")]
    StatusOutput {
        host: String,
        #[source]
        source: serde_json::Error,
    },
    // Every transport error names its host already.
    #[error("{source}")]
    Transport {
        host: String,
        #[source]
        source: Box<crate::transport::TransportError>,
    },
    #[error("host `{host}`: `{command}` failed: {stderr}")]
    Remote {
        host: String,
        command: String,
        stderr: String,
    },
}

impl OpsError {
    /// 2 for input the user can fix before anything ran (the inventory, the plan, a stack or
    /// file that is not there), 1 when the cluster or this machine failed while acting (a
    /// manager that cannot be reached, a command that failed on it or here).
    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::NoManager { .. }
            | OpsError::Inventory(_)
            | OpsError::Plan(_)
            | OpsError::Engine(_)
            | OpsError::Io { .. }
            | OpsError::NoStack { .. } => 2,
            OpsError::Local { .. }
            | OpsError::Spawn { .. }
            | OpsError::NoCaddy { .. }
            | OpsError::NoManagerAnswers { .. }
            | OpsError::StatusOutput { .. }
            | OpsError::Transport { .. }
            | OpsError::Remote { .. } => 1,
        }
    }
}

/// The cluster an env deploys to, as its inventory describes it.
pub struct Cluster {
    pub inventory: Inventory,
    /// The manager every swarm operation goes to: the inventory's first, or after
    /// [`Cluster::reach_manager`] the first that answers.
    pub manager: HostName,
    /// Managers passed over by [`Cluster::reach_manager`], with why, in inventory order.
    pub passed_over: Vec<(HostName, String)>,
    pub mode: Mode,
    pub host_key_policy: HostKeyPolicy,
}

impl Cluster {
    pub fn load(inventory: &Path, mode: Mode) -> Result<Cluster, OpsError> {
        let inventory = Inventory::load(inventory)?;
        let manager = inventory
            .main_manager()
            .map(|h| h.name.clone())
            .ok_or_else(|| OpsError::NoManager {
                inventory: inventory.path.clone(),
            })?;
        Ok(Cluster {
            inventory,
            manager,
            passed_over: Vec::new(),
            mode,
            host_key_policy: HostKeyPolicy::Strict,
        })
    }

    pub(super) async fn run(
        &self,
        name: &str,
        text: &str,
        hosts: &str,
        vars: Map<String, Value>,
        events: UnboundedSender<Event>,
    ) -> Result<Recap, OpsError> {
        let plan = Plan::from_text(name, text)?;
        let opts = Options {
            mode: self.mode,
            limit: Some(hosts.to_string()),
            extra_vars: vars,
            host_key_policy: self.host_key_policy,
            ..Options::default()
        };
        Ok(engine::run(&self.inventory, &plan, &opts, events).await?)
    }

    /// With several managers, makes the first of the inventory's managers that answers as a
    /// swarm manager (its engine up, the swarm with a leader) the one operations go to, so
    /// that deploys go on while the main manager is down. One manager is taken as it is: its
    /// own errors say more than a probe's.
    pub async fn reach_manager(&mut self) -> Result<(), OpsError> {
        let managers: Vec<HostName> = self
            .inventory
            .groups
            .get("managers")
            .cloned()
            .unwrap_or_default();
        if managers.len() < 2 {
            return Ok(());
        }
        let mut tried = Vec::new();
        for m in managers {
            match self.answers(&m).await {
                Ok(()) => {
                    self.manager = m;
                    self.passed_over = tried;
                    return Ok(());
                }
                Err(why) => tried.push((m, why)),
            }
        }
        Err(OpsError::NoManagerAnswers {
            inventory: self.inventory.path.clone(),
            tried: tried.into_iter().map(|(h, why)| (h.0, why)).collect(),
        })
    }

    /// Whether `host` answers as a manager of a swarm that has a leader; why not, when not.
    async fn answers(&self, host: &HostName) -> Result<(), String> {
        let t = self.connect(host).await.map_err(|e| e.to_string())?;
        let out = t
            .exec(
                "docker node ls --filter role=manager --format '{{.ManagerStatus}}'",
                None,
            )
            .await;
        t.close().await;
        let out = out.map_err(|e| e.to_string())?;
        if !out.success() {
            let err = out.stderr_str();
            // A node's words reach the terminal: no control characters.
            let last = err.lines().last().unwrap_or("docker failed").trim();
            return Err(last.chars().filter(|c| !c.is_control()).collect());
        }
        if !out.stdout_str().lines().any(|l| l.trim() == "Leader") {
            return Err("the swarm has no leader".into());
        }
        Ok(())
    }

    /// "manager `node1` did not answer (...); going through `node2`", after a
    /// [`Cluster::reach_manager`] that passed a manager over.
    pub fn fallback_notice(&self) -> Option<String> {
        let skipped: Vec<String> = self
            .passed_over
            .iter()
            .map(|(h, why)| format!("manager `{h}` did not answer ({why})"))
            .collect();
        (!skipped.is_empty()).then(|| {
            format!(
                "{}; going through manager `{}`",
                skipped.join("; "),
                self.manager
            )
        })
    }

    pub(super) fn on_manager(&self) -> String {
        self.manager.0.clone()
    }

    /// A connection to `host` (an inventory name), for reads that need no plan: status,
    /// history, logs.
    pub async fn connect(&self, host: &HostName) -> Result<Transport, OpsError> {
        let h = self
            .inventory
            .host(&host.0)
            .ok_or_else(|| OpsError::NoManager {
                inventory: self.inventory.path.clone(),
            })?;
        engine::transport_for(
            &self.inventory,
            h,
            self.host_key_policy,
            Duration::from_secs(10),
        )
        .await
        .map_err(|source| OpsError::Transport {
            host: host.0.clone(),
            source: Box::new(source),
        })
    }

    /// Runs `command` on the main manager and returns its stdout; a non-zero exit is an error
    /// carrying the tail of its stderr. For reads only: changes go through plans.
    pub async fn read_on_manager(&self, command: &str) -> Result<String, OpsError> {
        let t = self.connect(&self.manager).await?;
        let out = t.exec(command, None).await;
        t.close().await;
        let out = out.map_err(|source| OpsError::Transport {
            host: self.manager.0.clone(),
            source: Box::new(source),
        })?;
        if !out.success() {
            let stderr = out.stderr_str();
            let lines: Vec<&str> = stderr.lines().collect();
            return Err(OpsError::Remote {
                host: self.manager.0.clone(),
                command: command.lines().next().unwrap_or_default().to_string(),
                stderr: lines[lines.len().saturating_sub(20)..].join("\n"),
            });
        }
        Ok(out.stdout_str())
    }
}
