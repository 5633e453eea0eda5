//! Provisioning a live cluster: a Docker change restarts one node's engine at a time, after
//! Swarm moved its work away, on a lab of 3 managers and 1 worker (`mproll`) with a replicated
//! service of 2 tasks. A watcher samples every 200 ms from outside minipaas and outside the
//! nodes' engines (a loop in each node's container, which a dockerd restart does not stop).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::managers::{self, provision};
use crate::common::{self, changed, Lab};

const SERVICE: &str = "mpt-roll-web";

/// One sample of one node: engine up, `docker node ls` answered (managers), running tasks of
/// the service as that manager sees them.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: u64,
    up: bool,
    quorum: bool,
    running: u32,
}

struct Watcher {
    children: Vec<Child>,
    samples: Arc<Mutex<Vec<Vec<Sample>>>>,
}

impl Watcher {
    fn start(lab: &Lab) -> Watcher {
        let samples = Arc::new(Mutex::new(vec![Vec::new(); lab.nodes.len()]));
        let mut children = Vec::new();
        for (i, n) in lab.nodes.iter().enumerate() {
            let script = format!(
                "while :; do t=$(date +%s%3N); \
                 if timeout 1 docker version --format x >/dev/null 2>&1; then u=1; else u=0; fi; \
                 q=0; r=0; if [ {m} = 1 ] && [ $u = 1 ]; then \
                   timeout 1 docker node ls -q >/dev/null 2>&1 && q=1; \
                   r=$(timeout 1 docker service ps {SERVICE} --filter desired-state=running --format '{{{{.CurrentState}}}}' 2>/dev/null | grep -c ^Running); fi; \
                 echo \"$t $u $q ${{r:-0}}\"; sleep 0.2; done",
                m = u8::from(n.group == "managers")
            );
            let mut child = std::process::Command::new("docker")
                .args(["exec", &n.container, "sh", "-c", &script])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let out = child.stdout.take().unwrap();
            let samples = samples.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let f: Vec<u64> = line
                        .split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect();
                    if let [at_ms, u, q, r] = f[..] {
                        let s = Sample {
                            at_ms,
                            up: u == 1,
                            quorum: q == 1,
                            running: r as u32,
                        };
                        samples.lock().unwrap()[i].push(s);
                    }
                }
            });
            children.push(child);
        }
        Watcher { children, samples }
    }

    /// Stops the loops; the samples per node.
    fn stop(mut self) -> Vec<Vec<Sample>> {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        std::thread::sleep(Duration::from_millis(300));
        let s = self.samples.lock().unwrap().clone();
        s
    }
}

/// The state at every 200 ms tick: each node's latest sample at or before the tick.
fn ticks(samples: &[Vec<Sample>]) -> Vec<(u64, Vec<Sample>)> {
    let start = samples
        .iter()
        .filter_map(|s| s.first())
        .map(|s| s.at_ms)
        .max()
        .unwrap();
    let end = samples
        .iter()
        .filter_map(|s| s.last())
        .map(|s| s.at_ms)
        .min()
        .unwrap();
    (start..=end)
        .step_by(200)
        .map(|t| {
            let now = samples
                .iter()
                .map(|s| *s.iter().rev().find(|x| x.at_ms <= t).unwrap())
                .collect();
            (t, now)
        })
        .collect()
}

fn dockerd_pid(lab: &Lab, node: &str) -> String {
    lab.ssh_ok(node, "systemctl show docker -p MainPID --value")
}

#[test]
fn lab_a_docker_change_restarts_one_engine_at_a_time_and_keeps_quorum_and_service() {
    let (_guard, lab) = managers::provisioned("local0");
    lab.ssh_ok(
        "node1",
        &format!(
            "docker service rm {SERVICE} >/dev/null 2>&1; \
             docker service create -q --detach --name {SERVICE} --replicas 2 \
             minipaas-test-busybox /bin/busybox httpd -f -p 8080 >/dev/null"
        ),
    );
    common::wait_until("2 running tasks", Duration::from_secs(90), || {
        let out = lab.ssh_ok(
            "node1",
            &format!("docker service ps {SERVICE} --filter desired-state=running --format '{{{{.CurrentState}}}}' | grep -c ^Running || true"),
        );
        out.trim() == "2"
    });
    let before: Vec<String> = lab
        .nodes
        .iter()
        .map(|n| dockerd_pid(&lab, &n.name))
        .collect();

    let watcher = Watcher::start(&lab);
    std::thread::sleep(Duration::from_secs(2));
    let recap = provision(&lab, "local1", &[]);
    std::thread::sleep(Duration::from_secs(1));
    let samples = watcher.stop();

    // Every engine was restarted, and the watcher saw each one down: it can see an outage.
    for (i, n) in lab.nodes.iter().enumerate() {
        assert_ne!(
            dockerd_pid(&lab, &n.name),
            before[i],
            "{}: Docker not restarted",
            n.name
        );
        let daemon = lab.ssh_ok(&n.name, "cat /etc/docker/daemon.json");
        assert!(
            daemon.contains("\"syslog-facility\": \"local1\""),
            "{daemon}"
        );
        assert!(
            samples[i].len() > 100,
            "{}: {} samples",
            n.name,
            samples[i].len()
        );
        assert!(
            samples[i].iter().any(|s| !s.up),
            "{}: never seen down",
            n.name
        );
    }
    let managers: Vec<usize> = (0..lab.nodes.len())
        .filter(|i| lab.nodes[*i].group == "managers")
        .collect();
    let ticks = ticks(&samples);
    assert!(ticks.len() > 100, "{} ticks", ticks.len());
    for (t, now) in &ticks {
        let down: Vec<&str> = lab
            .nodes
            .iter()
            .zip(now)
            .filter(|(_, s)| !s.up)
            .map(|(n, _)| n.name.as_str())
            .collect();
        assert!(down.len() <= 1, "at {t} ms, engines down on {down:?}");
        assert!(
            managers.iter().any(|i| now[*i].quorum),
            "at {t} ms no manager answered `docker node ls`: {now:?}"
        );
        let running = managers.iter().map(|i| now[*i].running).max().unwrap_or(0);
        assert!(
            running >= 1,
            "at {t} ms {SERVICE} had no running task: {now:?}"
        );
    }
    // The rolling play ran each node in a batch of its own.
    let drained: Vec<&str> = recap["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| {
            t["task"] == "drain the node for its Docker restart" && t["status"] == "changed"
        })
        .map(|t| t["host"].as_str().unwrap())
        .collect();
    assert_eq!(drained, ["node1", "node2", "node3", "node4"]);
    let nodes = lab.ssh_ok(
        "node2",
        "docker node ls --format '{{.Hostname}} {{.Availability}} {{.ManagerStatus}}'",
    );
    for n in ["node1", "node2", "node3"] {
        assert!(
            nodes.lines().any(|l| l.starts_with(n)
                && l.contains("Active")
                && (l.contains("Leader") || l.contains("Reachable"))),
            "{n} is not an active manager again:\n{nodes}"
        );
    }
    assert!(nodes.contains("node4 Active"), "{nodes}");
    let status = lab.ssh_ok(
        "node2",
        "docker node ls --format '{{.Hostname}} {{.Status}}'",
    );
    assert_eq!(status.matches(" Ready").count(), 4, "{status}");

    let again = provision(&lab, "local1", &[]);
    assert!(changed(&again).is_empty(), "{:#?}", changed(&again));
    lab.ssh_ok("node1", &format!("docker service rm {SERVICE} >/dev/null"));
    the_role_check_waits_out_a_leaders_demotion(&lab);
    managers::passed(&lab);
}

/// The shell of docker_restart.yaml's task `name`, as the node runs it.
fn restart_task_shell(name: &str) -> String {
    let path = crate::common::site::root().join("playbooks/tasks/docker_restart.yaml");
    let tasks: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let task = tasks
        .as_sequence()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task `{name}`"));
    task["command"]
        .as_str()
        .unwrap()
        .replace("{% raw %}", "")
        .replace("{% endraw %}", "")
}

/// The leader demoted as `swarm_node` does it (the wait for its Raft membership to end seen
/// from another manager): the restart's role check lets it go only once the node's own
/// certificate says worker and its manager has stopped. CI restarted a demoted leader while
/// `docker info` still said ControlAvailable, and its engine never started again.
fn the_role_check_waits_out_a_leaders_demotion(lab: &Lab) {
    let leader = lab.ssh_ok(
        "node2",
        "docker node ls --filter role=manager --format '{{.Hostname}} {{.ManagerStatus}}' | awk '$2 == \"Leader\" {print $1}'",
    );
    let leader = leader.trim().to_string();
    let via = ["node1", "node2", "node3"]
        .into_iter()
        .find(|n| *n != leader)
        .unwrap();
    lab.ssh_ok(
        via,
        &format!(
            "docker node update --role worker {leader} >/dev/null && \
             for i in $(seq 60); do [ -z \"$(docker node inspect {leader} --format '{{{{if .ManagerStatus}}}}m{{{{end}}}}')\" ] && exit 0; sleep 1; done; exit 1"
        ),
    );
    lab.ssh_ok(
        &leader,
        &restart_task_shell("no role change is under way on the node"),
    );
    let state = lab.ssh_ok(
        &leader,
        "c=/var/lib/docker/swarm/certificates/swarm-node.crt; \
         sed '/-----END/q' $c | grep -v -- ----- | base64 -d | grep -ao 'swarm-manager\\|swarm-worker' | head -n 1; \
         [ -S /var/run/docker/swarm/control.sock ] && echo control-socket || true",
    );
    assert_eq!(state.trim(), "swarm-worker", "{leader} after the check");
    lab.ssh_ok(
        via,
        &format!("docker node update --role manager {leader} >/dev/null"),
    );
    common::wait_until(
        "the leader a manager again",
        Duration::from_secs(120),
        || {
            let s = lab.ssh_ok(
                via,
                "docker node ls --format '{{.Hostname}} {{.ManagerStatus}} {{.Status}}'",
            );
            s.lines().any(|l| l == format!("{leader} Reachable Ready"))
        },
    );
}
