//! `minipaas provision` against real lab nodes: convergence of every module, idempotency,
//! check mode with diffs, handlers, host-key refusal, unreachable hosts, exit codes, and bad
//! input rejected before any connection.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::{lab, with_status, Lab, Mp, Ran};

const BASE: &str = "/opt/mpt-provision";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provision")
}

fn provision(inventory: &Path, plan: &Path, extra: &[&str]) -> Ran {
    Mp::new()
        .arg("provision")
        .arg("-i")
        .arg(inventory)
        .arg(plan)
        .arg("--templates")
        .arg(fixtures().join("templates"))
        .args(extra)
        .any_code()
        .run()
}

fn json_recap(out: &Ran) -> Value {
    out.json()
}

fn stderr(out: &Ran) -> String {
    out.stderr.clone()
}

/// Serves a random artifact on 127.0.0.1:8731 of every node (loopback: no firewall between
/// nodes can interfere) and records each node's checksum in the lab's host_vars.
fn serve_artifact(lab: &Lab) {
    let host_vars = lab.inventory.parent().unwrap().join("host_vars");
    std::fs::create_dir_all(&host_vars).unwrap();
    for n in &lab.nodes {
        let sha = lab.ssh_ok(
            &n.name,
            "mkdir -p /opt/mpt-srv && { [ -s /opt/mpt-srv/artifact.bin ] || head -c 8192 /dev/urandom > /opt/mpt-srv/artifact.bin; } \
             && { systemctl is-active -q mpt-srv || systemd-run -q --unit mpt-srv python3 -m http.server 8731 --bind 127.0.0.1 --directory /opt/mpt-srv; } \
             && sha256sum /opt/mpt-srv/artifact.bin | cut -c1-64",
        );
        std::fs::write(
            host_vars.join(format!("{}.yaml", n.name)),
            format!("artifact_sha256: {sha}\n"),
        )
        .unwrap();
    }
}

fn counts(recap: &Value, host: &str) -> (u64, u64, u64) {
    let h = &recap["hosts"][host];
    (
        h["changed"].as_u64().unwrap(),
        h["failed"].as_u64().unwrap(),
        h["ok"].as_u64().unwrap(),
    )
}

#[test]
fn lab_every_module_converges_idempotently_with_check_diff_and_handlers() {
    let lab = lab();
    // Start from nothing this test manages, so the first run must change things.
    for n in &lab.nodes {
        lab.ssh_ok(
            &n.name,
            &format!(
                "systemctl disable --now mpt-provision 2>/dev/null; rm -rf {BASE} /etc/systemd/system/mpt-provision.service /etc/cron.d/mpt-provision; systemctl daemon-reload"
            ),
        );
    }
    serve_artifact(lab);
    let plan = fixtures().join("every-module.yaml");

    let first = provision(&lab.inventory, &plan, &["--format", "json"]);
    let recap = json_recap(&first);
    assert!(
        first.code == Some(0),
        "first run failed:\n{recap:#}\n{}",
        stderr(&first)
    );
    for n in &lab.nodes {
        let (changed, failed, _) = counts(&recap, &n.name);
        assert_eq!(failed, 0);
        assert!(changed >= 14, "{}: only {changed} changed", n.name);
    }

    // The state on the hosts, read with OpenSSH, not with minipaas.
    for n in &lab.nodes {
        let conf = lab.ssh_ok(&n.name, &format!("cat {BASE}/app.conf"));
        assert!(
            conf.contains(&format!("managed by minipaas on {}", n.name)),
            "{conf}"
        );
        assert!(conf.contains(&format!("main_manager = {}", lab.nodes[0].private_address)));
        assert!(conf.contains("listen 443"));
        assert_eq!(
            lab.ssh_ok(&n.name, &format!("stat -c '%a %F' {BASE} {BASE}/app.conf {BASE}/static.txt {BASE}/touched {BASE}/artifact.bin")),
            "750 directory\n640 regular file\n600 regular file\n600 regular empty file\n755 regular file"
        );
        assert_eq!(
            lab.ssh_ok(&n.name, &format!("readlink {BASE}/current")),
            format!("{BASE}/app.conf")
        );
        assert_eq!(
            lab.ssh_ok(&n.name, &format!("cat {BASE}/settings")),
            "a=1\nb=2"
        );
        assert_eq!(
            lab.ssh_ok(
                &n.name,
                "systemctl is-enabled mpt-provision; systemctl is-active mpt-provision"
            ),
            "enabled\nactive"
        );
        assert_eq!(
            lab.ssh_ok(
                &n.name,
                "cmp /opt/mpt-srv/artifact.bin /opt/mpt-provision/artifact.bin && echo same"
            ),
            "same"
        );
        assert!(lab
            .ssh_ok(&n.name, "cat /etc/cron.d/mpt-provision")
            .contains("*/5 * * * * root /bin/true"));
        assert_eq!(
            lab.ssh_ok(&n.name, "dpkg-query -W -f='${Status}' curl"),
            "install ok installed"
        );
        assert_eq!(
            lab.ssh_ok(&n.name, &format!("cat {BASE}/guarded")),
            "guarded"
        );
        // Handlers: once per notified host, though two tasks notified `record change`.
        let expected = if n.group == "workers" {
            "changed\nworker"
        } else {
            "changed"
        };
        assert_eq!(
            lab.ssh_ok(&n.name, &format!("cat {BASE}/handler.log")),
            expected,
            "{}",
            n.name
        );
    }

    // Second run: nothing to do anywhere, and no handler runs.
    let second = provision(&lab.inventory, &plan, &["--format", "json"]);
    let recap = json_recap(&second);
    assert!(second.code == Some(0), "{}", stderr(&second));
    for n in &lab.nodes {
        assert_eq!(
            counts(&recap, &n.name).0,
            0,
            "second run changed {}:\n{recap:#}",
            n.name
        );
    }
    // Check mode: nothing to do either.
    let check = provision(&lab.inventory, &plan, &["--check", "--format", "json"]);
    let recap = json_recap(&check);
    for n in &lab.nodes {
        assert_eq!(
            counts(&recap, &n.name).0,
            0,
            "check changed {}:\n{recap:#}",
            n.name
        );
    }

    // A hand edit on one node: --check --diff reports exactly that change, with its diff, and
    // leaves the edit in place.
    lab.ssh_ok(
        "node2",
        &format!("echo 'listen 8080 # by hand' >> {BASE}/app.conf"),
    );
    let check = provision(
        &lab.inventory,
        &plan,
        &["--check", "--diff", "--format", "json"],
    );
    let recap = json_recap(&check);
    let changed = with_status(&recap, "changed");
    assert_eq!(
        changed.len(),
        2,
        "expected the file and its handler:\n{recap:#}"
    );
    assert_eq!(changed[0]["host"], "node2");
    assert_eq!(changed[0]["task"], "app config");
    assert_eq!(changed[0]["changes"], serde_json::json!(["content"]));
    let diff = changed[0]["diff"].as_str().unwrap();
    assert!(diff.contains("-listen 8080 # by hand"), "{diff}");
    assert_eq!(changed[1]["handler"], true);
    assert_eq!(counts(&recap, "node1").0, 0);
    assert_eq!(counts(&recap, "node3").0, 0);
    assert!(lab
        .ssh_ok("node2", &format!("cat {BASE}/app.conf"))
        .contains("by hand"));
    assert!(check.code == Some(0), "{}", stderr(&check));

    // Apply repairs it and runs the handler on that host only.
    let fix = provision(&lab.inventory, &plan, &["--format", "json"]);
    let recap = json_recap(&fix);
    assert_eq!(counts(&recap, "node2").0, 2, "{recap:#}");
    assert_eq!(counts(&recap, "node1").0, 0);
    assert!(!lab
        .ssh_ok("node2", &format!("cat {BASE}/app.conf"))
        .contains("by hand"));
    assert_eq!(
        lab.ssh_ok("node2", &format!("cat {BASE}/handler.log")),
        "changed\nworker\nchanged"
    );
    assert_eq!(
        lab.ssh_ok("node1", &format!("cat {BASE}/handler.log")),
        "changed"
    );
}

/// An inventory of the lab's nodes plus `extra` YAML host entries, with its own known_hosts.
fn custom_inventory(lab: &Lab, dir: &Path, known_hosts: &Path, extra: &str) -> PathBuf {
    let mut hosts = String::new();
    for n in &lab.nodes {
        hosts.push_str(&format!(
            "      {}: {{address: 127.0.0.1, port: {}, private_address: {}}}\n",
            n.name, n.ssh_port, n.private_address
        ));
    }
    hosts.push_str(extra);
    let inv = dir.join("inventory.yaml");
    std::fs::write(
        &inv,
        format!(
            "all:\n  key: {}\n  known_hosts: {}\ngroups:\n  managers:\n    hosts:\n{hosts}",
            lab.key.display(),
            known_hosts.display()
        ),
    )
    .unwrap();
    inv
}

fn small_plan(dir: &Path) -> PathBuf {
    let plan = dir.join("small.yaml");
    std::fs::write(
        &plan,
        "- hosts: all\n  tasks:\n    - name: marker\n      copy: {content: \"{{ inventory_hostname }}\\n\", dest: /tmp/mpt-provision-small}\n",
    )
    .unwrap();
    plan
}

#[test]
fn lab_changed_host_key_is_refused_and_unreachable_host_does_not_stop_others() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    // node2's recorded key replaced by another key: a changed host key.
    let other = dir.path().join("other");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(st.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_key = other_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let port2 = lab.node("node2").ssh_port;
    let kh: String = std::fs::read_to_string(&lab.known_hosts)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with(&format!("[127.0.0.1]:{port2} ")) {
                format!("[127.0.0.1]:{port2} {other_key}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, kh + "\n").unwrap();
    // A stopped node: its port has nobody listening.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let inv = custom_inventory(
        lab,
        dir.path(),
        &known_hosts,
        &format!("      stopped: {{address: 127.0.0.1, port: {closed}}}\n"),
    );
    let out = provision(&inv, &small_plan(dir.path()), &["--format", "json"]);
    assert_eq!(out.code, Some(1), "{}", stderr(&out));
    let recap = json_recap(&out);
    assert_eq!(recap["hosts"]["stopped"]["unreachable"], true);
    assert_eq!(recap["hosts"]["node2"]["unreachable"], true);
    let err = recap["hosts"]["node2"]["error"].as_str().unwrap();
    assert!(
        err.contains("node2") && err.contains("CHANGED") && err.contains("SHA256:"),
        "{err}"
    );
    for ok in ["node1", "node3"] {
        assert_eq!(recap["hosts"][ok]["unreachable"], false);
        assert_eq!(recap["hosts"][ok]["failed"], 0);
        assert_eq!(lab.ssh_ok(ok, "cat /tmp/mpt-provision-small"), ok);
    }
    // Even --accept-new-host-keys never accepts a changed key.
    let out = provision(
        &inv,
        &small_plan(dir.path()),
        &["--format", "json", "--accept-new-host-keys"],
    );
    assert_eq!(json_recap(&out)["hosts"]["node2"]["unreachable"], true);
}

#[test]
fn lab_unknown_host_key_refused_unless_accepted() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let known_hosts = dir.path().join("known_hosts");
    let inv = custom_inventory(lab, dir.path(), &known_hosts, "");
    // HOME points at an empty directory so ~/.ssh/known_hosts knows nothing either.
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let run = |extra: &[&str]| {
        Mp::new()
            .env("HOME", &home)
            .args(["provision", "--format", "json", "-i"])
            .arg(&inv)
            .arg(small_plan(dir.path()))
            .args(extra)
            .any_code()
            .run()
    };
    let out = run(&[]);
    assert_eq!(out.code, Some(1));
    let recap = json_recap(&out);
    let err = recap["hosts"]["node1"]["error"].as_str().unwrap();
    assert!(
        err.contains("unknown host key") && err.contains("SHA256:"),
        "{err}"
    );
    let out = run(&["--accept-new-host-keys"]);
    assert_eq!(out.code, Some(0), "{}", stderr(&out));
    let recorded = std::fs::read_to_string(home.join(".ssh/known_hosts")).unwrap();
    assert_eq!(recorded.lines().count(), 3, "{recorded}");
    assert_eq!(run(&[]).code, Some(0));
}

/// A listener that proves nobody connected to it.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Tripwire {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        Tripwire(l)
    }
    fn port(&self) -> u16 {
        self.0.local_addr().unwrap().port()
    }
    fn assert_untouched(&self) {
        match self.0.accept() {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!("something connected: {other:?}"),
        }
    }
}

#[test]
fn bad_input_is_one_clear_error_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wire = Tripwire::new();
    let good_inv = d.join("inv.yaml");
    std::fs::write(
        &good_inv,
        format!(
            "groups:\n  managers:\n    hosts:\n      h1: {{address: 127.0.0.1, port: {}}}\n",
            wire.port()
        ),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("templates")).unwrap();
    std::fs::write(
        d.join("templates/bad.conf"),
        "line one\n{% if x %}\nno end\n",
    )
    .unwrap();
    let cases: Vec<(&str, String, String, &str)> = vec![
        ("inventory", "groups:\n  managers:\n    hostz: {}\n".into(), "- hosts: all\n  tasks: []\n".into(), "line 3"),
        ("plan-key", String::new(), "- hosts: all\n  tasks:\n    - name: t\n      copy: {dest: /x, content: y}\n      notfy: h\n".into(), "line 3"),
        ("plan-yaml", String::new(), "- hosts: all\n  tasks: [\n".into(), "plan.yaml"),
        ("template", String::new(), "- hosts: all\n  tasks:\n    - template: {src: bad.conf, dest: /tmp/x}\n".into(), "bad.conf"),
    ];
    for (what, inv_text, plan_text, needle) in cases {
        let inv = if inv_text.is_empty() {
            good_inv.clone()
        } else {
            let p = d.join(format!("{what}.yaml"));
            std::fs::write(&p, inv_text).unwrap();
            p
        };
        let plan = d.join("plan.yaml");
        std::fs::write(&plan, plan_text).unwrap();
        let out = Mp::new()
            .args(["provision", "-i"])
            .arg(&inv)
            .arg(&plan)
            .arg("--templates")
            .arg(d.join("templates"))
            .any_code()
            .run();
        let err = stderr(&out);
        assert_eq!(out.code, Some(2), "{what}: {err}");
        assert!(err.contains(needle), "{what}: `{needle}` not in: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert_eq!(
            err.trim()
                .lines()
                .filter(|l| l.starts_with("error"))
                .count(),
            1,
            "{what}: {err}"
        );
        wire.assert_untouched();
    }
}

#[test]
fn lab_become_uses_sudo_for_a_non_root_user() {
    let lab = lab();
    let pubkey = std::fs::read_to_string(lab.key.with_extension("pub")).unwrap();
    lab.ssh_ok(
        "node3",
        &format!(
            "id mpt >/dev/null 2>&1 || useradd -m -s /bin/sh mpt; install -d -o mpt -m 700 /home/mpt/.ssh; \
             echo '{}' > /home/mpt/.ssh/authorized_keys; chown mpt /home/mpt/.ssh/authorized_keys; \
             echo 'mpt ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/mpt; chmod 0440 /etc/sudoers.d/mpt; \
             rm -f /root/mpt-become /tmp/mpt-plain",
            pubkey.trim()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let n = lab.node("node3");
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        format!(
            "all:\n  user: mpt\n  key: {}\n  known_hosts: {}\ngroups:\n  workers:\n    hosts:\n      node3: {{address: 127.0.0.1, port: {}}}\n",
            lab.key.display(),
            lab.known_hosts.display(),
            n.ssh_port
        ),
    )
    .unwrap();
    let plan = dir.path().join("become.yaml");
    std::fs::write(
        &plan,
        "- hosts: all\n  tasks:\n    - name: as root\n      copy: {content: \"root only\\n\", dest: /root/mpt-become, mode: \"0600\"}\n      become: true\n    - name: as the user\n      copy: {content: \"plain\\n\", dest: /tmp/mpt-plain}\n",
    )
    .unwrap();
    for expected_changes in [2, 0] {
        let out = provision(&inv, &plan, &["--format", "json"]);
        assert!(out.code == Some(0), "{}", stderr(&out));
        assert_eq!(counts(&json_recap(&out), "node3").0, expected_changes);
    }
    assert_eq!(
        lab.ssh_ok("node3", "stat -c '%U %a' /root/mpt-become /tmp/mpt-plain"),
        "root 600\nmpt 644"
    );
}

#[test]
fn lab_restarts_asked_for_by_the_plan_are_not_refused_by_the_start_rate_limit() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("restarts.yaml");
    // Docker's unit allows 3 starts a minute; this one allows 1, so the second restart in a
    // row would end `start-limit-hit` unless the module clears the counter.
    std::fs::write(
        &plan,
        r#"- hosts: node2
  tasks:
    - name: a unit with a tight start limit
      copy:
        dest: /etc/systemd/system/mpt-limited.service
        content: |
          [Unit]
          StartLimitIntervalSec=60
          StartLimitBurst=1
          [Service]
          ExecStart=/bin/sleep infinity
    - name: restart it
      systemd: {name: mpt-limited, state: restarted, daemon_reload: true}
      loop: [1, 2, 3]
"#,
    )
    .unwrap();
    let out = provision(&lab.inventory, &plan, &["--format", "json"]);
    let recap = json_recap(&out);
    assert!(out.code == Some(0), "{recap:#}\n{}", stderr(&out));
    assert_eq!(
        lab.ssh_ok("node2", "systemctl is-active mpt-limited"),
        "active"
    );
    lab.ssh_ok(
        "node2",
        "systemctl stop mpt-limited; rm /etc/systemd/system/mpt-limited.service; systemctl daemon-reload",
    );
}

#[test]
fn task_vars_may_use_the_loop_item() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        "groups:\n  here:\n    hosts:\n      me: {connection: local}\n",
    )
    .unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "- hosts: all\n  vars: {{names: [a, b]}}\n  tasks:\n    - name: one file per item\n      \
             copy: {{content: \"{{{{ greeting }}}}\\n\", dest: \"{}/{{{{ item }}}}.txt\"}}\n      \
             loop: \"{{{{ names }}}}\"\n      vars: {{greeting: \"hello {{{{ item }}}}\"}}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = provision(&inv, &plan, &[]);
    assert!(out.code == Some(0), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
        "hello a\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("b.txt")).unwrap(),
        "hello b\n"
    );
}

/// Starts `minipaas provision` of `plan` on the lab with `extra` arguments and kills the
/// controller (SIGKILL) as soon as `condition` (sh) holds on `node`, checked from inside the
/// node's container every 10 ms. Fails when it never holds within 60 s.
fn kill_provision_when(lab: &Lab, node: &str, plan: &Path, extra: &[&str], condition: &str) {
    let mut child = Mp::new()
        .arg("provision")
        .arg("-i")
        .arg(&lab.inventory)
        .arg(plan)
        .args(extra)
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let waited = crate::common::docker(&[
        "exec",
        &lab.node(node).container,
        "timeout",
        "60",
        "sh",
        "-c",
        &format!("until {condition}; do sleep 0.01; done"),
    ]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        waited.status.success(),
        "`{condition}` never held: {waited:?}"
    );
}

/// A controller killed in the middle of a multi-megabyte `copy` leaves the old file in place on
/// the host, and no temp file: the host checks size and sha256 before the rename.
#[test]
fn lab_a_write_cut_by_a_killed_controller_leaves_the_old_file() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let dest_dir = "/opt/mpt-provision-cut";
    let dest = format!("{dest_dir}/big.bin");
    let old = lab.ssh_ok(
        "node3",
        &format!(
            "rm -rf {dest_dir} && mkdir -p {dest_dir} && printf 'old content\\n' > {dest} && sha256sum {dest} | cut -c1-64"
        ),
    );
    // 192 MB: the transfer over the lab's loopback lasts long enough to be cut.
    let big = dir.path().join("big.bin");
    let mut data = vec![0u8; 192 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&big, &data).unwrap();
    drop(data);
    let plan = dir.path().join("cut.yaml");
    std::fs::write(
        &plan,
        format!(
            "- hosts: node3\n  tasks:\n    - name: big file\n      copy: {{src: {}, dest: {dest}, mode: \"0600\"}}\n",
            big.display()
        ),
    )
    .unwrap();
    // Killed once the first bytes are in the host's temp file.
    kill_provision_when(
        lab,
        "node3",
        &plan,
        &[],
        &format!("find {dest_dir} -name '.minipaas.*' -size +0 | grep -q ."),
    );
    // The host's side of the write ends at the EOF of the dropped connection.
    let left = lab.ssh_ok(
        "node3",
        &format!(
            "for _ in $(seq 100); do ls -A {dest_dir} | grep -q '^.minipaas' || break; sleep 0.1; done; \
             ls -A {dest_dir}; sha256sum {dest} | cut -c1-64"
        ),
    );
    assert_eq!(left, format!("big.bin\n{old}"), "after the cut write");
    lab.ssh_ok("node3", &format!("rm -rf {dest_dir}"));
}

/// A handler notified by a change is not lost when the controller dies before handlers run:
/// the host keeps a record of it, and the next run, which sees no change, runs it.
#[test]
fn lab_a_handler_notified_before_the_controller_died_runs_next_time() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let base = "/opt/mpt-provision-pending";
    lab.ssh_ok("node2", &format!("rm -rf {base} && mkdir -p {base}"));
    let plan = dir.path().join("pending.yaml");
    std::fs::write(
        &plan,
        format!(
            "- name: pending handlers\n  hosts: node2\n  tasks:\n\
             \x20   - name: config\n      copy: {{content: \"v2\\n\", dest: {base}/config}}\n      notify: restart app\n\
             \x20   - name: slow\n      command: sleep 120\n      when: slow is defined\n\
             \x20 handlers:\n\
             \x20   - name: restart app\n      command: sh -c 'echo restarted >> {base}/restarts'\n"
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        Mp::new()
            .arg("provision")
            .arg("-i")
            .arg(&lab.inventory)
            .arg(&plan)
            .args(["--format", "json"])
            .args(extra)
            .any_code()
            .run()
    };
    // The change is on the host; the controller dies before the slow task ends and handlers run.
    kill_provision_when(
        lab,
        "node2",
        &plan,
        &["-e", "slow=1"],
        &format!("grep -qx v2 {base}/config 2>/dev/null"),
    );
    assert_eq!(lab.ssh_ok("node2", &format!("cat {base}/config")), "v2");
    assert_eq!(
        lab.ssh_ok(
            "node2",
            &format!("cat {base}/restarts 2>/dev/null || echo none")
        ),
        "none"
    );

    // Check mode reports the pending handler and runs nothing.
    let out = run(&["--check"]);
    let recap = json_recap(&out);
    assert_eq!(counts(&recap, "node2").0, 1, "{}", stderr(&out));
    assert_eq!(
        lab.ssh_ok(
            "node2",
            &format!("cat {base}/restarts 2>/dev/null || echo none")
        ),
        "none"
    );
    // The next run changes nothing but still runs the handler, once.
    let out = run(&[]);
    assert!(out.code == Some(0), "{}", stderr(&out));
    let recap = json_recap(&out);
    let handler_runs: Vec<&Value> = recap["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["handler"] == true)
        .collect();
    assert_eq!(handler_runs.len(), 1, "{recap}");
    assert_eq!(handler_runs[0]["task"], "restart app");
    assert_eq!(
        lab.ssh_ok("node2", &format!("cat {base}/restarts")),
        "restarted"
    );
    // And then it is done: a third run and a check change nothing.
    for extra in [&[][..], &["--check"][..]] {
        let out = run(extra);
        assert_eq!(counts(&json_recap(&out), "node2").0, 0, "{extra:?}");
    }
    assert_eq!(
        lab.ssh_ok("node2", &format!("cat {base}/restarts")),
        "restarted"
    );
    lab.ssh_ok("node2", &format!("rm -rf {base}"));
}

/// `serial: 1` on three real nodes with node2 failing: node1 converged, node2 failed, node3
/// never started, and the recap and retry file say so. Once node2 is fixed, `--retry-failed`
/// runs node2 and node3 and nothing on node1; then the retry file is gone.
#[test]
fn lab_a_failing_serial_batch_stops_the_run_and_retry_failed_runs_only_the_rest() {
    let lab = lab();
    let dir = tempfile::tempdir().unwrap();
    let inv = custom_inventory(lab, dir.path(), &lab.known_hosts, "");
    let plan = dir.path().join("serial.yaml");
    std::fs::write(
        &plan,
        "- hosts: all\n  serial: 1\n  tasks:\n    - name: refuse while told to\n      command: \"! test -e /tmp/mpt-serial-fail\"\n      changed_when: false\n\
         \x20   - name: marker\n      copy: {content: \"{{ inventory_hostname }}\\n\", dest: /tmp/mpt-serial-done}\n",
    )
    .unwrap();
    for n in &lab.nodes {
        lab.ssh_ok(&n.name, "rm -f /tmp/mpt-serial-done /tmp/mpt-serial-fail");
    }
    lab.ssh_ok("node2", "touch /tmp/mpt-serial-fail");
    let first = provision(&inv, &plan, &["--format", "json"]);
    assert_eq!(first.code, Some(1), "{}", first.all());
    let recap = first.json();
    let why = recap["stopped"].as_str().unwrap_or_default();
    assert!(
        why.contains("batch 2 of 3") && why.contains("node2"),
        "{why}"
    );
    assert_eq!(recap["hosts"]["node3"]["not_started"], true, "{recap:#}");
    let done = |node: &str| {
        lab.ssh(node, "test -e /tmp/mpt-serial-done")
            .status
            .success()
    };
    assert!(done("node1") && !done("node2") && !done("node3"));
    let retry = dir.path().join("inventory.retry");
    let listed = std::fs::read_to_string(&retry).unwrap();
    assert!(
        listed.contains("node2\nnode3") && !listed.contains("node1"),
        "{listed}"
    );

    lab.ssh_ok("node2", "rm -f /tmp/mpt-serial-fail");
    lab.ssh_ok("node1", "rm -f /tmp/mpt-serial-done");
    let again = provision(&inv, &plan, &["--format", "json", "--retry-failed"]);
    assert_eq!(again.code, Some(0), "{}", again.all());
    let recap = again.json();
    let hosts: Vec<&String> = recap["hosts"].as_object().unwrap().keys().collect();
    assert_eq!(hosts, ["node2", "node3"]);
    assert!(!done("node1"), "the retry ran on node1");
    assert!(done("node2") && done("node3"));
    assert!(!retry.exists(), "the retry file outlived a converged retry");
    let none = provision(&inv, &plan, &["--retry-failed"]);
    assert_eq!(none.code, Some(2), "{}", none.all());
    assert!(none.stderr.contains("no host to retry"), "{}", none.stderr);
}
