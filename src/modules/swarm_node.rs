//! `swarm_node`: one node's part in a rolling Docker restart, run on a manager (the task is
//! delegated to one). `state: drained` moves the node's work away and waits until it runs
//! elsewhere; `ready` waits until the node is Ready and every manager reachable (the quorum
//! is whole again); `active` gives back a node that `drained` took.
//!
//! A node drained for a restart carries the label `minipaas.restart-drain`, so a run cut
//! between drain and restart is finished by the next one, and a node an operator drained
//! (no label) stays drained.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::context::Context;
use super::{Applied, Change, ModuleError, Probe, Seen};

const LABEL: &str = "minipaas.restart-drain";
/// On a leader demoted for its restart: Raft hands leadership over at a demotion, where a
/// stopped leader leaves the swarm without one until an election (about 10 s) ends.
const DEMOTED: &str = "minipaas.restart-demoted";
const POLL: Duration = Duration::from_secs(1);
/// How long a restarted node must stay Ready: right after a restart the managers may not yet
/// have noticed it went away, and a node whose heartbeats fail turns Down within this time.
const STABLE: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wanted {
    Drained,
    Ready,
    Active,
}

#[derive(Debug)]
pub struct SwarmNode {
    /// A Swarm node id, checked: it is what the node printed about itself.
    node: String,
    /// The node's inventory name, for messages.
    name: String,
    state: Wanted,
    timeout: Duration,
}

/// What a manager says about the node and about every manager.
#[derive(Debug, PartialEq, Eq)]
struct View {
    role: String,
    availability: String,
    status: String,
    drained_by_us: bool,
    demoted_by_us: bool,
    /// Whether the node is still a member of the managers' Raft group: a demotion is over
    /// only when it is not.
    raft_member: bool,
    /// This node's manager status (`Leader`, `Reachable`...), when it is a manager.
    manager_status: Option<String>,
    /// (hostname, manager status, node status) of every manager but this node.
    other_managers: Vec<(String, String, String)>,
}

impl SwarmNode {
    pub fn new(a: &Value) -> Result<SwarmNode, ModuleError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct A {
            node: String,
            name: Option<String>,
            state: Wanted,
            timeout: Option<u64>,
        }
        let r: A = super::args("swarm_node", a)?;
        let id_ok = r.node.len() == 25
            && r.node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !id_ok {
            return Err(ModuleError::Args {
                message: format!(
                    "`swarm_node`: `node` must be a Swarm node id (25 lowercase letters and digits), not `{}`",
                    r.node
                ),
            });
        }
        Ok(SwarmNode {
            name: r.name.unwrap_or_else(|| r.node.clone()),
            node: r.node,
            state: r.state,
            timeout: Duration::from_secs(r.timeout.unwrap_or(300)),
        })
    }

    pub fn read_only(&self) -> bool {
        self.state == Wanted::Ready
    }

    fn view_script(&self) -> String {
        format!(
            "docker node inspect {id} --format '{{{{.Spec.Role}}}}|{{{{.Spec.Availability}}}}|{{{{.Status.State}}}}|{{{{index .Spec.Labels \"{LABEL}\"}}}}|{{{{index .Spec.Labels \"{DEMOTED}\"}}}}|{{{{if .ManagerStatus}}}}member{{{{end}}}}' && echo --- && \
             docker node ls --filter role=manager --format '{{{{.ID}}}}|{{{{.Hostname}}}}|{{{{.ManagerStatus}}}}|{{{{.Status}}}}'",
            id = self.node
        )
    }

    pub fn probe(&self) -> Probe {
        Probe::Shell(self.view_script())
    }

    fn parse(&self, text: &str) -> Result<View, ModuleError> {
        let bad = || ModuleError::Probe {
            message: format!("the swarm's view of node `{}`: {text:?}", self.name),
        };
        let (node, managers) = text.split_once("---").ok_or_else(bad)?;
        let f: Vec<&str> = node.trim().split('|').collect();
        let [role, availability, status, drained, demoted, member] = f.as_slice() else {
            return Err(bad());
        };
        let mut manager_status = None;
        let mut other_managers = Vec::new();
        for l in managers.lines() {
            if let [id, host, ms, st] = l.trim().split('|').collect::<Vec<_>>().as_slice() {
                if *id == self.node {
                    manager_status = Some(ms.to_string());
                } else {
                    other_managers.push((host.to_string(), ms.to_string(), st.to_string()));
                }
            }
        }
        Ok(View {
            role: role.to_string(),
            availability: availability.to_string(),
            status: status.to_string(),
            drained_by_us: *drained == "true",
            demoted_by_us: *demoted == "true",
            raft_member: *member == "member",
            manager_status,
            other_managers,
        })
    }

    /// The first manager (other than this node) that is not Reachable and Ready.
    fn manager_down(v: &View) -> Option<String> {
        v.other_managers
            .iter()
            .find(|(_, ms, st)| !matches!(ms.as_str(), "Leader" | "Reachable") || st != "Ready")
            .map(|(h, ms, st)| {
                let ms = if ms.is_empty() { "unreachable" } else { ms };
                format!("manager `{h}` is {ms} ({st})")
            })
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        if let Seen::Output { code: Some(c), .. } = seen {
            if *c != 0 {
                return Err(ModuleError::Probe {
                    message: format!(
                        "no manager's answer about node `{}` (exit {c}): {}",
                        self.name,
                        seen.output()?.trim()
                    ),
                });
            }
        }
        let v = self.parse(seen.output()?)?;
        Ok(match self.state {
            Wanted::Drained => {
                // A manager restarted while another is down may leave the swarm without a
                // quorum: refuse before touching anything.
                if v.role == "manager" {
                    if let Some(down) = Self::manager_down(&v) {
                        return Err(ModuleError::NotConverged {
                            report: format!(
                                "{down}: restarting manager `{}` now could lose the swarm's quorum; bring it back first",
                                self.name
                            ),
                        });
                    }
                }
                if v.availability == "drain" {
                    vec![]
                } else {
                    vec![Change::Run(format!(
                        "drain node {} for a Docker restart",
                        self.name
                    ))]
                }
            }
            Wanted::Active if v.drained_by_us || v.demoted_by_us => vec![Change::Run(format!(
                "make node {} active again after its Docker restart",
                self.name
            ))],
            Wanted::Active => vec![],
            Wanted::Ready => vec![Change::Wait(format!(
                "node {} Ready, every manager reachable",
                self.name
            ))],
        })
    }

    pub async fn apply(&self, ctx: &Context<'_>) -> Result<Applied, ModuleError> {
        match self.state {
            Wanted::Drained => {
                self.hand_over_leadership(ctx).await?;
                self.drain(ctx).await
            }
            Wanted::Active => self.give_back(ctx).await,
            Wanted::Ready => self.ready(ctx).await,
        }
    }

    async fn view(&self, ctx: &Context<'_>) -> Result<View, ModuleError> {
        let out = ctx
            .run_ok("reading the swarm", &self.view_script(), None)
            .await?;
        self.parse(&out.stdout_str())
    }

    /// Polls the swarm's view every second until `wrong` finds nothing wrong in it for
    /// `hold` in a row (a failed read counts as wrong), or the timeout passes; the error
    /// says what was last wrong.
    async fn wait_for(
        &self,
        ctx: &Context<'_>,
        hold: Duration,
        wrong: impl Fn(&View) -> Option<String>,
    ) -> Result<Applied, ModuleError> {
        let deadline = Instant::now() + self.timeout;
        let mut right_since: Option<Instant> = None;
        loop {
            let out = ctx.run(&self.view_script(), None).await?;
            let why = if out.code != Some(0) {
                Some(format!(
                    "no answer from the swarm: {}",
                    out.stderr_str().trim()
                ))
            } else {
                wrong(&self.parse(&out.stdout_str())?)
            };
            match why {
                None => {
                    if right_since.get_or_insert_with(Instant::now).elapsed() >= hold {
                        return Ok(Applied { output: Some(out) });
                    }
                }
                Some(why) => {
                    right_since = None;
                    if Instant::now() >= deadline {
                        return Err(ModuleError::NotConverged {
                            report: format!("after {}s, {why}", self.timeout.as_secs()),
                        });
                    }
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A leader with other managers is demoted first, so another manager leads before it
    /// stops; `give_back` promotes it again.
    async fn hand_over_leadership(&self, ctx: &Context<'_>) -> Result<(), ModuleError> {
        let v = self.view(ctx).await?;
        if v.manager_status.as_deref() != Some("Leader") || v.other_managers.is_empty() {
            return Ok(());
        }
        let id = &self.node;
        ctx.run_ok(
            "handing the leadership over",
            &retried(&format!(
                "docker node update --label-add {DEMOTED}=true --role worker {id}"
            )),
            None,
        )
        .await?;
        // Docker restarted before the demotion is over comes back with its manager
        // certificate, rejoins Raft under a new id, and then (seen on the lab) panics on
        // the leader's log ("tocommit is out of range") and never starts again.
        self.wait_for(ctx, Duration::ZERO, |v| {
            if v.raft_member {
                Some(format!("node `{}` is still a Raft member", self.name))
            } else if !v.other_managers.iter().any(|(_, ms, _)| ms == "Leader") {
                Some("no other manager leads the swarm".into())
            } else {
                None
            }
        })
        .await?;
        Ok(())
    }

    /// Makes the node active again, and a manager again if its restart demoted it.
    async fn give_back(&self, ctx: &Context<'_>) -> Result<Applied, ModuleError> {
        let v = self.view(ctx).await?;
        let id = &self.node;
        // One update: two in a row can meet "update out of sequence".
        let mut update = String::from("docker node update");
        if v.drained_by_us {
            update.push_str(&format!(" --availability active --label-rm {LABEL}"));
        }
        if v.demoted_by_us {
            update.push_str(&format!(" --role manager --label-rm {DEMOTED}"));
        }
        let out = ctx
            .run_ok(
                "giving the node back",
                &retried(&format!("{update} {id}")),
                None,
            )
            .await?;
        if v.demoted_by_us {
            // Held, as `ready` is: a manager that fails right after joining was Reachable
            // for a moment.
            self.wait_for(ctx, STABLE, |v| {
                let ms = v.manager_status.as_deref();
                (!matches!(ms, Some("Reachable" | "Leader")) || v.status != "ready").then(|| {
                    format!(
                        "the promoted node `{}` is {} ({})",
                        self.name,
                        ms.unwrap_or("not a manager"),
                        v.status
                    )
                })
            })
            .await?;
        }
        Ok(Applied { output: Some(out) })
    }

    /// Drains the node, then waits until every replicated service that ran a task there
    /// runs all its tasks elsewhere (or has a task no other node can take: pinned to this
    /// node, it is down until the node is back).
    async fn drain(&self, ctx: &Context<'_>) -> Result<Applied, ModuleError> {
        let id = &self.node;
        let out = ctx
            .run_ok(
                "draining the node",
                &format!(
                    "t=$(docker node ps {id} --filter desired-state=running -q) && \
                     {{ [ -z \"$t\" ] || docker inspect --format '{{{{.ServiceID}}}}' $t; }} | sort -u > /tmp/.minipaas-drain-{id} && \
                     {} && \
                     cat /tmp/.minipaas-drain-{id} && rm -f /tmp/.minipaas-drain-{id}",
                    retried(&format!(
                        "docker node update --availability drain --label-add {LABEL}=true {id}"
                    ))
                ),
                None,
            )
            .await?;
        let services: Vec<String> = out
            .stdout_str()
            .lines()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map(str::to_string)
            .collect();
        let mut script =
            format!("echo left $(docker node ps {id} --filter desired-state=running -q | wc -l)\n");
        for s in &services {
            script.push_str(&format!(
                "[ \"$(docker service inspect {s} --format '{{{{if .Spec.Mode.Replicated}}}}r{{{{end}}}}' 2>/dev/null)\" = r ] && \
                 docker service ps {s} --filter desired-state=running --format '{s}|{{{{.Name}}}}|{{{{.CurrentState}}}}|{{{{.Error}}}}'\n"
            ));
        }
        script.push_str("true\n");
        let deadline = Instant::now() + self.timeout;
        loop {
            let out = ctx.run_ok("reading the drain", &script, None).await?;
            let waiting = drain_waiting(&out.stdout_str());
            if waiting.is_empty() {
                return Ok(Applied { output: Some(out) });
            }
            if Instant::now() >= deadline {
                return Err(ModuleError::NotConverged {
                    report: format!(
                        "node `{}`'s work has not moved after {}s: {}",
                        self.name,
                        self.timeout.as_secs(),
                        waiting.join("; ")
                    ),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn ready(&self, ctx: &Context<'_>) -> Result<Applied, ModuleError> {
        self.wait_for(ctx, STABLE, |v| {
            if v.status != "ready" {
                Some(format!("node `{}` is {}", self.name, v.status))
            } else {
                Self::manager_down(v)
            }
        })
        .await
    }
}

/// `update` (a `docker node update`), tried again while the swarm answers "update out of
/// sequence": a node's spec changed by the swarm between the read and the write of an update.
fn retried(update: &str) -> String {
    format!(
        "i=0; until out=$({update} 2>&1 >/dev/null); do i=$((i+1)); \
         case \"$out\" in *'out of sequence'*) [ $i -lt 10 ] && sleep 1 && continue ;; esac; \
         echo \"$out\" >&2; exit 1; done"
    )
}

/// What a drain still waits for, from the wait script's output: tasks left on the node, and
/// tasks of moved services not yet running elsewhere (a task pending for want of a suitable
/// node waits for nothing).
fn drain_waiting(out: &str) -> Vec<String> {
    let mut waiting = Vec::new();
    for l in out.lines() {
        if let Some(n) = l.strip_prefix("left ") {
            if n.trim() != "0" {
                waiting.push(format!("{} task(s) still on the node", n.trim()));
            }
            continue;
        }
        let f: Vec<&str> = l.splitn(4, '|').collect();
        if let [_, task, state, error] = f.as_slice() {
            if !state.starts_with("Running") && !error.contains("no suitable node") {
                waiting.push(format!("task {task} is {}", state.trim()));
            }
        }
    }
    waiting
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(state: &str) -> SwarmNode {
        SwarmNode::new(&serde_json::json!({
            "node": "abcdefghijklmnopqrstuvwxy", "name": "node2", "state": state}))
        .unwrap()
    }

    fn seen(text: &str) -> Seen {
        Seen::Output {
            code: Some(0),
            stdout: text.into(),
        }
    }

    #[test]
    fn the_node_id_must_be_a_swarm_id() {
        for bad in [
            "x",
            "abcdefghijklmnopqrstuvwx;",
            "ABCDEFGHIJKLMNOPQRSTUVWXY",
        ] {
            let e = SwarmNode::new(&serde_json::json!({"node": bad, "state": "ready"}));
            assert!(e.is_err(), "{bad}");
        }
    }

    #[test]
    fn a_manager_is_not_drained_while_another_manager_is_down() {
        let up = "manager|active|ready|||member\n---\nabcdefghijklmnopqrstuvwxy|node2|Reachable|Ready\nm1|node1|Leader|Ready\nm3|node3|Reachable|Ready\n";
        assert_eq!(module("drained").check(&seen(up)).unwrap().len(), 1);
        let down = "manager|active|ready|||member\n---\nabcdefghijklmnopqrstuvwxy|node2|Reachable|Ready\nm1|node1|Leader|Ready\nm3|node3|Unreachable|Down\n";
        let e = module("drained")
            .check(&seen(down))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`node3` is Unreachable") && e.contains("quorum"),
            "{e}"
        );
        // A worker's restart does not touch the quorum.
        let worker =
            "worker|active|ready|||\n---\nm1|node1|Leader|Ready\nm3|node3|Unreachable|Down\n";
        assert_eq!(module("drained").check(&seen(worker)).unwrap().len(), 1);
        // Already drained: nothing to do.
        let drained = "worker|drain|ready|true||\n---\nm1|node1|Leader|Ready\n";
        assert!(module("drained").check(&seen(drained)).unwrap().is_empty());
    }

    #[test]
    fn only_a_node_drained_for_a_restart_is_made_active() {
        let ours = "worker|drain|ready|true||\n---\nm1|node1|Leader|Ready\n";
        let operators = "worker|drain|ready|||\n---\nm1|node1|Leader|Ready\n";
        let demoted = "worker|active|ready||true|\n---\nm1|node1|Leader|Ready\n";
        assert_eq!(module("active").check(&seen(ours)).unwrap().len(), 1);
        assert_eq!(module("active").check(&seen(demoted)).unwrap().len(), 1);
        assert!(module("active").check(&seen(operators)).unwrap().is_empty());
    }

    #[test]
    fn a_drain_waits_for_tasks_to_run_elsewhere_but_not_for_pinned_ones() {
        assert!(drain_waiting("left 0\ns1|web.1|Running 3 seconds ago|\n").is_empty());
        assert_eq!(drain_waiting("left 1\n").len(), 1);
        assert_eq!(
            drain_waiting("left 0\ns1|web.2|Starting 1 second ago|\n"),
            ["task web.2 is Starting 1 second ago"]
        );
        assert!(drain_waiting(
            "left 0\ns1|db.1|Pending 2 seconds ago|no suitable node (1 node not available)\n"
        )
        .is_empty());
    }
}
