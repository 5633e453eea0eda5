//! The health rules (see the module's documentation above): a service's tasks, as Docker
//! reports them, judged against the moment of the read.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::model::{SwarmService, Task};
use super::{Health, ServiceKind};

/// One service judged: how it runs, what it wants and has, its health and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub kind: ServiceKind,
    /// Tasks wanted: replicas; for a global service the nodes it runs on; for a job its
    /// completions.
    pub desired: u64,
    /// Tasks running now.
    pub running: u64,
    /// Jobs only: tasks of the current run that completed.
    pub completed: Option<u64>,
    pub health: Health,
    /// Why it is not running: the latest task error, or the update's state.
    pub message: Option<String>,
}

pub(super) fn is_failure(state: &str) -> bool {
    matches!(state, "failed" | "rejected")
}

/// The error of the newest failed task among `tasks`, for the user.
pub(super) fn latest_error(tasks: &[&Task]) -> Option<String> {
    tasks
        .iter()
        .filter(|t| is_failure(&t.status.state))
        .max_by(|a, b| a.status.timestamp.cmp(&b.status.timestamp))
        .map(|t| {
            if t.status.err.is_empty() {
                format!("task {}", t.status.state)
            } else {
                t.status.err.clone()
            }
        })
}

/// A UTC RFC 3339 time (`2026-01-01T10:00:00.5Z`, as Docker and `date -u` print it) as
/// something that orders: the text up to the seconds, then nanoseconds. Plain string order
/// would put `10:00:00.5Z` before `10:00:00Z`.
pub(super) fn moment(ts: &str) -> (&str, u32) {
    let ts = ts.trim_end_matches('Z');
    match ts.split_once('.') {
        Some((secs, frac)) => {
            let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
            (secs, digits.parse().unwrap_or(0))
        }
        None => (ts, 0),
    }
}

/// The health of one service from its spec and tasks; `since` is the UTC RFC 3339 time after
/// which a failure is recent, `proven` the time before which a replacement task must have
/// started running.
pub fn classify(s: &SwarmService, tasks: &[&Task], since: &str, proven: &str) -> Assessment {
    classify_in(s, s.update_state(), tasks, since, proven)
}

/// [`classify`] with the service's update state as the caller reads it: a deploy that did not
/// touch a service reads an update state older than itself as none.
pub fn classify_in(
    s: &SwarmService,
    update: &str,
    tasks: &[&Task],
    since: &str,
    proven: &str,
) -> Assessment {
    let mode = &s.spec.mode;
    let running = tasks.iter().filter(|t| t.status.state == "running").count() as u64;
    let cron = s
        .spec
        .labels
        .get("swarm.cronjob.enable")
        .is_some_and(|v| v == "true");
    if mode.get("ReplicatedJob").is_some() || mode.get("GlobalJob").is_some() {
        return classify_job(s, tasks, running);
    }
    if cron {
        // Between runs it has 0 replicas; only its last run says anything.
        let last = tasks
            .iter()
            .max_by(|a, b| moment(&a.created_at).cmp(&moment(&b.created_at)));
        let failed = last.is_some_and(|t| is_failure(&t.status.state));
        return Assessment {
            kind: ServiceKind::Cron,
            desired: replicas(mode),
            running,
            completed: None,
            health: if failed {
                Health::Failed
            } else {
                Health::Running
            },
            message: if failed { latest_error(tasks) } else { None },
        };
    }
    let (kind, desired) = if mode.get("Global").is_some() {
        let desired = tasks
            .iter()
            .filter(|t| t.desired_state == "running")
            .count() as u64;
        (ServiceKind::Global, desired)
    } else {
        (ServiceKind::Replicated, replicas(mode))
    };
    let recent: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| is_failure(&t.status.state) && moment(&t.status.timestamp) >= moment(since))
        .collect();
    // A task's slot: replicated, its slot number; global, its node.
    let slot = |t: &Task| match t.slot {
        Some(n) if kind == ServiceKind::Replicated => n.to_string(),
        _ => t.node_id.clone(),
    };
    // Each slot's newest task.
    let mut latest: BTreeMap<String, &Task> = BTreeMap::new();
    for &t in tasks {
        let e = latest.entry(slot(t)).or_insert(t);
        if moment(&t.created_at) > moment(&e.created_at) {
            *e = t;
        }
    }
    let all_latest_failed =
        !latest.is_empty() && latest.values().all(|t| is_failure(&t.status.state));
    let unhealthy_check = recent.iter().any(|t| t.status.err.contains("unhealthy"));
    let unproven = tasks.iter().any(|t| {
        t.status.state == "running"
            && moment(&t.status.timestamp) >= moment(proven)
            && recent.iter().any(|f| slot(f) == slot(t))
    });
    let health = if update == "paused" {
        Health::Unhealthy
    } else if matches!(update, "updating" | "rollback_started") {
        Health::Pending
    } else if running >= desired && !unproven {
        Health::Running
    } else if running >= desired {
        Health::Unhealthy
    } else if running == 0 && !unhealthy_check && (!recent.is_empty() || all_latest_failed) {
        Health::Failed
    } else if !recent.is_empty() {
        Health::Unhealthy
    } else {
        Health::Pending
    };
    Assessment {
        kind,
        desired,
        running,
        completed: None,
        message: match health {
            Health::Running => None,
            Health::Pending if update == "updating" => Some("update in progress".into()),
            Health::Pending => None,
            Health::Unhealthy if update == "paused" => {
                Some("update paused after a task failed".into())
            }
            _ => latest_error(tasks),
        },
        health,
    }
}

fn replicas(mode: &Value) -> u64 {
    mode["Replicated"]["Replicas"].as_u64().unwrap_or(0)
}

fn classify_job(s: &SwarmService, tasks: &[&Task], running: u64) -> Assessment {
    let mode = &s.spec.mode;
    // Tasks of the current run only: earlier runs (rollouts) keep their tasks for a while.
    let iteration = s
        .job_status
        .as_ref()
        .and_then(|j| j.job_iteration.as_ref())
        .map(|i| i.index);
    let current: Vec<&Task> = tasks
        .iter()
        .copied()
        .filter(|t| match (iteration, &t.job_iteration) {
            (Some(i), Some(ti)) => ti.index == i,
            _ => true,
        })
        .collect();
    let completed = current
        .iter()
        .filter(|t| t.status.state == "complete")
        .count() as u64;
    let desired = match mode["ReplicatedJob"]["TotalCompletions"].as_u64() {
        Some(n) => n,
        None if mode.get("ReplicatedJob").is_some() => 1,
        // A global job: one completion per node it was given to.
        None => current
            .iter()
            .map(|t| t.node_id.as_str())
            .collect::<BTreeSet<_>>()
            .len() as u64,
    };
    let failures = current
        .iter()
        .filter(|t| is_failure(&t.status.state))
        .count() as u64;
    let policy = s.spec.task_template.restart_policy.as_ref();
    let condition = policy.and_then(|p| p.condition.as_deref()).unwrap_or("any");
    let attempts = policy.and_then(|p| p.max_attempts).unwrap_or(0);
    // A failed attempt is retried until the restart policy says no.
    let out_of_attempts =
        failures > 0 && (condition == "none" || (attempts > 0 && failures > attempts));
    let health = if completed >= desired && desired > 0 {
        Health::Running
    } else if out_of_attempts {
        Health::Failed
    } else {
        Health::Pending
    };
    Assessment {
        kind: ServiceKind::Job,
        desired,
        running,
        completed: Some(completed),
        message: (health == Health::Failed)
            .then(|| latest_error(&current))
            .flatten(),
        health,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::{json, Map};

    pub(crate) const SINCE: &str = "2026-01-01T10:00:00Z";
    pub(crate) const PROVEN: &str = "2026-01-01T10:01:00Z";
    pub(crate) const MID: &str = "2026-01-01T10:00:30Z";
    pub(crate) const OLD: &str = "2026-01-01T09:00:00.5Z";
    pub(crate) const NEW: &str = "2026-01-01T10:01:00.5Z";

    pub(crate) fn service(
        mode: Value,
        labels: &[(&str, &str)],
        update: Option<&str>,
    ) -> SwarmService {
        serde_json::from_value(json!({
            "ID": "svc1",
            "Spec": {
                "Name": "st_web",
                "Labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<Map<_, _>>(),
                "Mode": mode,
                "TaskTemplate": {
                    "ContainerSpec": {"Image": "example-app:7@sha256:abc", "Env": ["A=1", "MINIPAAS_DEPLOY_VERSION=7"]},
                    "RestartPolicy": {"Condition": "on-failure", "MaxAttempts": 3}
                }
            },
            "UpdateStatus": update.map(|u| json!({"State": u})),
            "JobStatus": {"JobIteration": {"Index": 5}}
        }))
        .unwrap()
    }

    /// A task: (slot, state, error, timestamp), created in the order given.
    pub(crate) fn tasks(specs: &[(u64, &str, &str, &str)]) -> Vec<Task> {
        specs
            .iter()
            .enumerate()
            .map(|(i, (slot, state, err, at))| {
                serde_json::from_value(json!({
                    "ServiceID": "svc1",
                    "Slot": slot,
                    "NodeID": format!("node{slot}"),
                    "CreatedAt": format!("2026-01-01T08:00:0{i}Z"),
                    "DesiredState": if *state == "running" { "running" } else { "shutdown" },
                    "Status": {"Timestamp": at, "State": state, "Err": err},
                    "JobIteration": {"Index": if *slot == 9 { 4 } else { 5 }}
                }))
                .unwrap()
            })
            .collect()
    }

    fn health(s: &SwarmService, t: &[Task]) -> (Health, u64, u64) {
        let refs: Vec<&Task> = t.iter().collect();
        let a = classify(s, &refs, SINCE, PROVEN);
        (a.health, a.desired, a.running)
    }

    #[test]
    fn replicated_health() {
        let two = || service(json!({"Replicated": {"Replicas": 2}}), &[], None);
        let cases: [(&str, Vec<Task>, Health); 9] = [
            (
                "a crash loop caught running",
                tasks(&[
                    (1, "running", "", OLD),
                    (2, "failed", "exit 1", NEW),
                    (2, "running", "", NEW),
                ]),
                Health::Unhealthy,
            ),
            (
                "running for a while again after a failure",
                tasks(&[
                    (1, "running", "", OLD),
                    (2, "failed", "exit 1", MID),
                    (2, "running", "", MID),
                ]),
                Health::Running,
            ),
            (
                "all running",
                tasks(&[(1, "running", "", OLD), (2, "running", "", OLD)]),
                Health::Running,
            ),
            (
                "an old failure does not count",
                tasks(&[
                    (1, "failed", "exit 1", OLD),
                    (1, "running", "", OLD),
                    (2, "starting", "", NEW),
                ]),
                Health::Pending,
            ),
            (
                "starting",
                tasks(&[(1, "running", "", OLD), (2, "starting", "", NEW)]),
                Health::Pending,
            ),
            (
                "recent failure with one running",
                tasks(&[
                    (1, "running", "", OLD),
                    (2, "failed", "exit 1", NEW),
                    (2, "starting", "", NEW),
                ]),
                Health::Unhealthy,
            ),
            (
                "nothing runs, recent failures",
                tasks(&[
                    (1, "failed", "exit 1", NEW),
                    (2, "rejected", "no image", NEW),
                ]),
                Health::Failed,
            ),
            (
                "nothing runs, failed long ago and never restarted",
                tasks(&[(1, "failed", "exit 1", OLD), (2, "failed", "exit 1", OLD)]),
                Health::Failed,
            ),
            (
                "failing healthcheck",
                tasks(&[
                    (
                        1,
                        "failed",
                        "task: non-zero exit (137): dockerexec: unhealthy container",
                        NEW,
                    ),
                    (1, "starting", "", NEW),
                ]),
                Health::Unhealthy,
            ),
        ];
        for (what, t, want) in cases {
            assert_eq!(health(&two(), &t).0, want, "{what}");
        }
        let t = tasks(&[(1, "running", "", OLD), (2, "running", "", OLD)]);
        let updating = service(
            json!({"Replicated": {"Replicas": 2}}),
            &[],
            Some("updating"),
        );
        assert_eq!(health(&updating, &t).0, Health::Pending);
        let paused = service(json!({"Replicated": {"Replicas": 2}}), &[], Some("paused"));
        assert_eq!(health(&paused, &t).0, Health::Unhealthy);
        let zero = service(json!({"Replicated": {"Replicas": 0}}), &[], None);
        assert_eq!(health(&zero, &[]), (Health::Running, 0, 0));
    }

    #[test]
    fn job_health() {
        let job = service(
            json!({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}),
            &[],
            None,
        );
        // Slot 9 is an earlier run (iteration 4): its failure does not count.
        let done = tasks(&[(9, "failed", "exit 3", OLD), (1, "complete", "", NEW)]);
        assert_eq!(health(&job, &done).0, Health::Running);
        let running = tasks(&[(1, "failed", "exit 3", NEW), (1, "running", "", NEW)]);
        assert_eq!(health(&job, &running), (Health::Pending, 1, 1));
        let out = tasks(&[
            (1, "failed", "exit 3", NEW),
            (1, "failed", "exit 3", NEW),
            (1, "failed", "exit 3", NEW),
            (1, "failed", "non-zero exit (3)", NEW),
        ]);
        let refs: Vec<&Task> = out.iter().collect();
        let a = classify(&job, &refs, SINCE, PROVEN);
        assert_eq!(a.health, Health::Failed);
        assert_eq!(a.completed, Some(0));
        assert_eq!(a.message.as_deref(), Some("non-zero exit (3)"));
    }

    #[test]
    fn cron_health() {
        let cron = service(
            json!({"Replicated": {"Replicas": 0}}),
            &[("swarm.cronjob.enable", "true")],
            None,
        );
        assert_eq!(health(&cron, &[]), (Health::Running, 0, 0));
        let ok = tasks(&[(1, "failed", "exit 1", OLD), (1, "complete", "", NEW)]);
        assert_eq!(health(&cron, &ok).0, Health::Running);
        let failed = tasks(&[(1, "complete", "", OLD), (1, "failed", "exit 1", NEW)]);
        assert_eq!(health(&cron, &failed).0, Health::Failed);
        let refs: Vec<&Task> = failed.iter().collect();
        assert_eq!(
            classify(&cron, &refs, SINCE, PROVEN).kind,
            ServiceKind::Cron
        );
    }

    #[test]
    fn moments_order_fractions_after_whole_seconds() {
        assert!(moment("2026-01-01T10:00:00.5Z") > moment("2026-01-01T10:00:00Z"));
        assert!(moment("2026-01-01T10:00:00.55Z") > moment("2026-01-01T10:00:00.5Z"));
        assert!(moment("2026-01-01T10:00:01Z") > moment("2026-01-01T10:00:00.999Z"));
        assert_eq!(
            moment("2026-01-01T10:00:00Z"),
            moment("2026-01-01T10:00:00.000Z")
        );
    }
}
