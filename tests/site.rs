//! playbooks/site.yaml: the plan loads (every key, module and import checked), and, on lab nodes
//! (tests named `lab_`), converges a real cluster.

use std::path::{Path, PathBuf};

use minipaas::plan::Plan;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn site_plan_loads_with_every_play() {
    let plan = Plan::load(
        &[root().join("playbooks/site.yaml")],
        &root().join("templates"),
    )
    .unwrap_or_else(|e| panic!("{}", minipaas::error::chain(&e)));
    let names: Vec<&str> = plan.plays.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "facts, defaults and preflight",
            "base system, logging, monitoring, Docker",
            "Docker restarts due",
            "Docker restarts, one node at a time",
            "firewall",
            "firewall confirmation",
            "swarm init",
            "swarm join",
            "node labels, Caddy, swarm-cronjob",
        ]
    );
    // The confirmation must come over a new connection, right after the firewall play.
    assert!(plan.plays[5].reset_connection);
    assert!(plan.plays.iter().filter(|p| p.reset_connection).count() == 1);
    // Docker restarts one node at a time, and the first failure stops the run.
    assert_eq!(plan.plays[3].serial, [minipaas::plan::BatchSize::Hosts(1)]);
    assert_eq!(plan.plays[3].max_fail_percentage, Some(0));
    // Facts and defaults run whatever --tags selects.
    assert!(plan.plays[0]
        .tasks
        .iter()
        .all(|t| t.tags.iter().any(|x| x == "always")));
}

/// The join command of swarm_join.yaml: the main manager's address with the port, in brackets
/// when it is IPv6, each address one quoted word.
#[test]
fn site_swarm_join_command_quotes_addresses_and_brackets_ipv6() {
    use serde_json::json;
    let plan = Plan::load(
        &[root().join("playbooks/site.yaml")],
        &root().join("templates"),
    )
    .unwrap();
    let join = plan
        .plays
        .iter()
        .flat_map(|p| &p.tasks)
        .find(|t| t.name.0 == "join the swarm")
        .unwrap();
    let cmd = |private: &str, main: &str| {
        let vars = json!({"private_address": private, "main_manager_address": main});
        minipaas::template::render_str(join.args["cmd"].as_str().unwrap(), &vars).unwrap()
    };
    assert_eq!(
        cmd("10.0.0.2", "10.0.0.1"),
        "docker swarm join --token \"$(cat)\" --advertise-addr 10.0.0.2 10.0.0.1:2377"
    );
    assert_eq!(
        cmd("2001:db8::2", "2001:db8::1"),
        "docker swarm join --token \"$(cat)\" --advertise-addr 2001:db8::2 '[2001:db8::1]:2377'"
    );
}

/// An inventory in `dir` of one host, `here`: this machine, reached without SSH.
fn local_inventory(dir: &Path) -> PathBuf {
    let inv = dir.join("inventory.yaml");
    std::fs::write(
        &inv,
        "all: {connection: local}\ngroups:\n  managers:\n    hosts:\n      here: {}\n",
    )
    .unwrap();
    inv
}

/// facts.yaml and defaults.yaml on this machine (a local host, check mode): the defaults pass,
/// and each value that would become code in a shell, a unit or a config file stops the host with
/// a message naming the variable.
#[tokio::test]
async fn site_defaults_refuse_values_that_would_become_code() {
    use minipaas::engine::{Mode, Options};
    use minipaas::inventory::Inventory;
    use serde_json::{json, Value};

    let dir = tempfile::tempdir().unwrap();
    let inv = local_inventory(dir.path());
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "- hosts: all\n  tasks:\n    - import_tasks: {}\n    - import_tasks: {}\n",
            root().join("playbooks/tasks/facts.yaml").display(),
            root().join("playbooks/tasks/defaults.yaml").display()
        ),
    )
    .unwrap();
    let inventory = Inventory::load(&inv).unwrap();
    let plan = Plan::load(&[plan], &root().join("templates")).unwrap();
    let run = |extra: Value| {
        let (inventory, plan) = (&inventory, &plan);
        async move {
            let opts = Options {
                mode: Mode::Check,
                extra_vars: extra.as_object().unwrap().clone(),
                ..Options::default()
            };
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            minipaas::engine::run(inventory, plan, &opts, tx)
                .await
                .unwrap()
        }
    };
    let fine = run(json!({
        "minipaas_extra_ports": [8080, "53/udp", "8000-8100/tcp"],
        "firewall_allowed_tcp_ports": ["9000"],
        "fail2ban_ignoreip": ["10.0.0.0/8", "2001:db8::/32"],
        "monitoring_telegram_token": "123456:TEST-token_x",
        "monitoring_telegram_chat_id": 4242,
        "monitoring_telegram_api_url": "http://172.18.0.4:8000",
        "caddy_email": "ops@example.org",
    }))
    .await;
    assert!(fine.success(), "{:#?}", fine.tasks);

    let hostile = [
        ("firewall_ssh_port", json!("22\nExecStart=/bin/true")),
        ("monitoring_load_threshold", json!("0; reboot")),
        ("fail2ban_bantime", json!("1h\naction = x")),
        ("monitoring_interval", json!("5min\nUnit=x.service")),
        (
            "monitoring_telegram_api_url",
            json!("https://x\"\noutput = /etc/shadow"),
        ),
        (
            "docker_apt_repository_url",
            json!("https://x stable\ndeb http://y"),
        ),
        ("caddy_email", json!("a@b.c\n}\n:80 {")),
        ("swarm_cronjob_version", json!("1.0$(reboot)")),
        (
            "swarm_cronjob_timezone",
            json!("UTC\nExecStartPre=/bin/sh -c x"),
        ),
        ("swarm_cronjob_log_level", json!("info`reboot`")),
        ("minipaas_extra_ports", json!(["80; drop"])),
        ("fail2ban_ignoreip", json!(["1.2.3.4\naction = x"])),
        ("monitoring_disk_paths", json!(["/ $(reboot)"])),
        ("monitoring_telegram_token", json!("1:a\"b")),
        ("monitoring_telegram_chat_id", json!("1&text=x")),
    ];
    for (name, value) in hostile {
        let recap = run(json!({ name: value })).await;
        let failed: Vec<_> = recap
            .tasks
            .iter()
            .filter(|t| t.status == minipaas::engine::Status::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{name}: {:#?}", recap.tasks);
        let message = failed[0]
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let named = message.contains(name)
            || (name.ends_with("_ports") && message.contains("minipaas_extra_ports"));
        assert!(named, "{name}: {message}");
    }
}

/// preflight.yaml after facts.yaml and defaults.yaml on this machine (a local host, check mode),
/// with the facts a host would print set by a task between facts.yaml and defaults.yaml:
/// supported hosts pass, and each unsupported one stops at one task whose message names the host
/// and what to do.
#[tokio::test]
async fn site_preflight_refuses_unsupported_hosts_by_name() {
    use minipaas::engine::{Mode, Options, Status};
    use minipaas::inventory::Inventory;
    use serde_json::{json, Value};

    let dir = tempfile::tempdir().unwrap();
    let inv = local_inventory(dir.path());
    let inventory = Inventory::load(&inv).unwrap();
    let import = |t: &str| {
        format!(
            "    - import_tasks: {}\n",
            root().join(format!("playbooks/tasks/{t}.yaml")).display()
        )
    };
    // The tasks of facts.yaml after its first (which reads this machine): the assert that
    // minipaas can become root, given what the first one would have printed.
    let root_assert = {
        let text = std::fs::read_to_string(root().join("playbooks/tasks/facts.yaml")).unwrap();
        let tasks: Vec<serde_yaml::Value> = serde_yaml::from_str(&text).unwrap();
        let task = tasks
            .into_iter()
            .find(|t| t["name"] == "minipaas can become root")
            .unwrap();
        serde_yaml::to_string(&vec![task]).unwrap()
    };
    let run = |tasks: String| {
        let (inventory, dir) = (&inventory, dir.path());
        async move {
            let plan = dir.join("plan.yaml");
            std::fs::write(&plan, format!("- hosts: all\n  tasks:\n{tasks}")).unwrap();
            let plan = Plan::load(&[plan], &root().join("templates")).unwrap();
            let opts = Options {
                mode: Mode::Check,
                ..Options::default()
            };
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            minipaas::engine::run(inventory, &plan, &opts, tx)
                .await
                .unwrap()
        }
    };
    // Debian 13 on amd64 without Docker, whatever this machine is, then `over`.
    let host = |over: &Value| {
        let mut v = json!({
            "os_id": "debian", "os_codename": "trixie", "os_version": "13", "dpkg_arch": "amd64",
            "docker_installed_package": "", "docker_installed_version": "",
        });
        v.as_object_mut()
            .unwrap()
            .extend(over.as_object().unwrap().clone());
        format!(
            "{}    - set_fact: {v}\n{}{}",
            import("facts"),
            import("defaults"),
            import("preflight")
        )
    };
    let supported = [
        json!({}),
        json!({"os_id": "ubuntu", "os_codename": "noble", "os_version": "24.04", "dpkg_arch": "arm64"}),
        json!({"os_id": "ubuntu", "os_codename": "jammy", "os_version": "22.04"}),
        // Debian 12: docker-ce by default.
        json!({"os_codename": "bookworm", "os_version": "12"}),
        json!({"os_codename": "bookworm", "os_version": "12", "docker_installed_package": "docker-ce", "docker_installed_version": "27.3"}),
        json!({"docker_installed_package": "docker.io", "docker_installed_version": "26.1"}),
        json!({"docker_source": "docker-ce", "docker_installed_package": "docker-ce", "docker_installed_version": "28.0"}),
        // Debian 12's docker.io when the user chose it: swarm jobs are then refused by the
        // rollout, which says why.
        json!({"os_codename": "bookworm", "os_version": "12", "docker_source": "distro"}),
        json!({"os_codename": "bookworm", "os_version": "12", "docker_source": "distro", "docker_installed_package": "docker.io", "docker_installed_version": "20.10"}),
    ];
    for over in supported {
        let recap = run(host(&over)).await;
        assert!(recap.success(), "{over}: {:#?}", recap.tasks);
    }
    let as_root = |stdout: &str| {
        let fact = json!({"host_root": {"stdout": stdout}});
        format!(
            "    - set_fact: {fact}\n{}",
            root_assert
                .replace("\n", "\n    ")
                .replace("- name", "    - name")
        )
    };
    assert!(run(as_root("root")).await.success());
    assert!(run(as_root("sudo")).await.success());
    let unsupported = [
        (as_root("no-sudo"), "sudo is not installed"),
        (as_root("sudo-password"), "passwordless sudo"),
        (
            host(&json!({"os_codename": "bullseye", "os_version": "11"})),
            "debian 11 (bullseye): minipaas supports Debian 12 and 13",
        ),
        (
            host(&json!({"os_id": "ubuntu", "os_codename": "focal", "os_version": "20.04"})),
            "ubuntu 20.04",
        ),
        (
            host(&json!({"os_id": "rocky", "os_version": "9.3"})),
            "rocky 9.3",
        ),
        (
            host(&json!({"dpkg_arch": "armhf"})),
            "`armhf`: minipaas supports amd64 and arm64",
        ),
        // Debian 12 with the docker.io an earlier default installed.
        (
            host(
                &json!({"os_codename": "bookworm", "os_version": "12", "docker_installed_package": "docker.io", "docker_installed_version": "20.10"}),
            ),
            "has docker.io 20.10 installed but docker_source is `docker-ce`",
        ),
        (
            host(
                &json!({"docker_source": "docker-ce", "docker_installed_package": "docker.io", "docker_installed_version": "26.1"}),
            ),
            "Set docker_source: distro to keep it",
        ),
        (
            host(
                &json!({"docker_source": "docker-ce", "docker_installed_package": "docker-ce", "docker_installed_version": "20.10"}),
            ),
            "needs Docker 23 or later",
        ),
    ];
    for (tasks, expected) in unsupported {
        let recap = run(tasks).await;
        let failed: Vec<_> = recap
            .tasks
            .iter()
            .filter(|t| t.status == Status::Failed)
            .collect();
        assert_eq!(failed.len(), 1, "{expected}: {:#?}", recap.tasks);
        let message = failed[0]
            .error
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(message.contains(expected), "{expected}: {message}");
        assert!(message.contains("`here`"), "{expected}: {message}");
    }
}

pub(crate) mod lab {
    //! A lab of its own (`mpsite`: node1 manager, node2/node3 workers), not the shared one:
    //! these tests change firewalls and restart nodes, which the shared lab forbids. The first
    //! provisioning installs Docker, syslog-ng and friends from Debian's mirror on every node
    //! (several minutes); later runs reuse the converged lab.

    use std::path::Path;

    use std::time::Duration;

    use serde_json::Value;

    use crate::common::site::*;
    use crate::common::{self, wait_until, Lab};

    fn ready_nodes(lab: &Lab) -> usize {
        let out = lab.ssh(
            "node1",
            "docker node ls --format '{{.Hostname}} {{.Status}}'",
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.ends_with(" Ready"))
            .count()
    }

    /// Takes node4 out of the site lab again, whatever the test did: the other tests expect
    /// three nodes.
    struct WithoutNode4;

    impl Drop for WithoutNode4 {
        fn drop(&mut self) {
            let _ = common::docker(&["rm", "--force", &format!("{}-node4", name())]);
            let _ = common::docker(&[
                "volume",
                "rm",
                "--force",
                &format!("{}-node4-docker", name()),
            ]);
            let lab = lab();
            let _ = lab.ssh(
                "node1",
                "docker node rm --force node4 >/dev/null 2>&1; true",
            );
        }
    }

    #[test]
    fn lab_site_fourth_node_joins_and_changes_only_the_cluster_set_on_the_others() {
        let (_g, site, _) = provisioned();
        let _cleanup = WithoutNode4;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("site-work");
        let lab4 = common::lab_up(&name(), 4, 1, &dir);
        assert_eq!(lab4.node("node4").group, "workers");
        let node2 = lab4.node("node2").container.clone();
        let wanted = "/etc/minipaas/firewall/wanted.nft";
        let read_wanted = || common::docker(&["exec", &node2, "cat", wanted]).stdout;
        let before = String::from_utf8(read_wanted()).unwrap();
        let recap = converge(site, &lab4, &[]);
        let others: Vec<String> = changed(&recap)
            .into_iter()
            .filter(|c| !c.starts_with("\"node4\""))
            .collect();
        // On the other nodes only the firewall changes (its set of the cluster's addresses):
        // written, applied, confirmed.
        let firewall = [
            "wanted firewall ruleset",
            "apply the firewall with an automatic revert armed",
            "confirm the firewall over a fresh connection",
        ];
        assert!(
            others
                .iter()
                .all(|c| firewall.iter().any(|f| c.ends_with(&format!("\"{f}\"")))),
            "changed on the other nodes: {others:#?}"
        );
        assert_eq!(others.len(), 3 * firewall.len(), "{others:#?}");
        // ... and in the ruleset, exactly the set's elements: node4's address added.
        let after = String::from_utf8(read_wanted()).unwrap();
        let node4_addr = lab4.node("node4").private_address.clone();
        let diff: Vec<(&str, &str)> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(before.lines().count(), after.lines().count());
        assert_eq!(diff.len(), 1, "{diff:#?}");
        assert!(
            diff[0].1.contains("elements = {") && diff[0].1.contains(&node4_addr),
            "{diff:#?}"
        );
        let set = |lab: &Lab| lab.ssh_ok("node2", "nft list set inet minipaas cluster_v4");
        assert!(set(&lab4).contains(&node4_addr), "{}", set(&lab4));
        assert!(
            changed(&recap).iter().any(|c| c.contains("join")),
            "{:#?}",
            changed(&recap)
        );
        wait_until("4 Ready nodes", Duration::from_secs(60), || {
            ready_nodes(&lab4) == 4
        });
        let again = converge(site, &lab4, &[]);
        assert!(changed(&again).is_empty(), "{:#?}", changed(&again));

        // node4 leaves the inventory: the next run takes it out of every node's set.
        drop(_cleanup);
        let lab3 = lab();
        assert_eq!(lab3.nodes.len(), 3);
        converge(site, &lab3, &[]);
        assert!(!set(&lab3).contains(&node4_addr), "{}", set(&lab3));
    }

    #[test]
    fn lab_site_forms_a_swarm_and_converges_to_zero_changes() {
        let (_g, site, lab) = provisioned();
        let lab = &lab;
        assert_eq!(ready_nodes(lab), 3, "docker node ls on node1");
        let again = converge(site, lab, &[]);
        assert!(
            changed(&again).is_empty(),
            "second run changed: {:#?}",
            changed(&again)
        );
        let check = converge(site, lab, &["--check"]);
        assert!(
            changed(&check).is_empty(),
            "--check reports: {:#?}",
            changed(&check)
        );

        // Each node advertises its private address; the manager is the leader.
        let addrs = lab.ssh_ok(
            "node1",
            "for n in $(docker node ls -q); do docker node inspect --format '{{.Status.Addr}}' $n; done | sort",
        );
        let mut want: Vec<&str> = lab
            .nodes
            .iter()
            .map(|n| n.private_address.as_str())
            .collect();
        want.sort();
        assert_eq!(addrs.lines().collect::<Vec<_>>(), want);

        // daemon.json as the spec has it, read back from the running engine.
        let info = lab.ssh_ok("node2", "docker info --format '{{.LoggingDriver}}'");
        assert_eq!(info, "syslog");
        // swarm-cronjob: on the main manager only, the stand-in verified by the release's
        // checksums file (no sha256 given), running.
        lab.ssh_ok(
            "node1",
            "systemctl is-active swarm-cronjob && grep -q stand-in /usr/local/bin/swarm-cronjob",
        );
        let cached = lab.ssh_ok(
            "node1",
            &format!("sha256sum < /var/cache/minipaas/{TARBALL} | cut -c1-64"),
        );
        assert_eq!(cached.trim(), site.sha256);
        let elsewhere = lab.ssh("node2", "test -e /usr/local/bin/swarm-cronjob || test -e /etc/systemd/system/swarm-cronjob.service");
        assert!(!elsewhere.status.success(), "swarm-cronjob on a worker");
        // Secrets file absent without Telegram; monitor timer running.
        lab.ssh_ok(
            "node2",
            "systemctl is-active minipaas-monitor.timer && ! test -e /etc/telegram.secrets",
        );
    }

    #[test]
    fn lab_site_firewall_opens_listed_ports_only_and_keeps_dockers_rules() {
        let (_g, _, lab) = provisioned();
        let lab = &lab;
        let node2 = &lab.node("node2").private_address;
        let node3 = &lab.node("node3").private_address;
        // Two servers on node2: one on the listed extra port, one on a port nobody listed.
        lab.ssh_ok(
            "node2",
            "for p in 8000 8001; do systemctl is-active --quiet minipaas-test-port-$p || \
             systemd-run --unit minipaas-test-port-$p python3 -m http.server $p --directory /tmp; done; sleep 1",
        );
        // Both answer on node2 itself (loopback is open), so a failure from node3 is the firewall.
        lab.ssh_ok(
            "node2",
            "curl -fsS -m 5 -o /dev/null http://127.0.0.1:8001/",
        );
        lab.ssh_ok(
            "node3",
            &format!("curl -fsS -m 5 -o /dev/null http://{node2}:8000/"),
        );
        let out = lab.ssh(
            "node3",
            &format!("curl -sS -m 5 -o /dev/null http://{node2}:8001/"),
        );
        // 28: timed out. Dropped, not refused (7).
        assert_eq!(out.status.code(), Some(28), "{}", common::text(&out));

        // Docker's own tables are intact next to ours, and ours has no foreign chains.
        let tables = lab.ssh_ok("node2", "nft list tables");
        for t in ["table ip nat", "table ip filter", "table inet minipaas"] {
            assert!(tables.contains(t), "{t} missing:\n{tables}");
        }
        let nat = lab.ssh_ok("node2", "nft list table ip nat");
        assert!(nat.contains("DOCKER"), "{nat}");

        // Swarm services still publish through the firewall: a service task on node3 published
        // in host mode answers node1. (Not the routing mesh: it needs IPVS, which this sandbox's
        // kernel lacks, firewall or not: dockerd logs "ipvs is not enabled in your kernel".)
        for n in &lab.nodes {
            busybox_image(lab, &n.name);
        }
        lab.ssh_ok(
            "node1",
            "docker service inspect minipaas-test-web >/dev/null 2>&1 || \
             docker service create -q --detach --name minipaas-test-web --replicas 1 \
             --constraint node.hostname==node3 --publish published=8080,target=8080,mode=host minipaas-test-busybox \
             /bin/busybox httpd -f -p 8080 -h /www",
        );
        wait_until(
            "the published service on node3",
            Duration::from_secs(120),
            || {
                lab.ssh(
                    "node1",
                    &format!("curl -fsS -m 3 -o /dev/null http://{node3}:8080/"),
                )
                .status
                .success()
            },
        );
        lab.ssh_ok("node1", "docker service rm minipaas-test-web >/dev/null");
        lab.ssh_ok(
            "node2",
            "systemctl stop minipaas-test-port-8000 minipaas-test-port-8001",
        );
    }

    #[test]
    fn lab_site_error_log_line_reaches_syslog_ng() {
        let (_g, _, lab) = provisioned();
        let lab = &lab;
        let marker = format!("minipaas test ERROR {}", std::process::id());
        busybox_image(lab, "node2");
        lab.ssh_ok(
            "node2",
            &format!("docker run --rm --name logtest minipaas-test-busybox /bin/busybox sh -c 'echo \"{marker}\"'"),
        );
        wait_until(
            "the container's line in syslog-ng's files",
            Duration::from_secs(30),
            || {
                lab.ssh("node2", &format!("grep -F '{marker}' /var/log/minipaas/alerts.log | grep -q minipaas-logtest"))
                .status
                .success()
            },
        );
        lab.ssh_ok(
            "node2",
            &format!("grep -qF '{marker}' /var/log/minipaas/containers.log"),
        );
    }

    /// Receives Telegram's sendMessage calls on node3 and appends `PATH BODY` lines to
    /// /root/telegram.log.
    const TELEGRAM_CAPTURE: &str = r#"import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with open("/root/telegram.log", "a") as f:
            f.write(self.path + " " + body + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok":true}')
http.server.HTTPServer(("", 8001), H).serve_forever()
"#;

    #[test]
    fn lab_site_error_line_alerts_telegram_at_a_local_endpoint() {
        let (_g, site, lab) = provisioned();
        let lab = &lab;
        lab.put("node3", TELEGRAM_CAPTURE.as_bytes(), "/root/tgcapture.py");
        let node3 = lab.node("node3");
        lab.ssh_ok(
            "node3",
            "rm -f /root/telegram.log; systemctl is-active --quiet minipaas-test-telegram || \
             systemd-run --unit minipaas-test-telegram python3 /root/tgcapture.py",
        );
        let telegram = [
            "monitoring_telegram_token=123456:TESTTOKEN".to_string(),
            "monitoring_telegram_chat_id=4242".to_string(),
            format!(
                "monitoring_telegram_api_url=http://{}:8001",
                node3.private_address
            ),
            format!("minipaas_extra_ports=[{SERVE_PORT}, 8001]"),
        ];
        let (code, recap) = provision(site, lab, &[], &telegram);
        assert_eq!(code, 0, "{:#?}", failures(&recap));
        let marker = format!("minipaas-tg-ERROR-{}", std::process::id());
        busybox_image(lab, "node2");
        lab.ssh_ok(
            "node2",
            &format!("docker run --rm --name tgtest minipaas-test-busybox /bin/busybox sh -c 'echo {marker}'"),
        );
        wait_until(
            "the alert at the local Telegram endpoint",
            Duration::from_secs(60),
            || {
                lab.ssh("node3", &format!("grep -F '{marker}' /root/telegram.log"))
                    .status
                    .success()
            },
        );
        let got = lab.ssh_ok("node3", &format!("grep -F '{marker}' /root/telegram.log"));
        assert!(
            got.starts_with("/bot123456:TESTTOKEN/sendMessage "),
            "{got}"
        );
        assert!(got.contains("chat_id=4242"), "{got}");
        // Back to the lab's usual configuration for the other tests.
        lab.ssh_ok("node3", "systemctl stop minipaas-test-telegram");
        converge(site, lab, &[]);
    }

    #[test]
    fn lab_site_bad_rule_that_cuts_ssh_is_reverted() {
        let (_g, site, lab) = provisioned();
        let lab = &lab;
        let (code, recap) = provision(
            site,
            lab,
            &["--limit", "node3"],
            &[
                r#"firewall_extra_rules=["tcp dport 22 drop"]"#.to_string(),
                "firewall_confirm_timeout=20".to_string(),
            ],
        );
        assert_ne!(code, 0, "a run that locked minipaas out must fail");
        assert_eq!(recap["hosts"]["node3"]["unreachable"], true, "{recap:#}");
        // The revert timer fires and new SSH connections work again.
        wait_until("node3 to accept SSH again", Duration::from_secs(90), || {
            lab.ssh("node3", "true").status.success()
        });
        let rules = lab.ssh_ok("node3", "nft list table inet minipaas");
        assert!(!rules.contains("dport 22 drop"), "{rules}");
        assert!(rules.contains("dport 22 accept"), "{rules}");
        // The bad ruleset never became the boot ruleset; the next normal run converges.
        lab.ssh_ok(
            "node3",
            "! grep -q 'dport 22 drop' /etc/minipaas/firewall/confirmed.nft",
        );
        converge(site, lab, &[]);
        let again = converge(site, lab, &[]);
        assert!(changed(&again).is_empty(), "{:#?}", changed(&again));
    }

    /// A run on node1 that must fail at `download swarm-cronjob` with `expected` in the
    /// message and leave the installed swarm-cronjob as it was, running.
    fn download_fails_and_keeps_the_binary(
        site: &Site,
        lab: &Lab,
        extra: &[String],
        expected: &str,
    ) {
        let before = lab.ssh_ok("node1", "sha256sum /usr/local/bin/swarm-cronjob");
        let (code, recap) = provision(site, lab, &["--limit", "node1"], extra);
        assert_ne!(code, 0);
        let f = failures(&recap);
        assert!(
            f.iter()
                .any(|m| m.contains("download swarm-cronjob") && m.contains(expected)),
            "{f:#?}"
        );
        assert_eq!(
            lab.ssh_ok("node1", "sha256sum /usr/local/bin/swarm-cronjob"),
            before
        );
        lab.ssh_ok("node1", "systemctl is-active swarm-cronjob");
    }

    /// A pinned sha256 wins over the checksums file (which lists the tarball's true sum).
    #[test]
    fn lab_site_wrong_checksum_keeps_the_previous_binary() {
        let (_g, site, lab) = provisioned();
        download_fails_and_keeps_the_binary(
            site,
            &lab,
            &[
                format!("swarm_cronjob_sha256_amd64={}", "0".repeat(64)),
                // A new version name forces a download.
                "swarm_cronjob_version=9.9.9".to_string(),
            ],
            "checksum mismatch",
        );
    }

    /// A mirror serving another binary under the release's name, with the release's checksums
    /// file: the download does not match the sum and replaces nothing.
    #[test]
    fn lab_site_tampered_mirror_keeps_the_previous_binary() {
        let (_g, site, lab) = provisioned();
        download_fails_and_keeps_the_binary(
            site,
            &lab,
            &[
                format!("swarm_cronjob_url={}", mirror_url(&lab, "tampered")),
                "swarm_cronjob_version=9.9.8".to_string(),
            ],
            "checksum mismatch",
        );
    }

    /// A checksums file without a line for the tarball: no unverified download. The
    /// checksums URL given on its own (`swarm_cronjob_checksums_url`) is the one read.
    #[test]
    fn lab_site_checksums_file_without_the_tarball_keeps_the_previous_binary() {
        let (_g, site, lab) = provisioned();
        let unlisted = mirror_url(&lab, "unlisted").replace(TARBALL, "checksums.txt");
        download_fails_and_keeps_the_binary(
            site,
            &lab,
            &[
                format!("swarm_cronjob_checksums_url={unlisted}"),
                "swarm_cronjob_version=9.9.7".to_string(),
            ],
            &format!("the checksums file `{unlisted}` has no sha256 for `{TARBALL}`"),
        );
    }

    #[test]
    fn lab_site_node_restart_brings_everything_back() {
        let (_g, site, lab) = provisioned();
        let lab = &lab;
        for node in ["node1", "node2"] {
            let c = &lab.node(node).container;
            let out = common::docker(&["restart", c]);
            assert!(out.status.success(), "{}", common::text(&out));
        }
        // The restarted containers publish SSH on new ports: read the lab again.
        let lab = &self::lab();
        for node in ["node1", "node2"] {
            wait_until(
                &format!("{node} to answer SSH"),
                Duration::from_secs(120),
                || {
                    lab.ssh(
                        node,
                        "systemctl is-system-running --wait >/dev/null 2>&1; true",
                    )
                    .status
                    .success()
                },
            );
            let rules = lab.ssh_ok(node, "nft list table inet minipaas");
            assert!(rules.contains("policy drop"), "{rules}");
            lab.ssh_ok(node, "systemctl is-active docker syslog-ng");
        }
        wait_until(
            "3 Ready nodes after the restart",
            Duration::from_secs(180),
            || ready_nodes(lab) == 3,
        );
        lab.ssh_ok("node1", "systemctl is-active swarm-cronjob");
        // Docker's rules came back beside ours.
        lab.ssh_ok("node2", "nft list table ip nat | grep -q DOCKER");
        let again = converge(site, lab, &[]);
        assert!(changed(&again).is_empty(), "{:#?}", changed(&again));
    }

    fn certs(args: &[&str], dir: &Path) {
        common::Mp::new().arg("certs").args(args).dir(dir).run();
    }

    /// `docker node ls` from node2 against node1's TLS API with the client files in
    /// `/root/mpt-tls/<name>` on node2; returns whether it succeeded.
    fn tls_node_ls(lab: &Lab, client: Option<&str>) -> bool {
        let addr = &lab.node("node1").private_address;
        let creds = match client {
            Some(c) => format!(
                "--tlscacert /root/mpt-tls/ours/ca.pem --tlscert /root/mpt-tls/{c}/cert.pem --tlskey /root/mpt-tls/{c}/key.pem"
            ),
            None => "--tlscacert /root/mpt-tls/ours/ca.pem".to_string(),
        };
        let out = lab.ssh(
            "node2",
            &format!("timeout 20 docker --tlsverify {creds} -H tcp://{addr}:2376 node ls --format '{{{{.Hostname}}}}'"),
        );
        out.status.success() && String::from_utf8_lossy(&out.stdout).lines().count() == 3
    }

    #[test]
    fn lab_site_docker_api_tls_with_certs_from_minipaas() {
        let _g = serial();
        let site = site();
        let lab = lab();
        let tmp = tempfile::tempdir().unwrap();
        let (pki, foreign) = (tmp.path().join("pki"), tmp.path().join("foreign"));
        let node1 = lab.node("node1").private_address.clone();
        certs(&["ca", "--dir", pki.to_str().unwrap()], tmp.path());
        let server_cert = || {
            certs(
                &[
                    "server",
                    "--host",
                    "node1",
                    "--ip",
                    &node1,
                    "--dir",
                    pki.to_str().unwrap(),
                ],
                tmp.path(),
            )
        };
        server_cert();
        certs(
            &[
                "client",
                "--name",
                "ops",
                "--dir",
                pki.to_str().unwrap(),
                "--out",
                tmp.path().join("ours").to_str().unwrap(),
            ],
            tmp.path(),
        );
        certs(&["ca", "--dir", foreign.to_str().unwrap()], tmp.path());
        certs(
            &[
                "client",
                "--name",
                "ops",
                "--dir",
                foreign.to_str().unwrap(),
                "--out",
                tmp.path().join("theirs").to_str().unwrap(),
            ],
            tmp.path(),
        );
        lab.ssh_ok("node2", "rm -rf /root/mpt-tls && mkdir -p /root/mpt-tls");
        for who in ["ours", "theirs"] {
            lab.copy_in(
                "node2",
                &tmp.path().join(who),
                &format!("/root/mpt-tls/{who}"),
            );
        }
        let tls = format!("docker_tls_dir={}", pki.display());

        let (code, recap) = provision(site, &lab, &[], std::slice::from_ref(&tls));
        assert_eq!(code, 0, "{:#?}", failures(&recap));
        // Docker restarts in the rolling play (site.yaml), not in a handler.
        let restarts = |recap: &Value, host: &str| {
            recap["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|t| {
                    t["host"] == host && t["status"] == "changed" && t["task"] == "restart Docker"
                })
                .count()
        };
        assert_eq!(restarts(&recap, "node1"), 1, "{:#?}", changed(&recap));
        assert_eq!(restarts(&recap, "node2"), 0, "{:#?}", changed(&recap));
        assert_eq!(
            lab.ssh_ok("node1", "stat -c '%n %a' /etc/docker/ca.pem /etc/docker/server-cert.pem /etc/docker/server-key.pem"),
            "/etc/docker/ca.pem 644\n/etc/docker/server-cert.pem 644\n/etc/docker/server-key.pem 600"
        );
        wait_until(
            "the TLS API with our client certificate",
            Duration::from_secs(90),
            || tls_node_ls(&lab, Some("ours")),
        );
        assert!(
            !tls_node_ls(&lab, None),
            "no client certificate must be refused"
        );
        assert!(
            !tls_node_ls(&lab, Some("theirs")),
            "another CA's client certificate must be refused"
        );
        let (code, recap) = provision(site, &lab, &[], std::slice::from_ref(&tls));
        assert_eq!(code, 0);
        assert!(changed(&recap).is_empty(), "{:#?}", changed(&recap));

        // Rotation: a new server certificate from the same CA restarts Docker once more and the
        // client certificate issued before stays valid.
        server_cert();
        let (code, recap) = provision(site, &lab, &[], std::slice::from_ref(&tls));
        assert_eq!(code, 0, "{:#?}", failures(&recap));
        assert_eq!(restarts(&recap, "node1"), 1, "{:#?}", changed(&recap));
        wait_until(
            "the TLS API after rotation",
            Duration::from_secs(90),
            || tls_node_ls(&lab, Some("ours")),
        );

        // Back to no TCP API, as the other tests expect: the files go, port 2376 closes.
        converge(site, &lab, &[]);
        assert_eq!(
            lab.ssh_ok("node1", "ls /etc/docker/ca.pem 2>/dev/null | wc -l"),
            "0"
        );
        wait_until("docker back on the socket", Duration::from_secs(90), || {
            ready_nodes(&lab) == 3
        });
    }
}
