//! Values a host prints never become code on another host: the real
//! playbooks/tasks/swarm_labels.yaml on the shared lab's main manager, with a worker whose
//! `docker` prints a shell injection as its Swarm node id.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{lab, with_status, Lab, Mp, Ran};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test's own directory on node2: a fake `docker`, first on PATH only for the one task
/// that reads the node id; nothing else on the node changes.
const FAKE: &str = "/opt/mpt-inject";

/// Removes the fake docker and any marker, whatever the test did.
struct Cleanup<'a>(&'a Lab, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in ["node1", "node2"] {
            let _ = self.0.ssh(n, &format!("rm -rf {FAKE} {}", self.1));
        }
    }
}

#[test]
fn lab_swarm_labels_refuse_a_node_id_that_is_a_shell_injection() {
    let lab = lab();
    let marker = format!("/tmp/pwned-mpt-inject-{}", std::process::id());
    let _cleanup = Cleanup(lab, marker.clone());
    // Three ways into a shell: substitution, backticks, a command separator.
    let printed = format!("abc$(touch {marker})`touch {marker}`;touch {marker}");
    let dir = tempfile::tempdir().unwrap();
    lab.ssh_ok("node2", &format!("mkdir -p {FAKE}/bin"));
    fake_docker(lab, dir.path(), &printed);
    let plan = dir.path().join("labels.yaml");
    // The id is read as swarm_join.yaml reads it, on node2 through the fake docker; every
    // other node prints nothing, as a node outside a swarm does.
    std::fs::write(
        &plan,
        format!(
            "- name: node ids\n  hosts: all\n  become: true\n  tasks:\n\
             \x20   - name: read this node's Swarm id\n\
             \x20     command: \"{{% raw %}}export PATH={FAKE}/bin:$PATH; docker info --format '{{{{.Swarm.NodeID}}}}'{{% endraw %}}\"\n\
             \x20     changed_when: false\n\
             \x20     register: swarm_node_id\n\
             \x20     when: inventory_hostname == 'node2'\n\
             \x20   - set_fact: {{swarm_node_labels: {{zone: a}}}}\n\
             \x20     when: inventory_hostname == 'node2'\n\
             - name: labels\n  hosts: all\n  become: true\n  tasks:\n\
             \x20   - import_tasks: {labels}\n",
            labels = root().join("playbooks/tasks/swarm_labels.yaml").display(),
        ),
    )
    .unwrap();
    for flags in [&["--check"][..], &[]] {
        let (out, recap) = provision(lab, &plan, flags);
        for n in ["node1", "node2", "node3"] {
            let seen = lab.ssh(n, &format!("test -e {marker}"));
            assert!(
                !seen.status.success(),
                "{flags:?}: `{marker}` exists on {n}: the node id ran as code\n{recap:#}"
            );
        }
        assert_eq!(out.code, Some(1), "{flags:?}: {}", out.text());
        let failed = with_status(&recap, "failed");
        assert_eq!(failed.len(), 1, "{flags:?}: {recap:#}");
        assert_eq!(failed[0]["host"], "node1", "{recap:#}");
        let task = failed[0]["task"].as_str().unwrap();
        assert!(task.contains("Swarm ids"), "{flags:?}: {recap:#}");
        let message = failed[0]["message"].as_str().unwrap();
        assert!(
            message.contains("`node2`") && message.contains("Swarm node id"),
            "{message}"
        );
    }

    // A real Swarm id passes the guard and reaches the labels task, quoted (a no-op for it):
    // in check mode node1 reports it would label node2 (the shared lab is no swarm, so the
    // `unless` finds no such node).
    fake_docker(lab, dir.path(), "0123456789abcdefghijklmno");
    let (out, recap) = provision(lab, &plan, &["--check"]);
    assert_eq!(out.code, Some(0), "{}", out.text());
    let labels: Vec<&Value> = recap["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["host"] == "node1" && t["task"] == "node labels (node2)")
        .collect();
    assert_eq!(labels.len(), 1, "{recap:#}");
    assert_eq!(labels[0]["status"], "changed", "{recap:#}");
}

/// Puts a `docker` that prints `printed` (and nothing else) into node2's FAKE/bin.
fn fake_docker(lab: &Lab, tmp: &Path, printed: &str) {
    let fake = tmp.join("docker");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\n# stand-in docker of minipaas tests: prints what the test wants as the node id\ncat <<'END'\n{printed}\nEND\n"),
    )
    .unwrap();
    lab.copy_in("node2", &fake, &format!("{FAKE}/bin/docker"));
    // The premise: node2's docker, first on PATH, prints `printed` as its node id.
    let read = lab.ssh_ok(
        "node2",
        &format!(
            "chmod 0755 {FAKE}/bin/docker && export PATH={FAKE}/bin:$PATH && docker info --format '{{{{.Swarm.NodeID}}}}'"
        ),
    );
    assert_eq!(read, printed);
}

fn provision(lab: &Lab, plan: &Path, flags: &[&str]) -> (Ran, Value) {
    let out = Mp::new()
        .dir(&lab.dir)
        .arg("provision")
        .arg("-i")
        .arg(&lab.inventory)
        .arg(plan)
        .arg("--templates")
        .arg(root().join("templates"))
        .args(["--format", "json"])
        .args(flags)
        .any_code()
        .run();
    let recap = out.json();
    (out, recap)
}
