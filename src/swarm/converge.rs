//! When a deploy has converged: every service healthy by the rules of [`super::health`], read
//! from one [`Gathered`] snapshot per poll. What waiting cannot mend fails at once: a service
//! Swarm rolled back (the update failed), an update paused on a failure, a task rejected for an
//! image no node has (there is no registry to pull it from), a job out of attempts.

use super::health::{self, is_failure, latest_error, moment};
use super::model::{Gathered, SwarmService, Task};
use super::{Health, ServiceKind};

/// What the deploy being waited for is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// New files: a service Swarm rolled back failed the deploy.
    Update,
    /// Files deployed before (a rollback, a canary's abort): a service Swarm rolled back is
    /// already where it is going, once the rollback has ended.
    Restore,
}

/// One service's state in the wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Converged: a line for the user (`st_web 2/2`).
    Done(String),
    Waiting,
    /// Cannot converge: why, to follow the service's name.
    Failed(String),
}

/// The stack as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every service converged: a line each, sorted by service.
    Converged(Vec<String>),
    /// These services (full names) have not yet.
    Waiting(Vec<String>),
    /// This service (full name) cannot converge, and why.
    Failed { service: String, why: String },
    /// The stack has no service.
    Missing,
}

/// Judges a snapshot. `began` is the UTC RFC 3339 time the deploy began, by the manager's
/// clock: an update state that began before it (less two seconds, for the clock's whole
/// seconds) belongs to an earlier deploy and says nothing of this one.
pub fn verdict(g: &Gathered, goal: Goal, began: Option<&str>) -> Verdict {
    if g.missing || g.services.is_empty() {
        return Verdict::Missing;
    }
    let mut services: Vec<&SwarmService> = g.services.iter().collect();
    services.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let mut done = Vec::new();
    let mut waiting = Vec::new();
    for s in services {
        let tasks = g.tasks_of(&s.id);
        match service_state(s, &tasks, g, goal, began) {
            State::Done(line) => done.push(line),
            State::Waiting => waiting.push(s.spec.name.clone()),
            State::Failed(why) => {
                return Verdict::Failed {
                    service: s.spec.name.clone(),
                    why,
                }
            }
        }
    }
    if waiting.is_empty() {
        Verdict::Converged(done)
    } else {
        Verdict::Waiting(waiting)
    }
}

/// The update state that concerns this deploy: `""` for none, or for one older than `began`.
fn current_update<'a>(s: &'a SwarmService, began: Option<&str>) -> &'a str {
    let started = s
        .update_status
        .as_ref()
        .and_then(|u| u.started_at.as_deref());
    match (started, began) {
        (Some(at), Some(began)) if moment(at) < moment(began) => "",
        _ => s.update_state(),
    }
}

pub fn service_state(
    s: &SwarmService,
    tasks: &[&Task],
    g: &Gathered,
    goal: Goal,
    began: Option<&str>,
) -> State {
    let mut update = current_update(s, began);
    match (goal, update) {
        (Goal::Restore, "rollback_started") => return State::Waiting,
        (Goal::Restore, "rollback_completed") => update = "",
        (_, "rollback_started" | "rollback_paused" | "rollback_completed") => {
            return State::Failed("was rolled back: its update failed".into())
        }
        (_, "paused") => return State::Failed("update paused: a new task failed".into()),
        (_, "updating") => return State::Waiting,
        _ => {}
    }
    // Without a registry, a node without the image rejects the task for good.
    let newest = tasks
        .iter()
        .max_by(|a, b| moment(&a.created_at).cmp(&moment(&b.created_at)));
    if newest
        .is_some_and(|t| t.status.state == "rejected" && t.status.err.contains("No such image"))
    {
        return State::Failed(
            "cannot start: its image is not on the node (run `minipaas deploy build`, or check \
             the image name)"
                .into(),
        );
    }
    let a = health::classify_in(s, update, tasks, &g.since, &g.proven);
    let name = &s.spec.name;
    match (a.kind, a.health) {
        (ServiceKind::Job, Health::Running) => {
            State::Done(format!("job {name} completed (exit 0)"))
        }
        (ServiceKind::Job, Health::Failed) => {
            let failed: Vec<&Task> = tasks
                .iter()
                .copied()
                .filter(|t| is_failure(&t.status.state))
                .collect();
            let code = latest_error(&failed)
                .as_deref()
                .and_then(exit_code)
                .unwrap_or_else(|| "unknown".into());
            State::Failed(format!("job failed (exit {code}) after its last attempt"))
        }
        // A cron service's runs come on its schedule, not from the deploy: its spec is in place.
        (ServiceKind::Cron, _) => State::Done(format!("{name} {}/{} (cron)", a.running, a.desired)),
        // Healthy, and no task beyond the wanted ones still runs (a scale-down's or an
        // update's old task on its way out).
        (_, Health::Running) if a.running == a.desired => {
            State::Done(format!("{name} {}/{}", a.running, a.desired))
        }
        _ => State::Waiting,
    }
}

/// `N` of Docker's `task: non-zero exit (N)`.
fn exit_code(err: &str) -> Option<String> {
    let rest = &err[err.find("non-zero exit (")? + "non-zero exit (".len()..];
    let code = &rest[..rest.find(')')?];
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_digit())).then(|| code.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::health::tests::{service, tasks, MID, NEW, OLD, PROVEN, SINCE};
    use super::super::model::UpdateStatus;
    use super::*;

    fn gathered(services: Vec<SwarmService>, tasks: Vec<Task>) -> Gathered {
        let mut g: Gathered = serde_json::from_value(json!({
            "Since": SINCE, "Proven": PROVEN, "Services": [], "Tasks": [], "Nodes": []
        }))
        .unwrap();
        g.services = services;
        g.tasks = tasks;
        g
    }

    fn replicated(n: u64, update: Option<(&str, &str)>) -> SwarmService {
        let mut s = service(json!({"Replicated": {"Replicas": n}}), &[], None);
        s.update_status = update.map(|(state, at)| UpdateStatus {
            state: Some(state.into()),
            started_at: Some(at.into()),
        });
        s
    }

    fn state(s: SwarmService, t: Vec<Task>, goal: Goal, began: Option<&str>) -> State {
        let g = gathered(vec![s], t);
        let refs: Vec<&Task> = g.tasks.iter().collect();
        service_state(&g.services[0], &refs, &g, goal, began)
    }

    #[test]
    fn replicated_services_converge_when_healthy() {
        let both = || tasks(&[(1, "running", "", OLD), (2, "running", "", OLD)]);
        assert_eq!(
            state(replicated(2, None), both(), Goal::Update, None),
            State::Done("st_web 2/2".into())
        );
        let starting = tasks(&[(1, "running", "", OLD), (2, "starting", "", NEW)]);
        assert_eq!(
            state(replicated(2, None), starting, Goal::Update, None),
            State::Waiting
        );
        // A crash loop caught while its replacement runs is not converged: the same rule as
        // `deploy status` (a replacement proves itself for PROVEN_SECONDS).
        let looping = tasks(&[
            (1, "running", "", OLD),
            (2, "failed", "exit 1", NEW),
            (2, "running", "", NEW),
        ]);
        assert_eq!(
            state(replicated(2, None), looping, Goal::Update, None),
            State::Waiting
        );
        // Scaled down from 3: healthy, but the third task is still on its way out.
        let leaving = tasks(&[
            (1, "running", "", OLD),
            (2, "running", "", OLD),
            (3, "running", "", OLD),
        ]);
        assert_eq!(
            state(replicated(2, None), leaving, Goal::Update, None),
            State::Waiting
        );
        // Nothing runs and tasks fail: swarm restarts them; the wait goes on to its timeout.
        let failing = tasks(&[(1, "failed", "exit 1", NEW), (2, "failed", "exit 1", NEW)]);
        assert_eq!(
            state(replicated(2, None), failing, Goal::Update, None),
            State::Waiting
        );
    }

    #[test]
    fn a_task_on_a_down_node_is_not_counted() {
        // node2 went down: its task still says running; the replacement runs on node3.
        let mut t = tasks(&[
            (1, "running", "", OLD),
            (2, "running", "", OLD),
            (3, "running", "", OLD),
        ]);
        t[2].slot = Some(2);
        let mut g = gathered(vec![replicated(2, None)], t);
        g.nodes = serde_json::from_value(json!([
            {"ID": "node1", "Hostname": "n1", "Status": "Ready"},
            {"ID": "node2", "Hostname": "n2", "Status": "Down"},
            {"ID": "node3", "Hostname": "n3", "Status": "Ready"}
        ]))
        .unwrap();
        assert_eq!(
            verdict(&g, Goal::Update, None),
            Verdict::Converged(vec!["st_web 2/2".into()])
        );
        g.nodes[1].status = "Ready".into();
        assert_eq!(
            verdict(&g, Goal::Update, None),
            Verdict::Waiting(vec!["st_web".into()])
        );
    }

    #[test]
    fn update_states_of_this_deploy_decide_and_older_ones_do_not() {
        let both = || tasks(&[(1, "running", "", OLD), (2, "running", "", OLD)]);
        let rolled_back = State::Failed("was rolled back: its update failed".into());
        for s in ["rollback_started", "rollback_paused", "rollback_completed"] {
            assert_eq!(
                state(
                    replicated(2, Some((s, NEW))),
                    both(),
                    Goal::Update,
                    Some(MID)
                ),
                rolled_back,
                "{s}"
            );
        }
        assert_eq!(
            state(
                replicated(2, Some(("paused", NEW))),
                both(),
                Goal::Update,
                Some(MID)
            ),
            State::Failed("update paused: a new task failed".into())
        );
        assert_eq!(
            state(
                replicated(2, Some(("updating", NEW))),
                both(),
                Goal::Update,
                Some(MID)
            ),
            State::Waiting
        );
        // Going back: Swarm's own rollback is the way there, once it has ended.
        assert_eq!(
            state(
                replicated(2, Some(("rollback_started", NEW))),
                both(),
                Goal::Restore,
                Some(MID)
            ),
            State::Waiting
        );
        assert_eq!(
            state(
                replicated(2, Some(("rollback_completed", NEW))),
                both(),
                Goal::Restore,
                Some(MID)
            ),
            State::Done("st_web 2/2".into())
        );
        assert_eq!(
            state(
                replicated(2, Some(("rollback_paused", NEW))),
                both(),
                Goal::Restore,
                Some(MID)
            ),
            rolled_back
        );
        // A rollback or pause left by an earlier deploy that did not touch this service.
        for s in ["rollback_completed", "paused", "updating"] {
            assert_eq!(
                state(
                    replicated(2, Some((s, OLD))),
                    both(),
                    Goal::Update,
                    Some(MID)
                ),
                State::Done("st_web 2/2".into()),
                "{s}"
            );
        }
    }

    #[test]
    fn an_image_no_node_has_fails_at_once() {
        let t = tasks(&[(1, "rejected", "No such image: ghost:1", NEW)]);
        match state(replicated(1, None), t, Goal::Update, None) {
            State::Failed(why) => assert!(why.contains("its image is not on the node"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jobs_complete_or_run_out_of_attempts() {
        let job = || {
            service(
                json!({"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}),
                &[],
                None,
            )
        };
        let done = tasks(&[(9, "failed", "exit 3", OLD), (1, "complete", "", NEW)]);
        assert_eq!(
            state(job(), done, Goal::Update, None),
            State::Done("job st_web completed (exit 0)".into())
        );
        let retrying = tasks(&[(1, "failed", "task: non-zero exit (3)", NEW)]);
        assert_eq!(state(job(), retrying, Goal::Update, None), State::Waiting);
        let out = tasks(&[
            (1, "failed", "task: non-zero exit (3)", NEW),
            (1, "failed", "task: non-zero exit (3)", NEW),
            (1, "failed", "task: non-zero exit (3)", NEW),
            (1, "failed", "task: non-zero exit (3)", NEW),
        ]);
        assert_eq!(
            state(job(), out, Goal::Update, None),
            State::Failed("job failed (exit 3) after its last attempt".into())
        );
    }

    #[test]
    fn a_cron_service_is_in_place_whatever_its_last_run_did() {
        let cron = service(
            json!({"Replicated": {"Replicas": 0}}),
            &[("swarm.cronjob.enable", "true")],
            None,
        );
        let failed = tasks(&[(1, "failed", "exit 1", NEW)]);
        assert_eq!(
            state(cron, failed, Goal::Update, None),
            State::Done("st_web 0/0 (cron)".into())
        );
    }

    #[test]
    fn the_stack_waits_for_its_slowest_service_and_fails_with_its_first_failure() {
        let mut a = replicated(1, None);
        a.spec.name = "st_a".into();
        let mut b = replicated(1, None);
        b.id = "svc2".into();
        b.spec.name = "st_b".into();
        let t = tasks(&[(1, "running", "", OLD)]);
        assert_eq!(
            verdict(&gathered(vec![b, a], t), Goal::Update, None),
            Verdict::Waiting(vec!["st_b".into()])
        );
        let missing: Gathered = serde_json::from_str("{\"Missing\": true}").unwrap();
        assert_eq!(verdict(&missing, Goal::Update, None), Verdict::Missing);
        assert_eq!(
            exit_code("task: non-zero exit (137): unhealthy").as_deref(),
            Some("137")
        );
        assert_eq!(exit_code("task: non-zero exit ()"), None);
    }
}
