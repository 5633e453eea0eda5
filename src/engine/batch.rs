//! One batch of a play's hosts at once, and whether its failures stop the run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::inventory::{HostName, Inventory};

use super::{Status, TaskError, TaskReport};

use super::{connect, host, peers, vars, Event, HostState, Limits, Options, Recap};

/// What every batch of a run shares.
#[derive(Clone, Copy)]
pub(super) struct Batch<'a> {
    pub(super) inventory: &'a Inventory,
    pub(super) opts: &'a Options,
    pub(super) templates: &'a host::TemplateCache,
    pub(super) groups: &'a Value,
    pub(super) limits: &'a Limits,
    pub(super) known_hosts: &'a [PathBuf],
    pub(super) peers: &'a Arc<peers::Peers>,
    pub(super) events: &'a UnboundedSender<Event>,
}

/// Runs `play` on the hosts of one batch at once; returns the hosts that failed or were
/// unreachable in it.
pub(super) async fn run_batch(
    play: &crate::plan::Play,
    hosts: &[HostName],
    states: &mut BTreeMap<HostName, HostState>,
    recap: &mut Recap,
    b: Batch<'_>,
) -> Vec<HostName> {
    // Every host of the inventory, as in Ansible: a host outside --limit still has its
    // addresses and groups (the firewall's cluster set lists every node); facts only from
    // the hosts of this run.
    let no_facts = Map::new();
    let hostvars = Arc::new(vars::hostvars(b.inventory.hosts.iter().map(|h| {
        let facts = states.get(&h.name).map_or(&no_facts, |s| &s.facts);
        (h, facts)
    })));
    let mut jobs = tokio::task::JoinSet::new();
    let mut job_hosts = std::collections::HashMap::new();
    for name in hosts {
        let Some(mut st) = states.remove(name) else {
            continue;
        };
        let ctx = host::PlayCtx {
            play: play.clone(),
            opts: b.opts.clone(),
            templates: b.templates.clone(),
            groups: b.groups.clone(),
            hostvars: hostvars.clone(),
            peers: b.peers.clone(),
            events: b.events.clone(),
        };
        let limits = b.limits.clone();
        let known_hosts = b.known_hosts.to_vec();
        let job = jobs.spawn(async move {
            let permit = limits.hosts.clone().acquire_owned().await;
            if ctx.play.reset_connection {
                if let Some(t) = st.transport.take() {
                    t.close().await;
                }
            }
            let outcome = match connect(&mut st, &ctx.opts, &known_hosts).await {
                Ok(t) => host::run_play(&ctx, &st.host, &t, &mut st.facts, &mut st.pending).await,
                Err(e) => host::PlayOutcome::unreachable(e),
            };
            drop(permit);
            (st, outcome)
        });
        job_hosts.insert(job.id(), name.clone());
    }
    let mut failed = Vec::new();
    while let Some(res) = jobs.join_next_with_id().await {
        let (mut st, outcome) = match res {
            Ok((_, done)) => done,
            // A panicking host task is a bug: its host failed, the others still finish,
            // and the run does not pass for a success.
            Err(e) => {
                if let Some(name) = job_hosts.get(&e.id()) {
                    host_panicked(recap, b.events, &play.name, name, e);
                    failed.push(name.clone());
                }
                continue;
            }
        };
        for r in &outcome.reports {
            recap.record(r);
        }
        let hr = recap.hosts.entry(st.host.name.0.clone()).or_default();
        if let Some(err) = outcome.unreachable {
            hr.unreachable = true;
            hr.error = Some(err.clone());
            st.dead = true;
            let _ = b.events.send(Event::Unreachable {
                host: st.host.name.clone(),
                error: err,
            });
        }
        if outcome.failed {
            st.dead = true;
        }
        if st.dead {
            failed.push(st.host.name.clone());
        }
        hr.duration_ms = st.started.elapsed().as_millis() as u64;
        states.insert(st.host.name.clone(), st);
    }
    failed.sort();
    failed
}

/// Why a batch of `size` hosts with `failed` failures stops the run, if it does: any failure
/// with `any_errors_fatal`, more than `max_fail_percentage`, or else the whole batch (as
/// Ansible decides).
pub(super) fn budget_spent(play: &crate::plan::Play, size: usize, failed: usize) -> Option<String> {
    if failed == 0 {
        return None;
    }
    if play.any_errors_fatal {
        return Some("and the play has any_errors_fatal".into());
    }
    if let Some(max) = play.max_fail_percentage {
        let percent = failed * 100 / size.max(1);
        // Ansible compares the failed share with the budget strictly: 0 allows no failure.
        return (failed * 100 > max as usize * size).then(|| {
            format!("{percent}% of the batch, more than its max_fail_percentage of {max}%")
        });
    }
    (failed == size && !play.serial.is_empty()).then(|| "every host of the batch".into())
}

/// Records a host whose task panicked as failed with an internal error, named as one. The
/// host is gone from the run (its state went with the task), so later plays skip it.
pub(super) fn host_panicked(
    recap: &mut Recap,
    events: &UnboundedSender<Event>,
    play: &str,
    host: &HostName,
    e: tokio::task::JoinError,
) {
    let report = internal_error(play, host, e);
    recap.record(&report);
    let hr = recap.hosts.entry(host.0.clone()).or_default();
    hr.error = report.error.as_ref().map(ToString::to_string);
    let _ = events.send(Event::TaskDone(report));
}

fn internal_error(play: &str, host: &HostName, e: tokio::task::JoinError) -> TaskReport {
    let why = if e.is_panic() {
        let payload = e.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into())
    } else {
        "the host's task was cancelled".into()
    };
    TaskReport {
        host: host.0.clone(),
        play: play.to_string(),
        task: "internal error".into(),
        status: Status::Failed,
        changes: Vec::new(),
        diff: None,
        message: None,
        error: Some(TaskError::Internal { why }),
        at: play.to_string(),
        handler: false,
        ignored: false,
        duration_ms: 0,
    }
}
