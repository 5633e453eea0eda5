//! What `docker service inspect`, `docker inspect TASK` and `docker node ls` print, reduced to
//! what status needs. Docker's output, not user input: unknown fields are ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Gathered {
    #[serde(default)]
    pub(super) missing: bool,
    #[serde(default)]
    pub(super) since: String,
    #[serde(default)]
    pub(super) proven: String,
    #[serde(default)]
    pub(super) services: Vec<SwarmService>,
    #[serde(default)]
    pub(super) tasks: Vec<Task>,
    #[serde(default)]
    pub(super) nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SwarmService {
    #[serde(rename = "ID")]
    pub(super) id: String,
    pub(super) spec: ServiceSpec,
    pub(super) update_status: Option<UpdateStatus>,
    pub(super) job_status: Option<JobStatus>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceSpec {
    pub(super) name: String,
    #[serde(default)]
    pub(super) labels: BTreeMap<String, String>,
    pub(super) mode: Value,
    pub(super) task_template: TaskTemplate,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TaskTemplate {
    pub(super) container_spec: ContainerSpec,
    pub(super) restart_policy: Option<RestartPolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ContainerSpec {
    #[serde(default)]
    pub(super) image: String,
    #[serde(default)]
    pub(super) env: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RestartPolicy {
    pub(super) condition: Option<String>,
    pub(super) max_attempts: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdateStatus {
    pub(super) state: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct JobStatus {
    pub(super) job_iteration: Option<Iteration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Iteration {
    /// Docker leaves out a zero index.
    #[serde(default)]
    pub(super) index: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Task {
    #[serde(rename = "ServiceID")]
    pub(super) service_id: String,
    pub(super) slot: Option<u64>,
    #[serde(rename = "NodeID", default)]
    pub(super) node_id: String,
    #[serde(default)]
    pub(super) created_at: String,
    #[serde(default)]
    pub(super) desired_state: String,
    pub(super) status: TaskStatus,
    pub(super) job_iteration: Option<Iteration>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TaskStatus {
    #[serde(default)]
    pub(super) timestamp: String,
    #[serde(default)]
    pub(super) state: String,
    #[serde(default)]
    pub(super) err: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Node {
    #[serde(rename = "ID")]
    pub(super) id: String,
    #[serde(rename = "Hostname")]
    pub(super) hostname: String,
}
