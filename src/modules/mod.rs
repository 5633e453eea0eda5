//! Modules: each answers "what is on the host vs what is wanted" and makes it so.
//!
//! A module is built from a task's rendered arguments, offers a read-only `probe` (a shell
//! snippet the engine batches with other tasks' probes into one round trip), turns what the
//! probe printed into a list of typed [`Change`]s in `check`, and carries out exactly those
//! changes in `apply`. Modules reach the host only through [`context::Context`]; they never see
//! CLI flags and never know whether the run is a check.

pub mod apt;
pub mod command;
pub mod content;
pub mod context;
pub mod cron;
pub mod docker_image;
pub mod file;
pub mod files;
pub mod get_url;
pub mod lineinfile;
pub mod swarm_converged;
pub mod swarm_node;
pub mod systemd;

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::template::{TemplateError, Templates};
use crate::transport::{Output, TransportError};
pub use context::Context;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Template,
    Copy,
    File,
    Apt,
    Systemd,
    Command,
    Shell,
    GetUrl,
    LineInFile,
    Cron,
    DockerImage,
    /// Wait until a stack's services converged; changes nothing.
    SwarmConverged,
    /// Drain a node for a Docker restart, wait for it, give it back (on a manager).
    SwarmNode,
    /// Print a message; touches no host.
    Debug,
    /// Fail the host with a message; touches no host.
    Fail,
    /// Set host variables for later tasks; touches no host.
    SetFact,
    /// Fail unless every condition holds; touches no host.
    Assert,
}

const KINDS: &[(&str, ModuleKind)] = &[
    ("template", ModuleKind::Template),
    ("copy", ModuleKind::Copy),
    ("file", ModuleKind::File),
    ("apt", ModuleKind::Apt),
    ("systemd", ModuleKind::Systemd),
    ("command", ModuleKind::Command),
    ("shell", ModuleKind::Shell),
    ("get_url", ModuleKind::GetUrl),
    ("lineinfile", ModuleKind::LineInFile),
    ("cron", ModuleKind::Cron),
    ("docker_image", ModuleKind::DockerImage),
    ("swarm_converged", ModuleKind::SwarmConverged),
    ("swarm_node", ModuleKind::SwarmNode),
    ("debug", ModuleKind::Debug),
    ("fail", ModuleKind::Fail),
    ("set_fact", ModuleKind::SetFact),
    ("assert", ModuleKind::Assert),
];

const NAMES: &[&str] = &[
    "template",
    "copy",
    "file",
    "apt",
    "systemd",
    "command",
    "shell",
    "get_url",
    "lineinfile",
    "cron",
    "docker_image",
    "swarm_converged",
    "swarm_node",
    "debug",
    "fail",
    "set_fact",
    "assert",
];

impl ModuleKind {
    pub fn names() -> &'static [&'static str] {
        NAMES
    }

    /// Accepts the `ansible.builtin.` prefix and the `service`/`systemd_service` aliases.
    pub fn from_name(name: &str) -> Option<ModuleKind> {
        let name = name.strip_prefix("ansible.builtin.").unwrap_or(name);
        let name = match name {
            "service" | "systemd_service" => "systemd",
            other => other,
        };
        KINDS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
    }

    pub fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Modules the engine evaluates itself, without a host.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            ModuleKind::Debug | ModuleKind::Fail | ModuleKind::SetFact | ModuleKind::Assert
        )
    }

    /// (allowed keys, required keys); `None` allows any key (set_fact).
    fn keys(self) -> Option<(&'static [&'static str], &'static [&'static str])> {
        use ModuleKind::*;
        Some(match self {
            Template => (
                &["src", "dest", "mode", "owner", "group", "validate"],
                &["src", "dest"],
            ),
            Copy => (
                &[
                    "src", "content", "dest", "mode", "owner", "group", "validate",
                ],
                &["dest"],
            ),
            File => (
                &["path", "dest", "state", "mode", "owner", "group", "src"],
                &[],
            ),
            Apt => (
                &[
                    "name",
                    "pkg",
                    "state",
                    "update_cache",
                    "cache_valid_time",
                    "install_recommends",
                ],
                &[],
            ),
            Systemd => (
                &["name", "state", "enabled", "daemon_reload", "masked"],
                &[],
            ),
            Command | Shell => (
                &["cmd", "chdir", "creates", "removes", "unless", "stdin"],
                &["cmd"],
            ),
            GetUrl => (
                &[
                    "url", "dest", "checksum", "mode", "owner", "group", "timeout",
                ],
                &["url", "dest", "checksum"],
            ),
            LineInFile => (
                &[
                    "path",
                    "dest",
                    "line",
                    "regexp",
                    "state",
                    "insertafter",
                    "insertbefore",
                    "create",
                    "mode",
                    "owner",
                    "group",
                ],
                &[],
            ),
            Cron => (
                &[
                    "name",
                    "job",
                    "minute",
                    "hour",
                    "day",
                    "month",
                    "weekday",
                    "special_time",
                    "user",
                    "cron_file",
                    "state",
                ],
                &["name", "cron_file"],
            ),
            DockerImage => (&["name", "id", "archive"], &["name", "id", "archive"]),
            SwarmConverged => (
                &["stack", "timeout", "since", "restore"],
                &["stack", "timeout"],
            ),
            SwarmNode => (&["node", "name", "state", "timeout"], &["node", "state"]),
            Debug => (&["msg", "var"], &[]),
            Fail => (&["msg"], &[]),
            Assert => (&["that", "fail_msg", "success_msg"], &["that"]),
            SetFact => return None,
        })
    }

    /// Turns the free form (`command: echo hi`, `debug: msg`) into a mapping and checks the
    /// keys, so a typo is a load-time error.
    pub fn normalize_args(self, args: Value) -> Result<Value, String> {
        let args = match (self, args) {
            (ModuleKind::Command | ModuleKind::Shell, Value::String(s)) => {
                serde_json::json!({ "cmd": s })
            }
            (ModuleKind::Fail | ModuleKind::Debug, Value::String(s)) => {
                serde_json::json!({ "msg": s })
            }
            (_, Value::Null) => Value::Object(Default::default()),
            (_, v @ Value::Object(_)) => v,
            (k, other) => {
                return Err(format!(
                    "`{}` takes a mapping of arguments, found `{other}`",
                    k.name()
                ))
            }
        };
        if let (Some((allowed, required)), Value::Object(map)) = (self.keys(), &args) {
            for k in map.keys() {
                if !allowed.contains(&k.as_str()) {
                    return Err(format!(
                        "`{}` has no argument `{k}` (it takes: {})",
                        self.name(),
                        allowed.join(", ")
                    ));
                }
            }
            for r in required {
                if !map.contains_key(*r) {
                    return Err(format!("`{}` needs the argument `{r}`", self.name()));
                }
            }
        }
        Ok(args)
    }

    pub fn default_task_name(self, args: &Value) -> String {
        let key = ["dest", "path", "name", "cmd", "msg", "url", "stack"]
            .iter()
            .find_map(|k| args.get(*k));
        match key {
            Some(Value::String(s)) => format!("{} {s}", self.name()),
            Some(other) => format!("{} {other}", self.name()),
            None => self.name().to_string(),
        }
    }
}

/// One difference between the host and the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Create,
    Content,
    Mode {
        from: String,
        to: String,
    },
    Owner {
        from: String,
        to: String,
    },
    Group {
        from: String,
        to: String,
    },
    Remove,
    Link {
        from: Option<String>,
        to: String,
    },
    /// A path of another kind (file where a directory is wanted) is replaced.
    Replace {
        from: String,
    },
    Install(Vec<String>),
    Uninstall(Vec<String>),
    Upgrade(Vec<String>),
    DaemonReload,
    Enable,
    Disable,
    Mask,
    Unmask,
    Start,
    Stop,
    Restart,
    Reload,
    Run(String),
    Download(String),
    LoadImage(String),
    /// Wait for something on the host; changes nothing there.
    Wait(String),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Create => write!(f, "create"),
            Change::Content => write!(f, "content"),
            Change::Mode { from, to } => write!(f, "mode {from} -> {to}"),
            Change::Owner { from, to } => write!(f, "owner {from} -> {to}"),
            Change::Group { from, to } => write!(f, "group {from} -> {to}"),
            Change::Remove => write!(f, "remove"),
            Change::Link { from: Some(a), to } => write!(f, "link {a} -> {to}"),
            Change::Link { from: None, to } => write!(f, "link -> {to}"),
            Change::Replace { from } => write!(f, "replace {from}"),
            Change::Install(p) => write!(f, "install {}", p.join(" ")),
            Change::Uninstall(p) => write!(f, "remove {}", p.join(" ")),
            Change::Upgrade(p) => write!(f, "upgrade {}", p.join(" ")),
            Change::DaemonReload => write!(f, "daemon-reload"),
            Change::Enable => write!(f, "enable"),
            Change::Disable => write!(f, "disable"),
            Change::Mask => write!(f, "mask"),
            Change::Unmask => write!(f, "unmask"),
            Change::Start => write!(f, "start"),
            Change::Stop => write!(f, "stop"),
            Change::Restart => write!(f, "restart"),
            Change::Reload => write!(f, "reload"),
            // A script's first line names it; the whole of it is in the plan.
            Change::Run(c) => match c.trim().split_once('\n') {
                Some((first, _)) => write!(f, "run `{}` …", first.trim_end()),
                None => write!(f, "run `{}`", c.trim()),
            },
            Change::Download(u) => write!(f, "download {u}"),
            Change::LoadImage(i) => write!(f, "load image {i}"),
            Change::Wait(w) => write!(f, "wait for {w}"),
        }
    }
}

/// What a module asks the host before deciding. The engine answers the probes of many tasks in
/// one script, and probes of one kind (paths, units) with one command for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// A read-only shell snippet, run in a subshell of its own; what it prints is the answer.
    Shell(String),
    /// The state of a path, links not followed ([`files::PathState`]); with `content`, the
    /// file's bytes too.
    Path { path: String, content: bool },
    /// systemd's view of a unit ([`systemd::UnitState`]).
    Unit(String),
}

/// The host's answer to a [`Probe`], of the same kind.
#[derive(Debug, Clone)]
pub enum Seen {
    Output {
        code: Option<u32>,
        stdout: String,
    },
    /// The state, or why it could not be read.
    Path(Result<files::PathState, files::PathProbeError>),
    /// The state, or why it could not be read.
    Unit(Result<systemd::UnitState, String>),
}

impl Seen {
    /// What a shell probe printed.
    pub fn output(&self) -> Result<&str, ModuleError> {
        match self {
            Seen::Output { stdout, .. } => Ok(stdout),
            other => Err(ModuleError::Probe {
                message: format!("a command's output was asked for, the answer was {other:?}"),
            }),
        }
    }
}

/// What `apply` leaves for `register`, `changed_when` and `failed_when`.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    pub output: Option<Output>,
}

/// Before/after text of a file for `--diff`.
#[derive(Debug, Clone)]
pub struct FileDiff {
    pub path: String,
    pub before: String,
    pub after: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("bad arguments: {message}")]
    Args { message: String },
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("cannot read local file `{path}`")]
    LocalFile {
        path: crate::source::SourcePath,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected answer from the host: {message}")]
    Probe { message: String },
    #[error("unexpected answer from the host")]
    PathProbe {
        #[from]
        source: files::PathProbeError,
    },
    #[error("{what} failed (exit {code}): {stderr}")]
    Failed {
        what: String,
        code: String,
        stderr: String,
    },
    #[error(transparent)]
    Checksums(#[from] get_url::ChecksumsError),
    /// A wait that ended in failure, with the report of what failed.
    #[error("{report}")]
    NotConverged { report: String },
    #[error("timed out after {seconds} s")]
    Timeout { seconds: u64 },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

pub(crate) fn args<T: DeserializeOwned>(kind: &str, v: &Value) -> Result<T, ModuleError> {
    serde_json::from_value(v.clone()).map_err(|e| ModuleError::Args {
        message: format!("`{kind}`: {e}"),
    })
}

/// What a module needs to be built besides its arguments.
pub struct BuildCtx<'a> {
    pub templates: &'a Templates,
    pub vars: &'a Value,
    pub file_dirs: &'a [crate::source::SourcePath],
}

/// A module ready to probe, check and apply on one host.
#[derive(Debug)]
pub enum Module {
    Content(content::Content),
    File(file::File),
    Apt(apt::Apt),
    Systemd(systemd::Systemd),
    Command(command::Command),
    GetUrl(get_url::GetUrl),
    LineInFile(lineinfile::LineInFile),
    Cron(cron::Cron),
    DockerImage(docker_image::DockerImage),
    SwarmConverged(swarm_converged::SwarmConverged),
    SwarmNode(swarm_node::SwarmNode),
}

impl Module {
    /// Builds from rendered arguments. Local kinds (debug, fail, ...) have no module.
    pub fn build(kind: ModuleKind, a: &Value, ctx: &BuildCtx) -> Result<Module, ModuleError> {
        Ok(match kind {
            ModuleKind::Template => Module::Content(content::Content::template(a, ctx)?),
            ModuleKind::Copy => Module::Content(content::Content::copy(a, ctx)?),
            ModuleKind::File => Module::File(file::File::new(a)?),
            ModuleKind::Apt => Module::Apt(apt::Apt::new(a)?),
            ModuleKind::Systemd => Module::Systemd(systemd::Systemd::new(a)?),
            ModuleKind::Command | ModuleKind::Shell => Module::Command(command::Command::new(a)?),
            ModuleKind::GetUrl => Module::GetUrl(get_url::GetUrl::new(a)?),
            ModuleKind::LineInFile => Module::LineInFile(lineinfile::LineInFile::new(a)?),
            ModuleKind::Cron => Module::Cron(cron::Cron::new(a)?),
            ModuleKind::DockerImage => Module::DockerImage(docker_image::DockerImage::new(a)?),
            ModuleKind::SwarmConverged => {
                Module::SwarmConverged(swarm_converged::SwarmConverged::new(a)?)
            }
            ModuleKind::SwarmNode => Module::SwarmNode(swarm_node::SwarmNode::new(a)?),
            k => {
                return Err(ModuleError::Args {
                    message: format!("`{}` runs in the engine, not on a host", k.name()),
                })
            }
        })
    }

    /// What to ask the host; the answer is handed to `check`.
    pub fn probe(&self) -> Probe {
        match self {
            Module::Content(m) => m.probe(),
            Module::File(m) => m.probe(),
            Module::Apt(m) => m.probe(),
            Module::Systemd(m) => m.probe(),
            Module::Command(m) => m.probe(),
            Module::GetUrl(m) => m.probe(),
            Module::LineInFile(m) => m.probe(),
            Module::Cron(m) => m.probe(),
            Module::DockerImage(m) => m.probe(),
            Module::SwarmConverged(m) => m.probe(),
            Module::SwarmNode(m) => m.probe(),
        }
    }

    /// The changes needed; empty when the host already matches.
    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        match self {
            Module::Content(m) => m.check(seen),
            Module::File(m) => m.check(seen),
            Module::Apt(m) => m.check(seen),
            Module::Systemd(m) => m.check(seen),
            Module::Command(m) => m.check(seen),
            Module::GetUrl(m) => m.check(seen),
            Module::LineInFile(m) => m.check(seen),
            Module::Cron(m) => m.check(seen),
            Module::DockerImage(m) => m.check(seen),
            Module::SwarmConverged(m) => m.check(seen),
            Module::SwarmNode(m) => m.check(seen),
        }
    }

    /// Carries out `changes` (never empty).
    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        match self {
            Module::Content(m) => m.apply(ctx, changes).await,
            Module::File(m) => m.apply(ctx, changes).await,
            Module::Apt(m) => m.apply(ctx, changes).await,
            Module::Systemd(m) => m.apply(ctx, changes).await,
            Module::Command(m) => m.apply(ctx).await,
            Module::GetUrl(m) => m.apply(ctx, changes).await,
            Module::LineInFile(m) => m.apply(ctx, changes).await,
            Module::Cron(m) => m.apply(ctx, changes).await,
            Module::DockerImage(m) => m.apply(ctx).await,
            Module::SwarmConverged(m) => m.apply(ctx).await,
            Module::SwarmNode(m) => m.apply(ctx).await,
        }
    }

    /// Before/after text when the change touches a file's content.
    pub async fn diff(
        &self,
        ctx: &Context<'_>,
        changes: &[Change],
    ) -> Result<Option<FileDiff>, ModuleError> {
        if !changes
            .iter()
            .any(|c| matches!(c, Change::Content | Change::Create | Change::Remove))
        {
            return Ok(None);
        }
        let (path, after) = match self {
            Module::Content(m) => (&m.dest, Some(m.content.clone())),
            Module::LineInFile(m) => (&m.path, m.wanted_content()),
            Module::Cron(m) => (&m.path, m.wanted_content()),
            Module::File(m) if changes.contains(&Change::Remove) => (&m.path, Some(Vec::new())),
            _ => return Ok(None),
        };
        let before = ctx.read_file(path).await?.unwrap_or_default();
        Ok(Some(FileDiff {
            path: path.clone(),
            before: String::from_utf8_lossy(&before).into_owned(),
            after: String::from_utf8_lossy(&after.unwrap_or_default()).into_owned(),
        }))
    }

    /// True for a module that changes nothing on the host (a wait): it runs in check mode too,
    /// and reports no change unless `changed_when` says otherwise.
    pub fn read_only(&self) -> bool {
        match self {
            Module::SwarmConverged(_) => true,
            Module::SwarmNode(m) => m.read_only(),
            _ => false,
        }
    }

    /// The remote path this task writes, if any (used to hide secret files' diffs).
    pub fn path(&self) -> Option<&str> {
        match self {
            Module::Content(m) => Some(&m.dest),
            Module::File(m) => Some(&m.path),
            Module::GetUrl(m) => Some(&m.dest),
            Module::LineInFile(m) => Some(&m.path),
            Module::Cron(m) => Some(&m.path),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
