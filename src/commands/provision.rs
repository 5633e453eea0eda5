//! `minipaas provision`: converge hosts from an inventory with YAML plans.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::{Map, Value};

use crate::engine::{self, Mode, Options};
use crate::inventory::Inventory;
use crate::plan::Plan;
use crate::progress::{self, Format, Progress};
use crate::source::Sources;
use crate::transport::HostKeyPolicy;

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Inventory file (YAML, or the Ansible role's INI).
    #[arg(short = 'i', long = "inventory")]
    pub inventory: PathBuf,
    /// Plan files, run in order. Default: playbooks/site.yaml beside the inventory when it
    /// exists, else the built-in one.
    pub plans: Vec<PathBuf>,
    /// Change nothing; report what would change.
    #[arg(long)]
    pub check: bool,
    /// Show a unified diff for each file that changes (or would).
    #[arg(long)]
    pub diff: bool,
    /// Only hosts matching this pattern (host or group names, globs, `,` to combine, `!` to exclude).
    #[arg(short = 'l', long)]
    pub limit: Option<String>,
    /// Only tasks with one of these tags (comma-separated).
    #[arg(short = 't', long, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Skip tasks with one of these tags (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub skip_tags: Vec<String>,
    /// Hosts in flight at once (default: all, at most 64).
    #[arg(short = 'f', long, default_value_t = 0)]
    pub forks: usize,
    /// Extra variable KEY=VALUE (VALUE read as YAML), highest precedence; repeatable.
    #[arg(short = 'e', long = "extra-vars", value_name = "KEY=VALUE")]
    pub extra_vars: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Record host keys seen for the first time instead of refusing them.
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Print ok and skipped tasks too.
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Seconds to wait for a host to answer SSH.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Exit 3 when any task changed (or, with --check, would change): a second run in CI proves
    /// the hosts had not drifted.
    #[arg(long)]
    pub fail_on_change: bool,
    /// A templates directory searched after a plan's own templates/, before templates/ beside
    /// the inventory and the built-in ones.
    #[arg(long)]
    pub templates: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("extra variable `{arg}` must be KEY=VALUE")]
    ExtraVar { arg: String },
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
}

pub fn parse_extra_vars(args: &[String]) -> Result<Map<String, Value>, ProvisionError> {
    let mut m = Map::new();
    for a in args {
        let (k, v) = a
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| ProvisionError::ExtraVar { arg: a.clone() })?;
        let v = serde_yaml::from_str::<Value>(v).unwrap_or_else(|_| Value::String(v.into()));
        m.insert(k.trim().to_string(), v);
    }
    Ok(m)
}

/// Exit 0 when every host converged, 1 when one failed or was unreachable, 3 when
/// `--fail-on-change` and something changed; errors found before connecting are returned
/// (exit 2).
pub async fn run(args: ProvisionArgs) -> Result<i32, crate::commands::Error> {
    let extra_vars = parse_extra_vars(&args.extra_vars)?;
    let inventory = Inventory::load(&args.inventory).map_err(ProvisionError::from)?;
    let sources = Sources::resolve(&args.plans, args.templates.as_deref(), &args.inventory);
    let plan =
        Plan::load_sources(&sources.plans, &sources.templates).map_err(ProvisionError::from)?;
    let opts = Options {
        mode: if args.check { Mode::Check } else { Mode::Apply },
        diff: args.diff,
        forks: args.forks,
        limit: args.limit.clone(),
        tags: args.tags.clone(),
        skip_tags: args.skip_tags.clone(),
        extra_vars,
        host_key_policy: if args.accept_new_host_keys {
            HostKeyPolicy::AcceptNew
        } else {
            HostKeyPolicy::Strict
        },
        connect_timeout: Duration::from_secs(args.connect_timeout),
        ..Options::default()
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Progress::new(args.format, args.verbose);
    let (recap, ()) = tokio::join!(
        engine::run(&inventory, &plan, &opts, tx),
        progress.render(rx)
    );
    let recap = recap.map_err(ProvisionError::from)?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&recap).unwrap_or_else(|_| "{}".into())
        ),
        Format::Human => eprint!("{}", progress::recap_table(&recap)),
    }
    if !recap.success() {
        return Ok(1);
    }
    if args.fail_on_change && recap.changed() > 0 {
        let changed: Vec<String> = recap
            .tasks
            .iter()
            .filter(|t| t.status == crate::engine::Status::Changed)
            .map(|t| format!("  {}: {} ({})", t.host, t.task, t.at))
            .collect();
        eprintln!(
            "--fail-on-change: {} task(s) {}:\n{}",
            changed.len(),
            if args.check {
                "would change"
            } else {
                "changed"
            },
            changed.join("\n")
        );
        return Ok(3);
    }
    Ok(0)
}
