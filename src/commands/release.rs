//! Releases over time: `deploy rollout` (with its automatic rollback), `deploy history`,
//! `deploy rollback` and `deploy canary [promote|abort]`: arguments to deploy::release, which
//! deploys and records each step, and its outcome rendered.

use std::time::Duration;

use clap::Subcommand;

use super::deploy::{code, finish, open, run_op, stack_files, DeployCommandError, EnvArgs, Target};
use crate::deploy::history::{self, Action, Outcome, Record};
use crate::deploy::release::{self, OnFailure, Releases, Step};
use crate::deploy::rollout::Converge;
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

async fn history_of(t: &Target, stack: &str) -> Result<Vec<Record>> {
    Ok(history::read(&t.cluster, stack).await?)
}

/// The releases of the env's stack, reporting to `events`.
fn releases<'a>(
    t: &'a Target,
    stack: &'a str,
    timeout: u64,
    events: tokio::sync::mpsc::UnboundedSender<crate::engine::Event>,
) -> Releases<'a> {
    Releases {
        cluster: &t.cluster,
        stack,
        timeout: Duration::from_secs(timeout),
        events,
    }
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
    let t = open(a).await?;
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
    let recap = run_op(&t, |tx| async {
        releases(&t, &stack, timeout, tx)
            .deploy(step, on_failure, &before)
            .await
    })
    .await?;
    finish(&t, &recap);
    Ok(code(&recap))
}

/// `deploy history`: every recorded step, oldest first.
pub async fn show_history(a: &EnvArgs) -> Result<i32> {
    let t = open(a).await?;
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
    let t = open(a).await?;
    let stack = t.env.stack_name().to_string();
    let records = history_of(&t, &stack).await?;
    let (current, target) = release::rollback_target(&records, &stack, to)?;
    eprintln!(
        "rolling `{stack}` back to version {} (the {} of {} by {})",
        target.version,
        target.action.as_str(),
        target.time,
        target.by
    );
    let detail = format!("from version {}", current.version);
    let recap = run_op(&t, |tx| async {
        releases(&t, &stack, timeout, tx)
            .restore(target, Action::Rollback, detail)
            .await
    })
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
    let t = open(a).await?;
    let stack = t.env.stack_name().to_string();
    let records = history_of(&t, &stack).await?;
    let stable = release::stable(&records, &stack)?;
    let new_files = stack_files(&t.env)?;
    let files = release::canary_files(
        &t.cluster,
        &stack,
        stable,
        &new_files,
        t.env.version(),
        service,
        replicas,
    )
    .await?;
    let detail = format!(
        "{}: {replicas} replica(s) of version {} next to version {}",
        crate::deploy::canary::name(service),
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
    let recap = run_op(&t, |tx| async {
        releases(&t, &stack, timeout, tx)
            .deploy(step, OnFailure::RollBack, &records)
            .await
    })
    .await?;
    finish(&t, &recap);
    Ok(code(&recap))
}

pub async fn canary_action(action: CanaryAction) -> Result<i32> {
    let (a, timeout, promote) = match &action {
        CanaryAction::Promote { env, timeout } => (env, *timeout, true),
        CanaryAction::Abort { env, timeout } => (env, *timeout, false),
    };
    let t = open(a).await?;
    let stack = t.env.stack_name().to_string();
    let records = history_of(&t, &stack).await?;
    let running = release::running_canary(&records, &stack)?;
    if promote {
        let detail = format!("{}, to version {}", running.detail, t.env.version());
        drop(t);
        return rollout_as(a, timeout, OnFailure::RollBack, Action::Promote, detail).await;
    }
    let stable = release::stable(&records, &stack)?;
    let recap = run_op(&t, |tx| async {
        releases(&t, &stack, timeout, tx)
            .restore(stable, Action::Abort, running.detail.clone())
            .await
    })
    .await?;
    finish(&t, &recap);
    Ok(code(&recap))
}
