//! `minipaas deploy status|logs|restart|scale|remove`: day-2 operations on the stack an env
//! deployed. Names on the command line are the services' short names (`web`), checked against
//! the stack on the swarm (and, for `remove`, the env's files) before anything changes; the
//! cluster work is deploy::status's, deploy::logs' and deploy::lifecycle's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{code, drive, open, DeployCommandError, EnvArgs, Result, Target};
use crate::deploy::cluster::{Cluster, OpsError};
use crate::deploy::lifecycle;
use crate::deploy::logs::{self, LogOptions};
use crate::deploy::status::{self, Health, ServiceKind, ServiceStatus, StackStatus};
use crate::deploy::Env;
use crate::engine::Mode;
use crate::progress::Format;
use crate::transport::TransportError;

/// `deploy status` exit code when some service is pending and none is worse.
pub const EXIT_PENDING: i32 = 3;
/// `deploy status` exit code when some service is unhealthy or failed.
pub const EXIT_UNHEALTHY: i32 = 4;

/// Where a read-only command looks.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The env directory (holds minipaas.yaml).
    #[arg(long = "env", default_value = ".")]
    pub env: PathBuf,
    /// Inventory to read from, instead of the one minipaas.yaml names.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub env: ReadArgs,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The service, as the compose files name it (`web`).
    pub service: String,
    /// Keep printing new lines until Ctrl-C.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only lines since a duration ago (`10m`, `2h`) or a time (`2024-05-01T10:00:00`).
    #[arg(long, value_name = "DURATION_OR_TIME")]
    pub since: Option<String>,
    /// Only the last N lines of each task.
    #[arg(long, value_name = "N")]
    pub tail: Option<u64>,
    #[command(flatten)]
    pub env: ReadArgs,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Services to restart; all but jobs and cron services when none is named.
    pub services: Vec<String>,
    #[command(flatten)]
    pub env: EnvArgs,
    /// Seconds to wait for the stack to converge.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// SERVICE=REPLICAS, e.g. `web=3`.
    #[arg(required = true, value_parser = parse_scale)]
    pub scales: Vec<Scale>,
    #[command(flatten)]
    pub env: EnvArgs,
    /// Seconds to wait for the stack to converge.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["services", "all"])))]
pub struct RemoveArgs {
    /// Services to remove.
    pub services: Vec<String>,
    /// Remove the whole stack: every service and its networks (volumes, secrets, configs and
    /// the deploy history stay). Named explicitly so a forgotten argument cannot take a
    /// production stack down.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub env: EnvArgs,
    /// Seconds to wait for a removed stack's services and networks to be gone.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// One `SERVICE=REPLICAS` of `deploy scale`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub service: String,
    pub replicas: u32,
}

fn parse_scale(arg: &str) -> std::result::Result<Scale, DeployCommandError> {
    let bad = || DeployCommandError::BadScale {
        arg: arg.to_string(),
    };
    let (service, n) = arg.split_once('=').ok_or_else(bad)?;
    let replicas = n.trim().parse().map_err(|_| bad())?;
    if service.is_empty() {
        return Err(bad());
    }
    Ok(Scale {
        service: service.to_string(),
        replicas,
    })
}

/// Why a lifecycle command leaves a service alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Job,
    Cron,
    Global,
    Runtime,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Job => "is a swarm job: it runs to completion at each `deploy rollout`",
            Refusal::Cron => {
                "is a cron service: swarm-cronjob starts it on its schedule (`minipaas code cron`)"
            }
            Refusal::Global => "runs one task on every node and has no replica count",
            Refusal::Runtime => "belongs to the minipaas runtime, which runs exactly one of it",
        })
    }
}

fn refusal(kind: ServiceKind) -> Option<Refusal> {
    match kind {
        ServiceKind::Job => Some(Refusal::Job),
        ServiceKind::Cron => Some(Refusal::Cron),
        ServiceKind::Global => Some(Refusal::Global),
        ServiceKind::Replicated => None,
    }
}

async fn read_target(a: &ReadArgs) -> Result<(Env, Cluster)> {
    let env = Env::load(&a.env)?;
    let inventory = a.inventory.clone().unwrap_or_else(|| env.inventory_path());
    let cluster = super::reach(&inventory, Mode::Apply).await?;
    Ok((env, cluster))
}

fn unknown(stack: &str, c: &Cluster, service: &str, known: &[String]) -> DeployCommandError {
    DeployCommandError::UnknownService {
        stack: stack.to_string(),
        host: c.manager.0.clone(),
        service: service.to_string(),
        known: known.join(", "),
    }
}

/// The stack's status; `built` services are versioned by their image tag.
async fn stack_status(env: &Env, c: &Cluster) -> Result<StackStatus> {
    let built: BTreeSet<String> = env.builds()?.into_iter().map(|b| b.service).collect();
    let mut st = status::status(c, env.stack_name(), &built).await?;
    // The cluster's inventory is the env's, already read.
    let pins = crate::deploy::runtime::pins(&c.inventory)?;
    mark_pins(
        &mut st,
        &pins,
        &crate::deploy::runtime::services(&env.settings.runtime),
    );
    Ok(st)
}

/// Stateful runtime services (`runtime` names the enabled ones) say which host keeps their
/// data, and what to do when they do not run there.
fn mark_pins(st: &mut StackStatus, pins: &BTreeMap<String, String>, runtime: &[&str]) {
    for s in &mut st.services {
        let Some(host) = pins
            .get(&s.service)
            .filter(|_| runtime.contains(&s.service.as_str()))
        else {
            continue;
        };
        if s.health != Health::Running {
            let why = s
                .message
                .take()
                .map(|m| format!("{m}; "))
                .unwrap_or_default();
            s.message = Some(format!(
                "{why}it is pinned to host `{host}`, where its data is: it runs again when that \
                 node is back (a lost node: restore a backup on another host, pin it there, \
                 provision and `code init`)"
            ));
        }
        s.pinned_to = Some(host.clone());
    }
}

pub(super) async fn status(a: &StatusArgs) -> Result<i32> {
    let (env, cluster) = read_target(&a.env).await?;
    let st = stack_status(&env, &cluster).await?;
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&st).unwrap_or_else(|_| "{}".into())
        ),
        Format::Human => print!("{}", status_table(&st)),
    }
    Ok(match st.health {
        Health::Running => 0,
        Health::Pending => EXIT_PENDING,
        Health::Unhealthy | Health::Failed => EXIT_UNHEALTHY,
    })
}

/// An aligned table, then why each troubled service is not running, then the verdict.
fn status_table(st: &StackStatus) -> String {
    let mut rows: Vec<[String; 7]> = vec![[
        "SERVICE".into(),
        "MODE".into(),
        "REPLICAS".into(),
        "HEALTH".into(),
        "VERSION".into(),
        "IMAGE".into(),
        "NODES".into(),
    ]];
    for s in &st.services {
        let replicas = match s.completed {
            Some(done) => format!("{done}/{} completed", s.desired),
            None => format!("{}/{}", s.running, s.desired),
        };
        rows.push([
            s.service.clone(),
            s.kind.as_str().into(),
            replicas,
            s.health.as_str().into(),
            s.version.clone().unwrap_or_else(|| "-".into()),
            s.image.clone(),
            if s.nodes.is_empty() {
                "-".into()
            } else {
                s.nodes.join(",")
            },
        ]);
    }
    let mut widths = [0usize; 7];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    for s in &st.services {
        if let Some(h) = &s.pinned_to {
            out.push_str(&format!("{}: pinned to host `{h}`\n", s.service));
        }
    }
    for s in &st.services {
        if let Some(m) = &s.message {
            out.push_str(&format!("{}: {}: {m}\n", s.service, s.health.as_str()));
        }
    }
    out.push_str(&format!(
        "stack `{}` on `{}`: {}\n",
        st.stack,
        st.manager,
        st.health.as_str()
    ));
    out
}

pub(super) async fn logs(a: &LogsArgs) -> Result<i32> {
    let (env, cluster) = read_target(&a.env).await?;
    let stack = env.stack_name().to_string();
    let known = status::stack_services(&cluster, &stack).await?;
    if !known.contains(&a.service) {
        return Err(unknown(&stack, &cluster, &a.service, &known));
    }
    let opts = LogOptions {
        follow: a.follow,
        since: a.since.clone(),
        tail: a.tail,
    };
    let stop = async {
        // Without a Ctrl-C handler the logs run until they end, as any command would.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let name = format!("{stack}_{}", a.service);
    match logs::logs(&cluster, &name, &opts, &mut out, &mut err, stop).await {
        Ok(Some(0)) => Ok(0),
        Ok(_) => Ok(1),
        // Our reader went away (`| head`): as good an end as any.
        Err(OpsError::Transport { source, .. })
            if matches!(&*source, TransportError::Sink { .. }) =>
        {
            Ok(0)
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn restart(a: &RestartArgs) -> Result<i32> {
    let t = open(&a.env).await?;
    let st = stack_status(&t.env, &t.cluster).await?;
    let stack = t.env.stack_name().to_string();
    let names = if a.services.is_empty() {
        st.services
            .iter()
            .filter(|s| matches!(s.kind, ServiceKind::Replicated | ServiceKind::Global))
            .map(|s| s.name.clone())
            .collect()
    } else {
        let mut names = Vec::new();
        for want in &a.services {
            let s = find(&st, &t.cluster, want)?;
            if let Some(reason @ (Refusal::Job | Refusal::Cron)) = refusal(s.kind) {
                return Err(DeployCommandError::Refused {
                    op: "restart",
                    service: want.clone(),
                    reason,
                });
            }
            names.push(s.name.clone());
        }
        names
    };
    let timeout = Duration::from_secs(a.timeout);
    let recap = drive(&t, |tx| {
        lifecycle::restart(&t.cluster, &stack, &names, timeout, tx)
    })
    .await?;
    Ok(code(&recap))
}

fn find<'a>(st: &'a StackStatus, c: &Cluster, service: &str) -> Result<&'a ServiceStatus> {
    st.services
        .iter()
        .find(|s| s.service == service)
        .ok_or_else(|| {
            let known: Vec<String> = st.services.iter().map(|s| s.service.clone()).collect();
            unknown(&st.stack, c, service, &known)
        })
}

/// Scales on the swarm, then records the counts in compose.apps.yaml so that the next rollout
/// deploys them too (that file is merged last, over the user's `deploy.replicas`). Only
/// replicated services of the user's files scale.
pub(super) async fn scale(a: &ScaleArgs) -> Result<i32> {
    let mut t = open(&a.env).await?;
    let st = stack_status(&t.env, &t.cluster).await?;
    let runtime = t.env.runtime_services();
    // The last count given for a service wins.
    let wanted: BTreeMap<&str, u32> = a
        .scales
        .iter()
        .map(|s| (s.service.as_str(), s.replicas))
        .collect();
    let mut scales = Vec::new();
    for (&service, &n) in &wanted {
        let s = find(&st, &t.cluster, service)?;
        let refused = if runtime.contains(&service) {
            Some(Refusal::Runtime)
        } else {
            refusal(s.kind)
        };
        if let Some(reason) = refused {
            return Err(DeployCommandError::Refused {
                op: "scale",
                service: service.to_string(),
                reason,
            });
        }
        scales.push((s.name.clone(), n));
    }
    let stack = t.env.stack_name().to_string();
    let timeout = Duration::from_secs(a.timeout);
    let recap = drive(&t, |tx| {
        lifecycle::scale(&t.cluster, &stack, &scales, timeout, tx)
    })
    .await?;
    if !recap.success() {
        return Ok(1);
    }
    record_replicas(&mut t, &wanted, a.env.check)?;
    Ok(0)
}

fn record_replicas(t: &mut Target, wanted: &BTreeMap<&str, u32>, check: bool) -> Result<()> {
    let pending: Vec<String> = wanted
        .iter()
        .filter(|(s, n)| t.env.recorded_replicas(s) != Some(**n))
        .map(|(s, n)| format!("{s}={n}"))
        .collect();
    if pending.is_empty() {
        eprintln!("compose.apps.yaml records these counts already; nothing to do");
        return Ok(());
    }
    if check {
        eprintln!("would record {} in compose.apps.yaml", pending.join(" "));
        return Ok(());
    }
    for (s, n) in wanted {
        t.env.set_replicas(s, *n)?;
    }
    eprintln!(
        "recorded {} in compose.apps.yaml: the next `deploy rollout` keeps them",
        pending.join(" ")
    );
    Ok(())
}

pub(super) async fn remove(a: &RemoveArgs) -> Result<i32> {
    let t = open(&a.env).await?;
    let stack = t.env.stack_name().to_string();
    // Removing what is gone already is fine: names are checked against the swarm and the env.
    let on_swarm = match status::stack_services(&t.cluster, &stack).await {
        Ok(names) => names,
        Err(OpsError::NoStack { .. }) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut known: BTreeSet<String> = on_swarm.into_iter().collect();
    known.extend(t.env.services()?);
    let mut names = Vec::new();
    for s in &a.services {
        if !known.contains(s) {
            let known: Vec<String> = known.iter().cloned().collect();
            return Err(unknown(&stack, &t.cluster, s, &known));
        }
        names.push(format!("{stack}_{s}"));
    }
    let timeout = Duration::from_secs(a.timeout);
    let recap = drive(&t, |tx| {
        lifecycle::remove(&t.cluster, &stack, &names, timeout, tx)
    })
    .await?;
    if recap.success() && !a.services.is_empty() && !a.env.check {
        eprintln!(
            "the next `minipaas deploy rollout` brings {} back unless the compose files drop it",
            a.services.join(", ")
        );
    }
    Ok(code(&recap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_arguments() {
        assert_eq!(
            parse_scale("web=3").unwrap(),
            Scale {
                service: "web".into(),
                replicas: 3
            }
        );
        assert_eq!(parse_scale("web=0").unwrap().replicas, 0);
        for bad in ["web", "web=", "=3", "web=-1", "web=x"] {
            assert!(parse_scale(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn table_is_aligned_and_says_why() {
        let svc = |service: &str, health, message: Option<&str>| ServiceStatus {
            service: service.into(),
            name: format!("st_{service}"),
            kind: ServiceKind::Replicated,
            desired: 2,
            running: 1,
            completed: None,
            image: "example-app:1".into(),
            version: Some("1".into()),
            health,
            nodes: vec!["node1".into(), "node2".into()],
            message: message.map(str::to_string),
            pinned_to: None,
        };
        let st = StackStatus {
            stack: "st".into(),
            manager: "node1".into(),
            health: Health::Failed,
            services: vec![
                svc("web", Health::Running, None),
                svc("a-long-name", Health::Failed, Some("exit 1")),
            ],
        };
        let table = status_table(&st);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("SERVICE      MODE"), "{table}");
        assert!(!table.contains("pinned"), "{table}");
        let col = lines[0].find("HEALTH").unwrap();
        assert_eq!(&lines[1][col..col + 7], "running");
        assert_eq!(&lines[2][col..col + 6], "failed");
        assert!(lines[1].ends_with("node1,node2"), "{table}");
        assert!(table.contains("a-long-name: failed: exit 1\n"), "{table}");
        assert!(
            table.ends_with("stack `st` on `node1`: failed\n"),
            "{table}"
        );
    }

    #[test]
    fn a_pinned_runtime_service_names_its_host_and_waits_for_it() {
        let svc = |service: &str, health| ServiceStatus {
            service: service.into(),
            name: format!("st_{service}"),
            kind: ServiceKind::Replicated,
            desired: 1,
            running: 0,
            completed: None,
            image: "postgres:17".into(),
            version: None,
            health,
            nodes: vec![],
            message: Some("no suitable node".into()),
            pinned_to: None,
        };
        let mut st = StackStatus {
            stack: "st".into(),
            manager: "node2".into(),
            health: Health::Pending,
            services: vec![
                svc("postgres", Health::Pending),
                svc("caddy", Health::Pending),
            ],
        };
        let pins: BTreeMap<String, String> = [
            ("postgres".to_string(), "node1".to_string()),
            ("caddy".to_string(), "node1".to_string()),
        ]
        .into();
        // Caddy is pinned in the inventory but not run by this env: not marked.
        mark_pins(&mut st, &pins, &["postgres"]);
        let pg = &st.services[0];
        assert_eq!(pg.pinned_to.as_deref(), Some("node1"));
        let m = pg.message.as_deref().unwrap();
        assert!(
            m.starts_with("no suitable node; it is pinned to host `node1`"),
            "{m}"
        );
        assert_eq!(st.services[1].pinned_to, None);
        assert_eq!(st.services[1].message.as_deref(), Some("no suitable node"));
        let table = status_table(&st);
        assert!(
            table.contains("postgres: pinned to host `node1`\n"),
            "{table}"
        );
        assert!(!table.contains("caddy: pinned"), "{table}");
    }
}
