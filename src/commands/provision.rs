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
    /// Run only on the hosts the last run left unconverged (failed, unreachable, or never
    /// reached because a batch failed), as listed in the retry file beside the inventory.
    #[arg(long, conflicts_with = "limit")]
    pub retry_failed: bool,
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
    #[error("--retry-failed: cannot read `{}`", .path.display())]
    RetryRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--retry-failed: no host to retry: `{}` {why}", .path.display())]
    NothingToRetry { path: PathBuf, why: &'static str },
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
    let retry = retry::path(&args.inventory);
    let only = if args.retry_failed {
        Some(retry::read(&retry, &inventory)?)
    } else {
        None
    };
    let opts = Options {
        mode: if args.check { Mode::Check } else { Mode::Apply },
        diff: args.diff,
        forks: args.forks,
        limit: args.limit.clone(),
        only,
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
    if !args.check {
        if let Err(e) = retry::update(&retry, &recap) {
            eprintln!(
                "warning: the retry file `{}` was not updated: {e}",
                retry.display()
            );
        }
    }
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

/// The retry file: the hosts the last runs left unconverged, one per line, beside the
/// inventory (`production.yaml` → `production.retry`), as Ansible keeps its retry files.
mod retry {
    use std::path::{Path, PathBuf};

    use crate::engine::Recap;
    use crate::inventory::Inventory;

    use super::ProvisionError;

    pub fn path(inventory: &Path) -> PathBuf {
        let stem = inventory
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "inventory".into());
        inventory.with_file_name(format!("{stem}.retry"))
    }

    fn parse(text: &str) -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    /// The hosts to retry that the inventory still has.
    pub fn read(path: &Path, inventory: &Inventory) -> Result<Vec<String>, ProvisionError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ProvisionError::NothingToRetry {
                    path: path.to_path_buf(),
                    why: "does not exist: the last run converged every host it ran on",
                })
            }
            Err(source) => {
                return Err(ProvisionError::RetryRead {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let hosts: Vec<String> = parse(&text)
            .into_iter()
            .filter(|h| inventory.host(h).is_some())
            .collect();
        if hosts.is_empty() {
            return Err(ProvisionError::NothingToRetry {
                path: path.to_path_buf(),
                why: "lists no host of the inventory",
            });
        }
        Ok(hosts)
    }

    /// The file after a run: hosts this run converged leave it, hosts it left unconverged
    /// join it; removed when no host is left.
    pub fn update(path: &Path, recap: &Recap) -> Result<(), String> {
        let before = match std::fs::read_to_string(path) {
            Ok(t) => parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        let failed = recap.unconverged();
        let mut hosts: Vec<String> = before
            .into_iter()
            .filter(|h| !recap.hosts.contains_key(h))
            .chain(failed)
            .collect();
        hosts.sort();
        hosts.dedup();
        if hosts.is_empty() {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            };
        }
        let text = format!(
            "# hosts the last `minipaas provision` left unconverged; `--retry-failed` runs them\n{}\n",
            hosts.join("\n")
        );
        // A temp file of its own, synced, then renamed: two runs beside one inventory never
        // leave half a list.
        crate::certs::write_atomic(path, text.as_bytes(), 0o644)
            .map_err(|e| crate::error::chain(&e))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::engine::HostRecap;

        #[test]
        fn converged_hosts_leave_the_file_and_failed_ones_join_it() {
            let dir = tempfile::tempdir().unwrap();
            let inv = dir.path().join("production.yaml");
            let p = path(&inv);
            assert_eq!(p, dir.path().join("production.retry"));
            let recap = |hosts: &[(&str, bool)]| Recap {
                hosts: hosts
                    .iter()
                    .map(|(h, failed)| {
                        let r = HostRecap {
                            failed: *failed as u32,
                            ..Default::default()
                        };
                        (h.to_string(), r)
                    })
                    .collect(),
                ..Default::default()
            };
            update(&p, &recap(&[("a", false), ("b", true), ("c", true)])).unwrap();
            assert_eq!(parse(&std::fs::read_to_string(&p).unwrap()), ["b", "c"]);
            // A limited run of b alone converges it; c stays.
            update(&p, &recap(&[("b", false)])).unwrap();
            assert_eq!(parse(&std::fs::read_to_string(&p).unwrap()), ["c"]);
            update(&p, &recap(&[("c", false)])).unwrap();
            assert!(!p.exists());
        }
    }
}
