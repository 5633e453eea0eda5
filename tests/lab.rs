//! `minipaas lab` against the real Docker engine: nodes boot systemd to `running`, answer SSH
//! with the lab key under strict host-key checking, have host keys of their own, run a nested
//! Docker engine on overlay2; `lab up` is idempotent and `lab down` leaves nothing behind; the
//! errors a user can hit say what to do.

use std::collections::HashSet;
use std::net::TcpListener;

use crate::common::{self, docker, Mp};

/// Names of everything Docker holds with lab `name`'s label or name prefix.
fn leftovers(name: &str) -> Vec<String> {
    let label = format!("label=minipaas.lab={name}");
    let prefix = format!("name={name}-");
    let mut found = Vec::new();
    for args in [
        vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &label],
        vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &prefix],
        vec!["volume", "ls", "--format", "{{.Name}}", "--filter", &label],
        vec!["volume", "ls", "--format", "{{.Name}}", "--filter", &prefix],
        vec!["network", "ls", "--format", "{{.Name}}", "--filter", &label],
        vec![
            "network",
            "ls",
            "--format",
            "{{.Name}}",
            "--filter",
            &prefix,
        ],
    ] {
        let out = docker(&args);
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.starts_with(name))
                .map(str::to_string),
        );
    }
    found
}

#[test]
fn lab_up_is_idempotent_strict_and_down_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let name = "mptest-cycle";
    // A lab of that name left by an interrupted run would hide what this test proves.
    Mp::new()
        .dir(dir.path())
        .args(["lab", "down", "--name", name])
        .run();
    let lab = common::lab_up(name, 3, 1, dir.path());
    assert!(
        lab.up_stdout.contains("started node `node3`"),
        "{}",
        lab.up_stdout
    );

    for n in &lab.nodes {
        assert_eq!(
            lab.ssh_ok(&n.name, "systemctl is-system-running"),
            "running"
        );
        assert_eq!(lab.ssh_ok(&n.name, "hostname"), n.name);
    }
    assert_eq!(lab.nodes[0].group, "managers");
    assert!(lab.nodes[1..].iter().all(|n| n.group == "workers"));

    // Every node made its own host key at first boot.
    let known = std::fs::read_to_string(&lab.known_hosts).unwrap();
    let keys: HashSet<&str> = known
        .lines()
        .map(|l| l.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(keys.len(), 3, "host keys must differ per node:\n{known}");

    // Strict checking is really on: a known_hosts that pairs node2's port with node1's key is
    // refused.
    let wrong = dir.path().join("wrong_known_hosts");
    let node1_key = known.lines().next().unwrap().split_once(' ').unwrap().1;
    std::fs::write(
        &wrong,
        format!("[127.0.0.1]:{} {node1_key}\n", lab.nodes[1].ssh_port),
    )
    .unwrap();
    let mut bad = lab.clone();
    bad.known_hosts = wrong;
    let out = bad.ssh("node2", "true");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Host key verification failed"),
        "{out:?}"
    );

    // Again: nothing to do, files untouched.
    let inventory = std::fs::read_to_string(&lab.inventory).unwrap();
    let again = Mp::new()
        .dir(dir.path())
        .args(["lab", "up", "--name", name])
        .run()
        .stdout;
    assert!(again.contains("nothing to do"), "{again}");
    assert!(!again.contains("changed:"), "{again}");
    assert_eq!(std::fs::read_to_string(&lab.inventory).unwrap(), inventory);
    assert_eq!(std::fs::read_to_string(&lab.known_hosts).unwrap(), known);

    let status = Mp::new()
        .dir(dir.path())
        .args(["lab", "status", "--name", name])
        .run()
        .stdout;
    for n in &lab.nodes {
        assert!(status.contains(&n.container), "{status}");
        assert!(status.contains(&n.ssh_port.to_string()), "{status}");
    }

    let ssh = Mp::new()
        .dir(dir.path())
        .args(["lab", "ssh", "node3", "--name", name, "--", "hostname"])
        .run()
        .stdout;
    assert_eq!(ssh.trim(), "node3");

    // A stopped lab comes back with `lab up`, even when a node boots `degraded` because of
    // something done to it (the state a machine's reboot leaves labs in).
    lab.ssh_ok(
        "node2",
        "printf '[Service]\\nExecStart=/bin/false\\n[Install]\\nWantedBy=multi-user.target\\n' \
         > /etc/systemd/system/mp-broken.service && systemctl enable -q mp-broken",
    );
    let containers: Vec<&str> = lab.nodes.iter().map(|n| n.container.as_str()).collect();
    let stopped = std::process::Command::new("docker")
        .arg("stop")
        .args(&containers)
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    let lab = common::lab_up(name, 3, 1, dir.path());
    assert!(
        lab.up_stdout.contains("restarted stopped node `node2`"),
        "{}",
        lab.up_stdout
    );
    assert_eq!(
        lab.ssh_ok("node2", "systemctl is-system-running || true"),
        "degraded"
    );
    for n in &lab.nodes {
        assert_eq!(lab.ssh_ok(&n.name, "hostname"), n.name);
    }

    let removed = lab.down();
    assert!(
        removed.contains("container `mptest-cycle-node1`"),
        "{removed}"
    );
    assert_eq!(leftovers(name), Vec::<String>::new());
    assert!(!lab.inventory.exists() && !lab.key.exists());
    let again = lab.down();
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn lab_node_runs_nested_docker_on_overlay2_and_nftables() {
    let dir = tempfile::tempdir().unwrap();
    let name = "mptest-docker";
    let lab = common::lab_up(name, 1, 1, dir.path());
    lab.ssh_ok(
        "node1",
        "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io nftables",
    );
    assert_eq!(
        lab.ssh_ok("node1", "docker info --format '{{.Driver}}'"),
        "overlay2"
    );
    let tables = lab.ssh_ok(
        "node1",
        "nft add table inet mptest && nft list tables && nft delete table inet mptest",
    );
    assert!(tables.contains("table inet mptest"), "{tables}");
    assert_eq!(
        lab.ssh_ok("node1", "systemctl is-active docker.service"),
        "active"
    );
    lab.down();
    assert_eq!(leftovers(name), Vec::<String>::new());
}

#[test]
fn lab_shared_lab_answers_strict_ssh_on_every_node() {
    let lab = common::lab();
    assert_eq!(lab.name, common::shared_lab_name());
    assert_eq!(
        lab.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["node1", "node2", "node3"]
    );
    for n in &lab.nodes {
        assert_eq!(lab.ssh_ok(&n.name, "hostname"), n.name);
        let ip = lab.ssh_ok(&n.name, "hostname -I");
        assert!(
            ip.split_whitespace().any(|a| a == n.private_address),
            "{ip}"
        );
    }
    let inventory = std::fs::read_to_string(&lab.inventory).unwrap();
    assert!(
        inventory.starts_with(&format!(
            "# written by `minipaas lab up --name {}`",
            lab.name
        )),
        "{inventory}"
    );
}

#[test]
fn lab_up_refuses_to_reshape_an_existing_lab() {
    let lab = common::lab();
    let dir = tempfile::tempdir().unwrap();
    let stderr = Mp::new()
        .dir(dir.path())
        .args(["lab", "up", "--name", &lab.name, "--nodes", "2"])
        .code(2)
        .run()
        .stderr;
    assert!(stderr.contains("node `node3` beyond --nodes 2"), "{stderr}");
    assert!(
        stderr.contains(&format!("minipaas lab down --name {}", lab.name)),
        "{stderr}"
    );
    // The shared lab is untouched.
    assert_eq!(lab.ssh_ok("node3", "hostname"), "node3");
}

#[test]
fn lab_taken_ssh_port_is_a_clear_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let name = "mptest-port";
    let stderr = Mp::new()
        .dir(dir.path())
        .args(["lab", "up", "--name", name, "--nodes", "2"])
        .args(["--ssh-port", &port.to_string()])
        .code(2)
        .run()
        .stderr;
    assert!(
        stderr.contains(&format!("port `{port}` on 127.0.0.1 is already taken")),
        "{stderr}"
    );
    assert!(stderr.contains("--ssh-port PORT"), "{stderr}");
    assert_eq!(leftovers(name), Vec::<String>::new());
}

#[test]
fn no_docker_engine_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["lab", "up"][..], &["lab", "status"], &["lab", "down"]] {
        let stderr = Mp::new()
            .dir(dir.path())
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(args)
            .code(1)
            .run()
            .stderr;
        assert!(stderr.contains("no Docker engine answers"), "{stderr}");
        assert!(stderr.contains("apt-get install docker.io"), "{stderr}");
        assert!(stderr.contains("dockerd &"), "{stderr}");
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn bad_lab_requests_are_refused_before_anything_runs() {
    for (args, message) in [
        (
            &["--nodes", "3", "--managers", "4"][..],
            "--managers must be between 1 and --nodes (3)",
        ),
        (&["--nodes", "0"], "--nodes must be between 1 and 200"),
        (&["--name", "Bad Name"], "lab name `Bad Name` is not usable"),
    ] {
        let stderr = Mp::new()
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .args(["lab", "up"])
            .args(args)
            .code(2)
            .run()
            .stderr;
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
