//! `ENV/minipaas.yaml`: the env's settings, with the original tool's fields (`version`,
//! `project`, `api`, `deploy`) plus `inventory`, `stack`, `domain` and `runtime`. Only
//! `code init` writes this file; everything else reads it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The settings format version written by `code init`.
pub const SETTINGS_VERSION: &str = "0.1.0";

/// The whole of `minipaas.yaml`. Unknown keys are errors (with file and line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub version: String,
    /// The inventory of the cluster this env deploys to, relative to the env dir.
    #[serde(default = "default_inventory")]
    pub inventory: PathBuf,
    /// The swarm stack name: service `web` runs as `<stack>_web`.
    #[serde(default = "default_stack")]
    pub stack: String,
    /// The host a path-only route (`code route /api api`) is served on; none: any host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub project: Project,
    #[serde(default)]
    pub api: Api,
    #[serde(default)]
    pub deploy: DeploySettings,
    #[serde(default)]
    pub runtime: RuntimeSettings,
}

/// The user's compose files, relative to the env dir, in `docker stack deploy -c` order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub files: Vec<PathBuf>,
}

/// How to reach the Docker API, as in the original tool (for `shell`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Api {
    /// `tcp://host:2376`; empty: not set.
    pub host: String,
    /// The client certificate dir, relative to the env dir; empty: no TLS.
    pub tls: String,
    /// Use the local Docker engine instead of `host`.
    pub local: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySettings {
    /// The tag of built images, exported as MINIPAAS_DEPLOY_VERSION.
    #[serde(default = "default_version")]
    pub version: String,
}

impl Default for DeploySettings {
    fn default() -> Self {
        DeploySettings {
            version: default_version(),
        }
    }
}

/// The services minipaas itself runs beside the user's (`runtime/*.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    pub caddy: bool,
    pub postgres: bool,
    pub registry: bool,
    pub caddy_image: String,
    pub postgres_image: String,
    /// The port Caddy listens on and publishes on its node (host mode).
    pub http_port: u16,
    /// How services are reached on the overlay network: `vip` (Docker's default, one virtual
    /// address balanced by the kernel's IPVS) or `dnsrr` (the name resolves to every task;
    /// for hosts without IPVS, such as `minipaas lab` nodes).
    pub endpoint_mode: EndpointMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    #[default]
    Vip,
    Dnsrr,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            caddy: true,
            postgres: true,
            registry: false,
            caddy_image: "caddy:2.9.1-alpine".into(),
            postgres_image: "postgres:17.4".into(),
            http_port: 8000,
            endpoint_mode: EndpointMode::Vip,
        }
    }
}

fn default_inventory() -> PathBuf {
    // `minipaas lab up` writes `inventories/lab.yaml` beside the env dir.
    PathBuf::from("../inventories/lab.yaml")
}

fn default_stack() -> String {
    "minipaas".into()
}

fn default_version() -> String {
    "1".into()
}

impl Settings {
    /// Fresh settings for `code init`: defaults everywhere but the project files.
    pub fn new(files: Vec<PathBuf>) -> Settings {
        Settings {
            version: SETTINGS_VERSION.into(),
            inventory: default_inventory(),
            stack: default_stack(),
            domain: None,
            project: Project { files },
            api: Api::default(),
            deploy: DeploySettings::default(),
            runtime: RuntimeSettings::default(),
        }
    }
}
