//! Three managers (the `mproll` lab: node1-node3 managers, node4 a worker): the first inits, the
//! others join as managers, a manager new to the swarm joins as one, and deploys go on through
//! the next manager of the inventory while the main one is down.

use std::path::Path;
use std::time::Duration;

use crate::common::deploy::{mp_run, set_version, small_stack};
use crate::common::managers::{self, provision};
use crate::common::{self, changed, Lab};

const STACK: &str = "mpmgr";

/// `docker node ls` through `via`: (hostname, manager status, status) per node.
fn nodes(lab: &Lab, via: &str) -> Vec<(String, String, String)> {
    lab.ssh_ok(
        via,
        "docker node ls --format '{{.Hostname}}|{{.ManagerStatus}}|{{.Status}}'",
    )
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (f.len() == 3).then(|| (f[0].to_string(), f[1].to_string(), f[2].to_string()))
    })
    .collect()
}

/// Each of node1-node3 a Ready manager (Leader or Reachable), node4 a Ready worker.
fn three_managers_and_a_worker(lab: &Lab, via: &str) -> bool {
    let n = nodes(lab, via);
    n.len() == 4
        && n.iter().all(|(h, ms, st)| {
            st == "Ready"
                && if h == "node4" {
                    ms.is_empty()
                } else {
                    ms == "Leader" || ms == "Reachable"
                }
        })
}

/// The `V` environment variable of the stack's `web` service, as the swarm has it.
fn web_version(lab: &Lab, via: &str) -> String {
    lab.ssh_ok(
        via,
        &format!("docker service inspect {STACK}_web --format '{{{{json .Spec.TaskTemplate.ContainerSpec.Env}}}}'"),
    )
}

/// The labels of `node` as JSON, through node1.
fn labels(lab: &Lab, node: &str) -> String {
    lab.ssh_ok(
        "node1",
        &format!("docker node inspect {node} --format '{{{{json .Spec.Labels}}}}'"),
    )
}

const PG_LABEL: &str = "\"minipaas.stateful.postgres\":\"true\"";

/// `minipaas_stateful: [postgres]` on node2: provision labels node2, `code init` pins the
/// runtime's PostgreSQL to the label, and a service placed that way runs on node2 only. The
/// pin moves with the host var; two hosts claiming it is an error naming both.
fn stateful_services_stay_on_the_node_the_inventory_pins_them_to(lab: &Lab) {
    let pg = || serde_yaml::Value::Sequence(vec!["postgres".into()]);
    let on_node2 = managers::inventory_with(lab, "pinned", &[("node2", "minipaas_stateful", pg())]);
    let labelled = managers::provision_with(lab, &on_node2, "local1", &[]);
    assert_eq!(
        changed(&labelled),
        ["\"node1\": \"stateful service labels (node2)\""],
        "{:#?}",
        changed(&labelled)
    );
    assert!(
        labels(lab, "node2").contains(PG_LABEL),
        "{}",
        labels(lab, "node2")
    );
    let again = managers::provision_with(lab, &on_node2, "local1", &[]);
    assert!(changed(&again).is_empty(), "{:#?}", changed(&again));

    let dir = tempfile::tempdir().unwrap();
    let env = dir.path();
    std::fs::write(
        env.join("compose.yaml"),
        "services:\n  web:\n    image: minipaas-test-busybox\n",
    )
    .unwrap();
    let init = |inventory: &Path| {
        mp_run(
            env,
            &[
                "code",
                "init",
                "-c",
                "compose.yaml",
                "--inventory",
                inventory.to_str().unwrap(),
            ],
        )
    };
    let ran = init(&on_node2);
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    // Caddy is not pinned: with three managers, init says so.
    assert!(
        ran.stderr
            .contains("warning: caddy may start on any of the 3 managers"),
        "{}",
        ran.text()
    );
    let runtime: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(env.join("runtime/postgres.yaml")).unwrap())
            .unwrap();
    let constraint = runtime["services"]["postgres"]["deploy"]["placement"]["constraints"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(constraint, "node.labels.minipaas.stateful.postgres == true");
    lab.ssh_ok(
        "node1",
        &format!(
            "docker service rm mpt-pinned >/dev/null 2>&1; \
             docker service create -q --detach --name mpt-pinned --constraint '{constraint}' \
             minipaas-test-busybox /bin/busybox sleep 3600 >/dev/null"
        ),
    );
    let node = common::wait_for("the pinned task running", Duration::from_secs(60), || {
        let n = lab.ssh_ok(
            "node1",
            "docker service ps mpt-pinned --filter desired-state=running --format '{{.Node}} {{.CurrentState}}'",
        );
        n.contains("Running")
            .then(|| n.split_whitespace().next().unwrap_or("").to_string())
    });
    assert_eq!(node, "node2");
    lab.ssh_ok("node1", "docker service rm mpt-pinned >/dev/null");

    // The pin moves to node3: node2 loses the label.
    let on_node3 = managers::inventory_with(lab, "moved", &[("node3", "minipaas_stateful", pg())]);
    managers::provision_with(lab, &on_node3, "local1", &[]);
    assert!(
        !labels(lab, "node2").contains("minipaas.stateful"),
        "{}",
        labels(lab, "node2")
    );
    assert!(
        labels(lab, "node3").contains(PG_LABEL),
        "{}",
        labels(lab, "node3")
    );

    // Two hosts for one service's data: code init refuses, naming both.
    let both = managers::inventory_with(
        lab,
        "both",
        &[
            ("node2", "minipaas_stateful", pg()),
            ("node3", "minipaas_stateful", pg()),
        ],
    );
    let ran = init(&both);
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    assert!(
        ran.stderr.contains("`node2`") && ran.stderr.contains("`node3`"),
        "{}",
        ran.text()
    );

    // No pins again: the labels go.
    let plain = provision(lab, "local1", &[]);
    assert_eq!(
        changed(&plain),
        ["\"node1\": \"stateful service labels (node3)\""]
    );
    assert!(!labels(lab, "node3").contains("minipaas.stateful"));
}

#[test]
fn lab_three_managers_join_and_deploys_go_through_the_next_manager_while_the_first_is_down() {
    let (_guard, lab) = managers::provisioned("local1");
    // Right after a first provision a node may still be turning Ready.
    common::wait_until(
        "three managers and a worker",
        Duration::from_secs(60),
        || three_managers_and_a_worker(&lab, "node1"),
    );
    let again = provision(&lab, "local1", &[]);
    assert!(changed(&again).is_empty(), "{:#?}", changed(&again));

    // A manager new to the swarm (node3 left it, as a host added to the inventory later is
    // not in it) joins as a manager; nothing else changes.
    lab.ssh_ok(
        "node1",
        "docker node demote node3 >/dev/null && \
         for i in $(seq 60); do [ -z \"$(docker node inspect node3 --format '{{if .ManagerStatus}}m{{end}}')\" ] && break; sleep 1; done",
    );
    lab.ssh_ok("node3", "docker swarm leave --force >/dev/null");
    lab.ssh_ok(
        "node1",
        "for i in $(seq 60); do docker node rm --force node3 >/dev/null 2>&1 && break; sleep 1; done; \
         ! docker node inspect node3 >/dev/null 2>&1",
    );
    let joined = provision(&lab, "local1", &[]);
    let joins: Vec<String> = changed(&joined);
    assert!(
        joins
            .iter()
            .any(|c| c.contains("node3") && c.contains("join the swarm")),
        "{joins:#?}"
    );
    assert!(
        joins.iter().all(|c| c.contains("node3")),
        "only node3 changes: {joins:#?}"
    );
    common::wait_until("node3 a manager again", Duration::from_secs(60), || {
        three_managers_and_a_worker(&lab, "node1")
    });
    assert!(changed(&provision(&lab, "local1", &[])).is_empty());

    stateful_services_stay_on_the_node_the_inventory_pins_them_to(&lab);

    // A stack of its own, deployed through node1.
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path();
    let compose = "services:\n  web:\n    image: minipaas-test-busybox\n    \
                   command: [\"/bin/busybox\", \"httpd\", \"-f\", \"-p\", \"8080\"]\n    \
                   environment:\n      V: \"${MINIPAAS_DEPLOY_VERSION}\"\n    \
                   deploy:\n      replicas: 2\n";
    small_stack(&lab, env, STACK, compose, &["web"]);
    set_version(env, "1");
    let first = mp_run(env, &["deploy", "rollout", "--timeout", "120"]);
    assert_eq!(first.code, Some(0), "{}", first.text());
    assert!(!first.text().contains("did not answer"), "{}", first.text());
    assert!(web_version(&lab, "node1").contains("V=1"));

    // node1 down (the machine stopped): once the other two elected a leader, a new version
    // rolls out and status answers, through node2, and both say so.
    let node1 = lab.node("node1").container.clone();
    common::docker(&["stop", &node1]);
    // And once the swarm sees node1 Down: before that it still assigns tasks to node1, where
    // they never start (seen when node1 was not the leader, so no election took that time).
    common::wait_until(
        "a leader among node2 and node3, and node1 Down",
        Duration::from_secs(90),
        || {
            let n = nodes(&lab, "node2");
            n.iter().any(|(_, ms, _)| ms == "Leader")
                && n.iter().any(|(h, _, st)| h == "node1" && st == "Down")
        },
    );
    set_version(env, "2");
    let rolled = mp_run(env, &["deploy", "rollout", "--timeout", "180"]);
    let text = rolled.text();
    assert_eq!(rolled.code, Some(0), "{text}");
    assert!(
        text.contains("manager `node1` did not answer")
            && text.contains("going through manager `node2`"),
        "{text}"
    );
    assert!(web_version(&lab, "node2").contains("V=2"));
    let status = mp_run(env, &["deploy", "status", "--format", "json"]);
    assert_eq!(status.code, Some(0), "{}", status.text());
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(doc["manager"], "node2", "{doc:#}");

    // node1 back: it rejoins as a manager by itself, and a provision neither inits nor joins
    // anything; the next one changes nothing.
    common::docker(&["start", &node1]);
    let lab = managers::up();
    common::wait_until("node1 a manager again", Duration::from_secs(180), || {
        three_managers_and_a_worker(&lab, "node2")
    });
    let back = provision(&lab, "local1", &[]);
    let swarm_changes: Vec<String> = changed(&back)
        .into_iter()
        .filter(|c| c.contains("swarm"))
        .collect();
    assert!(swarm_changes.is_empty(), "{swarm_changes:#?}");
    assert!(changed(&provision(&lab, "local1", &[])).is_empty());
    let after = mp_run(env, &["deploy", "status"]);
    assert!(!after.text().contains("did not answer"), "{}", after.text());

    crate::common::deploy::stack_gone(&lab, STACK);
    managers::passed(&lab);
}
