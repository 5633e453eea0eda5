//! Releases over time: `deploy rollout` (with its automatic rollback), `deploy history`,
//! `deploy rollback` and `deploy canary [promote|abort]`. Every step that deploys is written to
//! the stack's history on the cluster (deploy::history) with the files it deployed, so going
//! back means deploying those files again.

use std::time::Duration;

use clap::Subcommand;

use super::deploy::{code, finish, open, run_op, stack_files, DeployCommandError, EnvArgs, Target};
use crate::deploy::canary;
use crate::deploy::history::{self, Action, Outcome, Record};
use crate::deploy::rollout::{self, Converge, Rollout};
use crate::deploy::stack::{self, StackFile};
use crate::engine::{Mode, Recap, Status};
use crate::progress::Format;

type Result<T> = std::result::Result<T, DeployCommandError>;

#[derive(Debug, Subcommand)]
pub enum CanaryAction {
    /// Roll the env's version out to the whole service; the canary goes.
    Promote {
        #[command(flatten)]
        env: EnvArgs,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Remove the canary; the service stays on its version.
    Abort {
        #[command(flatten)]
        env: EnvArgs,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

/// What happens when a deploy fails to converge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Deploy again what ran before (from the history).
    RollBack,
    /// Leave the stack as the failed deploy left it (`--no-rollback`).
    Leave,
}

/// One deploy step to record.
struct Step<'a> {
    action: Action,
    /// The `MINIPAAS_DEPLOY_VERSION` the files were deployed with.
    version: &'a str,
    files: &'a [StackFile],
    detail: String,
    /// Swarm jobs among the services (checked against the Docker version).
    jobs: &'a [String],
    converge: Converge,
}

/// True when the recap's `docker stack deploy` ran (or failed): a deploy happened.
fn deployed(recap: &Recap) -> bool {
    recap.tasks.iter().any(|t| {
        t.task == rollout::DEPLOY_TASK && matches!(t.status, Status::Changed | Status::Failed)
    })
}

async fn history_of(t: &Target, stack: &str) -> Result<Vec<Record>> {
    Ok(history::read(&t.cluster, stack).await?)
}

/// Deploys the step's files and waits for them; records the step when a deploy happened (not
/// in check mode, not when the files were already deployed). Returns the recap and whether a
/// deploy happened and failed to converge.
async fn deploy_and_record(
    t: &Target,
    stack: &str,
    step: &Step<'_>,
    timeout: Duration,
) -> Result<(Recap, bool)> {
    let rollout = Rollout {
        stack,
        files: step.files,
        jobs: step.jobs,
        version: step.version,
        timeout,
        converge: step.converge,
    };
    let mut recap = run_op(t, |tx| rollout::rollout(&t.cluster, &rollout, tx)).await?;
    if t.cluster.mode == Mode::Check || !deployed(&recap) {
        return Ok((recap, false));
    }
    let ok = recap.success();
    let record = Record::new(
        step.action,
        step.version,
        Outcome::of(ok),
        &stack::stack_digest(step.version, step.files),
    )
    .with_files(step.files)
    .with_detail(step.detail.clone());
    recap.absorb(run_op(t, |tx| history::record(&t.cluster, stack, &record, tx)).await?);
    Ok((recap, !ok))
}

/// [`deploy_and_record`], and when the deploy failed (and `on_failure` says so) deploys again
/// what ran before. Returns the combined recap.
async fn deploy_step(
    t: &Target,
    stack: &str,
    step: Step<'_>,
    timeout: Duration,
    on_failure: OnFailure,
    before: &[Record],
) -> Result<Recap> {
    let (mut recap, failed) = deploy_and_record(t, stack, &step, timeout).await?;
    if !failed {
        return Ok(recap);
    }
    if on_failure == OnFailure::Leave {
        eprintln!(
            "the {} failed; the stack is left as it is (--no-rollback)",
            step.action.as_str()
        );
        return Ok(recap);
    }
    let Some(target) = history::current(before) else {
        eprintln!(
            "the {} failed, and the history of `{stack}` holds no earlier successful deploy \
             to go back to",
            step.action.as_str()
        );
        return Ok(recap);
    };
    eprintln!(
        "the {} failed; rolling back to version {} (the {} of {} by {})",
        step.action.as_str(),
        target.version,
        target.action.as_str(),
        target.time,
        target.by
    );
    let detail = format!(
        "automatic, after the failed {} of version {}",
        step.action.as_str(),
        step.version
    );
    let back = restore(t, stack, target, Action::Rollback, detail, timeout).await?;
    recap.absorb(back);
    Ok(recap)
}

/// Deploys a recorded step's files again and records that as `action`.
async fn restore(
    t: &Target,
    stack: &str,
    target: &Record,
    action: Action,
    detail: String,
    timeout: Duration,
) -> Result<Recap> {
    let files = target.stack_files();
    let step = Step {
        action,
        version: &target.version,
        files: &files,
        detail,
        jobs: &[],
        converge: Converge::Restore,
    };
    Ok(deploy_and_record(t, stack, &step, timeout).await?.0)
}

/// `deploy rollout`: the env's files, recorded; a failure rolls back unless told not to.
pub async fn rollout(a: &EnvArgs, timeout: u64, on_failure: OnFailure) -> Result<i32> {
    rollout_as(a, timeout, on_failure, Action::Rollout, String::new()).await
}

async fn rollout_as(
    a: &EnvArgs,
    timeout: u64,
    on_failure: OnFailure,
    action: Action,
    detail: String,
) -> Result<i32> {
    let t = open(a)?;
    let files = stack_files(&t.env)?;
    let stack = t.env.stack_name().to_string();
    let jobs = t.env.jobs()?;
    let before = history_of(&t, &stack).await?;
    let step = Step {
        action,
        version: t.env.version(),
        files: &files,
        detail,
        jobs: &jobs,
        converge: Converge::Update,
    };
    let recap = deploy_step(
        &t,
        &stack,
        step,
        Duration::from_secs(timeout),
        on_failure,
        &before,
    )
    .await?;
    finish(&t, &recap);
    Ok(code(&recap))
}

/// `deploy history`: every recorded step, oldest first.
pub async fn show_history(a: &EnvArgs) -> Result<i32> {
    let t = open(a)?;
    let stack = t.env.stack_name().to_string();
    let records = history::read(&t.cluster, &stack).await?;
    match t.format {
        Format::Json => {
            // The files stay on the cluster; the listing says what happened.
            let rows: Vec<serde_json::Value> = records
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "time": r.time, "action": r.action, "version": r.version,
                        "result": r.result, "by": r.by, "detail": r.detail,
                        "digest": r.digest,
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".into())
            );
        }
        Format::Human => {
            if records.is_empty() {
                println!("no deploys of `{stack}` recorded yet");
                return Ok(0);
            }
            let rows: Vec<[String; 6]> = records
                .iter()
                .map(|r| {
                    [
                        r.time.clone(),
                        r.action.as_str().to_string(),
                        r.version.clone(),
                        match r.result {
                            Outcome::Succeeded => "succeeded".into(),
                            Outcome::Failed => "failed".into(),
                        },
                        r.by.clone(),
                        r.detail.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    ["TIME", "ACTION", "VERSION", "RESULT", "BY", "DETAIL"],
                    &rows
                )
            );
        }
    }
    Ok(0)
}

fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// `deploy rollback [--to VERSION]`: the previous (or the named) successful deploy, again.
pub async fn rollback(a: &EnvArgs, to: Option<&str>, timeout: u64) -> Result<i32> {
    let t = open(a)?;
    let stack = t.env.stack_name().to_string();
    let records = history_of(&t, &stack).await?;
    let current = history::current(&records).ok_or_else(|| DeployCommandError::NoHistory {
        stack: stack.clone(),
    })?;
    let target = match to {
        Some(v) => history::of_version(&records, v).ok_or_else(|| {
            let mut known: Vec<&str> = records
                .iter()
                .filter(|r| r.result == Outcome::Succeeded && r.action != Action::Canary)
                .map(|r| r.version.as_str())
                .collect();
            known.dedup();
            DeployCommandError::NoSuchVersion {
                stack: stack.clone(),
                version: v.to_string(),
                known: known.join(", "),
            }
        })?,
        None => history::previous(&records, current).ok_or_else(|| {
            DeployCommandError::NothingBefore {
                stack: stack.clone(),
                version: current.version.clone(),
            }
        })?,
    };
    eprintln!(
        "rolling `{stack}` back to version {} (the {} of {} by {})",
        target.version,
        target.action.as_str(),
        target.time,
        target.by
    );
    let detail = format!("from version {}", current.version);
    let recap = restore(
        &t,
        &stack,
        target,
        Action::Rollback,
        detail,
        Duration::from_secs(timeout),
    )
    .await?;
    finish(&t, &recap);
    if recap.success() && t.env.version() != target.version {
        eprintln!(
            "the env still says version {}: the next `deploy rollout` deploys it again",
            t.env.version()
        );
    }
    Ok(code(&recap))
}

/// `deploy canary SERVICE --replicas N`: the env's definition of SERVICE, as `SERVICE-canary`,
/// next to the stack as it runs.
pub async fn canary(a: &EnvArgs, service: &str, replicas: u32, timeout: u64) -> Result<i32> {
    let t = open(a)?;
    let stack = t.env.stack_name().to_string();
    let records = history_of(&t, &stack).await?;
    let stable = history::stable(&records).ok_or_else(|| DeployCommandError::NoHistory {
        stack: stack.clone(),
    })?;
    let new_files = stack_files(&t.env)?;
    let merged = stack::merged_config(&t.cluster, &new_files, t.env.version()).await?;
    let content = canary::file(&merged, &stack, service, replicas)?;
    let mut files = stable.stack_files();
    files.push(StackFile {
        name: "99-canary.yaml".into(),
        content,
    });
    let detail = format!(
        "{}: {replicas} replica(s) of version {} next to version {}",
        canary::name(service),
        t.env.version(),
        stable.version
    );
    let step = Step {
        action: Action::Canary,
        version: &stable.version,
        files: &files,
        detail,
        jobs: &[],
        converge: Converge::Update,
    };
    let recap = deploy_step(
        &t,
        &stack,
        step,
        Duration::from_secs(timeout),
        OnFailure::RollBack,
        &records,
    )
    .await?;
    finish(&t, &recap);
    Ok(code(&recap))
}

pub async fn canary_action(action: CanaryAction) -> Result<i32> {
    let (a, timeout, promote) = match &action {
        CanaryAction::Promote { env, timeout } => (env, *timeout, true),
        CanaryAction::Abort { env, timeout } => (env, *timeout, false),
    };
    let t = open(a)?;
    let stack = t.env.stack_name().to_string();
    let records = history_of(&t, &stack).await?;
    let running = history::current(&records)
        .filter(|r| r.action == Action::Canary)
        .ok_or_else(|| DeployCommandError::NoCanary {
            stack: stack.clone(),
        })?;
    if promote {
        let detail = format!("{}, to version {}", running.detail, t.env.version());
        drop(t);
        return rollout_as(a, timeout, OnFailure::RollBack, Action::Promote, detail).await;
    }
    let stable = history::stable(&records).ok_or_else(|| DeployCommandError::NoHistory {
        stack: stack.clone(),
    })?;
    let recap = restore(
        &t,
        &stack,
        stable,
        Action::Abort,
        running.detail.clone(),
        Duration::from_secs(timeout),
    )
    .await?;
    finish(&t, &recap);
    Ok(code(&recap))
}
