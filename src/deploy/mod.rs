//! The deploy domain. On this machine: the env directory's files that say what runs on the
//! swarm (env, settings, compose, runtime, caddy, canary), pure file work. On the cluster: the
//! main manager and how to act on it (cluster), the stack's files (stack), rollouts (rollout),
//! releases recorded in the history with automatic rollback (release, history), images
//! (images), versioned secrets and configs (objects), Caddy's routes (routing), what runs and
//! how healthy it is (status), logs (logs), and restart, scale, remove (lifecycle). Cluster work
//! is plans embedded in the binary (plans) run by the engine, or reads over one connection.
//!
//! An env directory `ENV` holds:
//!
//! ```text
//! ENV/minipaas.yaml          settings: inventory, stack name, the user's compose files, API, version, runtime
//! ENV/compose.apps.yaml      minipaas's override of the user's services (networks, built images,
//!                            replicas, update policy, healthchecks, versioned secrets and configs)
//! ENV/runtime/common.yaml    overlay networks `minipaas_network` (internal) and `minipaas_public`
//! ENV/runtime/caddy.yaml     the Caddy service (when runtime.caddy)
//! ENV/runtime/postgres.yaml  the PostgreSQL service (when runtime.postgres)
//! ENV/runtime/registry.yaml  a registry:2 on a manager, port 5000 (when runtime.registry)
//! ENV/caddy.json             Caddy's JSON config: one server on :HTTP_PORT with the routes
//! ```
//!
//! The user's compose files are only ever read: everything minipaas decides goes into
//! `compose.apps.yaml`, which `docker stack deploy` merges last (see [`Env::stack_files`]).
//! Every writer here is idempotent: it writes a file only when its bytes change (atomically, by
//! temp file and rename), and output is deterministic (sorted maps, fixed field order), so a
//! second run of the same command changes nothing.

pub mod caddy;
pub mod canary;
pub mod cluster;
pub mod compose;
pub mod env;
pub mod history;
pub mod images;
pub mod lifecycle;
pub mod logs;
pub mod objects;
mod plans;
pub mod release;
pub mod rollout;
pub mod routing;
pub mod runtime;
pub mod settings;
pub mod stack;
pub mod status;

use std::path::PathBuf;

pub use caddy::{Route, RouteUrl};
pub use compose::{interpolate, Role};
pub use env::{init, versioned_name, Build, Change, Env, InitOptions, ObjectKind, Written};
pub use settings::{Api, DeploySettings, Project, RuntimeSettings, Settings};

/// Errors of the deploy environment; each names the file, service or value concerned.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error("inventory `{}`, host `{host}`: {problem}", .inventory.display())]
    BadPin {
        inventory: PathBuf,
        host: String,
        problem: String,
    },
    #[error(
        "no `minipaas.yaml` in `{dir}`: create the env with \
         `minipaas code init --env {dir} -c compose.yaml`"
    )]
    NoSettings { dir: PathBuf },
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// serde_yaml's message carries the column; `line` is repeated up front so the file and line
    /// read together.
    #[error("`{path}`{}: invalid YAML", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Yaml {
        path: PathBuf,
        line: Option<usize>,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("`{path}` line {line}: invalid JSON")]
    Json {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("`{path}` has no `services:` mapping")]
    NoServices { path: PathBuf },
    #[error("`{path}`: service `{service}`: `{field}` must be {expected}")]
    BadField {
        path: PathBuf,
        service: String,
        field: &'static str,
        expected: &'static str,
    },
    #[error(
        "`{path}` declares service `{service}`, which the minipaas runtime provides: rename it, \
         or set `runtime.{service}: false` in minipaas.yaml"
    )]
    ReservedService { path: PathBuf, service: String },
    #[error("no service `{service}` in the project files ({known})")]
    UnknownService { service: String, known: String },
    #[error("`{path}`: service `{service}`: {problem} in `{text}`")]
    Interpolation {
        path: PathBuf,
        service: String,
        problem: &'static str,
        text: String,
    },
    #[error("invalid {what} `{name}`: use letters, digits, `_` and `-`")]
    BadName { what: &'static str, name: String },
    #[error("invalid route URL `{url}`: {problem}")]
    BadUrl { url: String, problem: &'static str },
    #[error("invalid target `{target}`: expected SERVICE or SERVICE:PORT with a port 1-65535")]
    BadTarget { target: String },
    #[error(
        "invalid cron schedule `{expr}`: expected 5 or 6 space-separated fields or a descriptor \
         like `@daily`"
    )]
    BadCron { expr: String },
    #[error("`{path}`: invalid stack name `{name}`: use letters, digits, `_` and `-`")]
    BadStack { path: PathBuf, name: String },
    #[error("`{path}`: {problem}")]
    BadSettings {
        path: PathBuf,
        problem: &'static str,
    },
    #[error("canary of service `{service}`: {problem}")]
    Canary { service: String, problem: String },
    #[error("`{path}`: the route for `{dial}` does not have the shape minipaas writes")]
    BadRoute { path: PathBuf, dial: String },
}

impl DeployError {
    /// 1 when writing failed (the env may be half-written), 2 for input the user can fix.
    pub fn exit_code(&self) -> i32 {
        match self {
            DeployError::Write { .. } => 1,
            _ => 2,
        }
    }
}

/// `Some(line)` of a serde_yaml error, 1-based.
fn yaml_error(path: PathBuf, source: serde_yaml::Error) -> DeployError {
    DeployError::Yaml {
        line: source.location().map(|l| l.line()),
        path,
        source,
    }
}
