//! What `docker service inspect`, `docker inspect TASK` and `docker node ls` print, reduced to
//! what health and convergence need. Docker's output, not user input: unknown fields are
//! ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Gathered {
    /// `{"Missing": true}`: the stack has no service.
    #[serde(default)]
    pub missing: bool,
    /// UTC RFC 3339 times by the manager's clock: failures after `since` are recent; a
    /// replacement task running since before `proven` has proven itself.
    #[serde(default)]
    pub since: String,
    #[serde(default)]
    pub proven: String,
    #[serde(default)]
    pub services: Vec<SwarmService>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SwarmService {
    #[serde(rename = "ID")]
    pub id: String,
    pub spec: ServiceSpec,
    pub update_status: Option<UpdateStatus>,
    pub job_status: Option<JobStatus>,
}

impl SwarmService {
    /// The update's state (`updating`, `paused`, `rollback_completed`, ...), `""` without one.
    pub fn update_state(&self) -> &str {
        self.update_status
            .as_ref()
            .and_then(|u| u.state.as_deref())
            .unwrap_or_default()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub mode: Value,
    pub task_template: TaskTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskTemplate {
    pub container_spec: ContainerSpec,
    pub restart_policy: Option<RestartPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerSpec {
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RestartPolicy {
    pub condition: Option<String>,
    pub max_attempts: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStatus {
    pub state: Option<String>,
    /// When the update (or its rollback) began, UTC RFC 3339.
    pub started_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobStatus {
    pub job_iteration: Option<Iteration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Iteration {
    /// Docker leaves out a zero index.
    #[serde(default)]
    pub index: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Task {
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub slot: Option<u64>,
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub desired_state: String,
    pub status: TaskStatus,
    pub job_iteration: Option<Iteration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskStatus {
    #[serde(default)]
    pub timestamp: String,
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub err: String,
}

#[derive(Debug, Deserialize)]
pub struct Node {
    /// Possibly shortened, as `docker node ls` prints it; task node IDs are full.
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Hostname")]
    pub hostname: String,
    /// `Ready`, `Down`, ...
    #[serde(rename = "Status", default)]
    pub status: String,
}

impl Gathered {
    /// The tasks of service `id`, leaving out those on nodes that are down: their last state
    /// (often `running`) is what the node reported before it went, not what runs, as
    /// `docker service ls` counts them.
    pub fn tasks_of(&self, id: &str) -> Vec<&Task> {
        let down: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.status.eq_ignore_ascii_case("down") && !n.id.is_empty())
            .map(|n| n.id.as_str())
            .collect();
        self.tasks
            .iter()
            .filter(|t| t.service_id == id && !down.iter().any(|d| t.node_id.starts_with(d)))
            .collect()
    }
}
