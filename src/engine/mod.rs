//! The engine: the only place that decides whether to change a host.
//!
//! It connects each host once for the whole run, runs plays in order (every host finishes a play
//! before the next starts, so later plays can read what earlier ones registered on other hosts),
//! runs a host's tasks in order with their probes batched, stops after `check` in check mode,
//! queues handlers on change, keeps a failed or unreachable host from stopping the others, and
//! reports everything as [`Event`]s. It never prints.

mod batch;
mod failure;
mod host;
pub mod limits;
mod peers;
mod pending;
mod probe;
pub mod redact;
mod vars;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::inventory::{Connection, Host, HostName, Inventory};
use crate::plan::{Plan, TaskName};
use crate::transport::{HostKeyPolicy, LocalTransport, SshTarget, SshTransport, Transport};

pub use failure::{TaskError, TaskFailed};
pub use limits::Limits;

/// Whether the run may change hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// Probe and report what would change; change nothing.
    Check,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Produce before/after text for files that change.
    pub diff: bool,
    /// Hosts in flight; 0 = all (capped).
    pub forks: usize,
    /// Only hosts matching this pattern.
    pub limit: Option<String>,
    /// Only these hosts, by exact name (a retry's list): no pattern reading, so a host named
    /// like a group or a glob is itself only.
    pub only: Option<Vec<String>>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub extra_vars: Map<String, Value>,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// The longest one command on a host may take.
    pub task_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Apply,
            diff: false,
            forks: 0,
            limit: None,
            only: None,
            tags: Vec::new(),
            skip_tags: Vec::new(),
            extra_vars: Map::new(),
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
            task_timeout: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
}

/// What happened to one task (or one loop item) on one host. In JSON, a failure's cause is
/// `error` (`{"kind": "exit", "code": 1, "output": ...}`) and its text `message`, as for the
/// other statuses.
#[derive(Debug, Clone)]
pub struct TaskReport {
    pub host: String,
    pub play: String,
    pub task: String,
    pub status: Status,
    /// What changed (or would change in check mode), in words.
    pub changes: Vec<String>,
    /// Unified diff, when asked for and the task touched a file's content.
    pub diff: Option<String>,
    /// A debug message, or why it was skipped.
    pub message: Option<String>,
    /// Why a failed task failed.
    pub error: Option<TaskError>,
    /// `file line N` of the task in its plan.
    pub at: String,
    pub handler: bool,
    /// A failure the task said to ignore (`ignore_errors`): shown, not counted as a failed
    /// host, as Ansible counts it apart.
    pub ignored: bool,
    pub duration_ms: u64,
}

impl TaskReport {
    /// The failure with its context, for a failed task.
    pub fn failure(&self) -> Option<TaskFailed> {
        self.error.clone().map(|source| TaskFailed {
            host: self.host.clone(),
            task: self.task.clone(),
            at: self.at.clone(),
            source,
        })
    }
}

impl Serialize for TaskReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("host", &self.host)?;
        m.serialize_entry("play", &self.play)?;
        m.serialize_entry("task", &self.task)?;
        m.serialize_entry("status", &self.status)?;
        m.serialize_entry("changes", &self.changes)?;
        if let Some(d) = &self.diff {
            m.serialize_entry("diff", d)?;
        }
        match (&self.error, &self.message) {
            (Some(e), _) => m.serialize_entry("message", &e.to_string())?,
            (None, Some(t)) => m.serialize_entry("message", t)?,
            (None, None) => {}
        }
        if let Some(e) = &self.error {
            m.serialize_entry("error", e)?;
        }
        m.serialize_entry("at", &self.at)?;
        m.serialize_entry("handler", &self.handler)?;
        if self.ignored {
            m.serialize_entry("ignored", &true)?;
        }
        m.serialize_entry("duration_ms", &self.duration_ms)?;
        m.end()
    }
}

#[derive(Debug, Clone)]
pub enum Event {
    RunStart {
        hosts: Vec<HostName>,
    },
    PlayStart {
        name: String,
        hosts: Vec<HostName>,
    },
    TaskStart {
        host: HostName,
        task: TaskName,
    },
    TaskDone(TaskReport),
    Unreachable {
        host: HostName,
        error: String,
    },
    HostDone {
        host: HostName,
    },
    /// A play with `serial` starts one of its batches.
    BatchStart {
        play: String,
        number: usize,
        of: usize,
        hosts: Vec<HostName>,
    },
    /// A batch failed beyond its budget: no later batch or play runs.
    RunStopped {
        why: String,
        not_started: Vec<HostName>,
    },
    /// A line from the layer above the engine for the operator, between runs (a deploy that
    /// failed and is being rolled back). Printed whatever the format, on stderr.
    Notice(String),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct HostRecap {
    pub ok: u32,
    pub changed: u32,
    pub failed: u32,
    pub skipped: u32,
    /// Failures of tasks with `ignore_errors`.
    #[serde(skip_serializing_if = "is_zero")]
    pub ignored: u32,
    pub unreachable: bool,
    /// The run stopped (a batch failed beyond its budget) before this host's batch began.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_started: bool,
    /// The run stopped before this host ran its later plays.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unfinished: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Recap {
    pub hosts: BTreeMap<String, HostRecap>,
    pub tasks: Vec<TaskReport>,
    /// Why the run stopped before every play ran, when a batch failed beyond its budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    pub duration_ms: u64,
}

impl Recap {
    /// True when every host converged: none failed and none was unreachable.
    pub fn success(&self) -> bool {
        self.stopped.is_none() && self.hosts.values().all(|h| h.failed == 0 && !h.unreachable)
    }

    /// The hosts a retry must run: those that failed, were unreachable, or that a stopped run
    /// never finished.
    pub fn unconverged(&self) -> Vec<String> {
        self.hosts
            .iter()
            .filter(|(_, h)| h.failed > 0 || h.unreachable || h.not_started || h.unfinished)
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub fn changed(&self) -> u32 {
        self.hosts.values().map(|h| h.changed).sum()
    }

    /// Adds a later run's tasks and counts, so one command that runs several plans reports
    /// one recap.
    pub fn absorb(&mut self, later: Recap) {
        for (name, l) in later.hosts {
            let h = self.hosts.entry(name).or_default();
            h.ok += l.ok;
            h.changed += l.changed;
            h.failed += l.failed;
            h.skipped += l.skipped;
            h.ignored += l.ignored;
            h.unreachable |= l.unreachable;
            h.not_started |= l.not_started;
            h.unfinished |= l.unfinished;
            if h.error.is_none() {
                h.error = l.error;
            }
            h.duration_ms += l.duration_ms;
        }
        self.tasks.extend(later.tasks);
        if self.stopped.is_none() {
            self.stopped = later.stopped;
        }
        self.duration_ms += later.duration_ms;
    }

    fn record(&mut self, r: &TaskReport) {
        let h = self.hosts.entry(r.host.clone()).or_default();
        match r.status {
            Status::Ok => h.ok += 1,
            Status::Changed => h.changed += 1,
            Status::Failed if r.ignored => h.ignored += 1,
            Status::Failed => h.failed += 1,
            Status::Skipped => h.skipped += 1,
        }
        self.tasks.push(r.clone());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    #[error("no host matches `{pattern}`")]
    NoHosts { pattern: String },
}

/// Per-host state that lives across plays.
struct HostState {
    host: Host,
    transport: Option<Arc<Transport>>,
    /// Registered results and `set_fact`s, visible to later plays and as `hostvars`.
    facts: Map<String, Value>,
    /// The host's record of handlers not yet run; read at its first play.
    pending: Option<pending::Pending>,
    dead: bool,
    started: Instant,
}

/// Runs a plan against an inventory. Errors are only for problems found before any host is
/// contacted; host failures are in the recap.
pub async fn run(
    inventory: &Inventory,
    plan: &Plan,
    opts: &Options,
    events: UnboundedSender<Event>,
) -> Result<Recap, EngineError> {
    let started = Instant::now();
    let mut selected: Vec<HostName> = match &opts.limit {
        Some(p) => inventory.select(p)?,
        None => inventory.hosts.iter().map(|h| h.name.clone()).collect(),
    };
    if let Some(only) = &opts.only {
        selected.retain(|h| only.contains(&h.0));
    }
    if selected.is_empty() {
        let pattern = match (&opts.limit, &opts.only) {
            (_, Some(only)) => only.join(","),
            (Some(l), None) => l.clone(),
            (None, None) => "all".into(),
        };
        return Err(EngineError::NoHosts { pattern });
    }
    // Template files are parsed once per directory list, before anything connects.
    let templates = host::TemplateCache::load(plan)?;
    let mut play_hosts = Vec::new();
    for play in &plan.plays {
        let hosts: Vec<HostName> = inventory
            .select(&play.hosts)?
            .into_iter()
            .filter(|h| selected.contains(h))
            .collect();
        play_hosts.push(hosts);
    }

    let mut states: BTreeMap<HostName, HostState> = BTreeMap::new();
    for name in &selected {
        if let Some(h) = inventory.host(&name.0) {
            states.insert(
                name.clone(),
                HostState {
                    host: h.clone(),
                    transport: None,
                    facts: Map::new(),
                    pending: None,
                    dead: false,
                    started: Instant::now(),
                },
            );
        }
    }
    let _ = events.send(Event::RunStart {
        hosts: selected.clone(),
    });
    let limits = Limits::new(opts.forks, selected.len());
    let mut recap = Recap::default();
    for name in &selected {
        recap.hosts.insert(name.0.clone(), HostRecap::default());
    }
    let known_hosts = known_hosts_files(inventory);
    let groups = vars::groups_value(inventory);

    let peers = Arc::new(peers::Peers::new(inventory, known_hosts.clone(), opts));
    let plays: Vec<(&crate::plan::Play, Vec<HostName>)> =
        plan.plays.iter().zip(play_hosts).collect();
    let shared = batch::Batch {
        inventory,
        opts,
        templates: &templates,
        groups: &groups,
        limits: &limits,
        known_hosts: &known_hosts,
        peers: &peers,
        events: &events,
    };
    'plays: for (index, (play, hosts)) in plays.iter().enumerate() {
        let hosts: Vec<HostName> = hosts
            .iter()
            .filter(|h| states.get(*h).is_some_and(|s| !s.dead))
            .cloned()
            .collect();
        let _ = events.send(Event::PlayStart {
            name: play.name.clone(),
            hosts: hosts.clone(),
        });
        if hosts.is_empty() {
            continue;
        }
        let batches = crate::plan::batches(&hosts, &play.serial);
        let count = batches.len();
        for (number, batch) in batches.iter().enumerate() {
            if count > 1 {
                let _ = events.send(Event::BatchStart {
                    play: play.name.clone(),
                    number: number + 1,
                    of: count,
                    hosts: batch.clone(),
                });
            }
            let failed = batch::run_batch(play, batch, &mut states, &mut recap, shared).await;
            let Some(why) = batch::budget_spent(play, batch.len(), failed.len()) else {
                continue;
            };
            let label = if count > 1 {
                format!("batch {} of {count}", number + 1)
            } else {
                "its hosts".to_string()
            };
            let why = format!(
                "play `{}`: {label} failed ({}) {why}",
                play.name,
                failed
                    .iter()
                    .map(|h| h.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let later: Vec<&HostName> = batches[number + 1..].iter().flatten().collect();
            let rest = &plays[index + 1..];
            for (name, st) in &states {
                if st.dead {
                    continue;
                }
                let hr = recap.hosts.entry(name.0.clone()).or_default();
                if later.contains(&name) {
                    hr.not_started = true;
                } else if rest.iter().any(|(_, hs)| hs.contains(name)) {
                    hr.unfinished = true;
                }
            }
            let not_started: Vec<HostName> = later.into_iter().cloned().collect();
            let _ = events.send(Event::RunStopped {
                why: why.clone(),
                not_started,
            });
            recap.stopped = Some(why);
            break 'plays;
        }
    }
    peers.close().await;
    for st in states.values() {
        if let Some(t) = &st.transport {
            t.close().await;
        }
        let _ = events.send(Event::HostDone {
            host: st.host.name.clone(),
        });
    }
    recap.duration_ms = started.elapsed().as_millis() as u64;
    Ok(recap)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The user's known_hosts first (it receives keys accepted with `--accept-new-host-keys`), then
/// the inventory's own.
fn known_hosts_files(inv: &Inventory) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        v.push(PathBuf::from(home).join(".ssh/known_hosts"));
    }
    if let Some(k) = &inv.known_hosts {
        v.push(k.clone());
    }
    v
}

/// A connection to `host` as the engine makes it (local, or SSH with the user's and the
/// inventory's known_hosts), for commands that talk to one host outside a plan.
pub async fn transport_for(
    inventory: &Inventory,
    host: &crate::inventory::Host,
    policy: HostKeyPolicy,
    connect_timeout: Duration,
) -> Result<Transport, crate::transport::TransportError> {
    open(host, &known_hosts_files(inventory), policy, connect_timeout).await
}

async fn open(
    h: &crate::inventory::Host,
    known_hosts: &[PathBuf],
    policy: HostKeyPolicy,
    connect_timeout: Duration,
) -> Result<Transport, crate::transport::TransportError> {
    Ok(match h.connection {
        Connection::Local => Transport::Local(LocalTransport::new(h.name.0.clone())),
        Connection::Ssh => {
            let target = SshTarget {
                host: h.name.0.clone(),
                address: h.address.clone(),
                port: h.port,
                user: h.user.clone(),
                key: h.key.clone(),
                known_hosts: known_hosts.to_vec(),
                host_key_policy: policy,
                connect_timeout,
            };
            Transport::Ssh(SshTransport::connect(target).await?)
        }
    })
}

async fn connect(
    st: &mut HostState,
    opts: &Options,
    known_hosts: &[PathBuf],
) -> Result<Arc<Transport>, String> {
    if let Some(t) = &st.transport {
        return Ok(t.clone());
    }
    let t = open(
        &st.host,
        known_hosts,
        opts.host_key_policy,
        opts.connect_timeout,
    )
    .await
    .map_err(|e| crate::error::chain(&e))?;
    let t = Arc::new(t);
    st.transport = Some(t.clone());
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host task that panics fails its host with an internal error: the recap is not a
    /// success (exit 1) and the panic's message is in the host's error.
    #[tokio::test]
    async fn a_panicking_host_task_fails_its_host() {
        let mut jobs = tokio::task::JoinSet::new();
        let id = jobs
            .spawn(async {
                let overflowing: Vec<u8> = Vec::new();
                overflowing[usize::MAX / 2]
            })
            .id();
        let Some(Err(e)) = jobs.join_next_with_id().await else {
            panic!("the task should have panicked");
        };
        assert_eq!(e.id(), id);
        let mut recap = Recap::default();
        recap.hosts.insert("node1".into(), HostRecap::default());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        batch::host_panicked(&mut recap, &tx, "node", &HostName("node1".into()), e);
        assert!(!recap.success());
        let h = &recap.hosts["node1"];
        assert_eq!(h.failed, 1);
        let error = h.error.as_deref().unwrap();
        assert!(error.contains("internal error"), "{error}");
        assert!(error.contains("out of bounds"), "{error}");
        assert!(matches!(rx.try_recv(), Ok(Event::TaskDone(r)) if r.status == Status::Failed));
    }
}
