//! The node firewall seen from outside: a container on the lab network that is not a cluster
//! node scans a provisioned 3-node cluster running the example app and services that publish
//! undeclared ports. Only the declared ports answer; the Swarm ports answer the nodes alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::Value;

use crate::common::deploy::{deployed_example, get};
use crate::common::site::{
    busybox_image, changed, failures, name, provision, provisioned, SERVE_PORT,
};
use crate::common::{self, wait_until, Lab, Mp};

/// A TCP connect scan of ports 1-10000 of every address given, many at a time: `open` (a
/// connection), `closed` (refused: reached the host, nothing listens) or `filtered` (no answer
/// within 2 s: dropped). Prints `{addr: {"open": [ports], "closed": n, "filtered": n}}`.
const SCAN: &str = r#"
import asyncio, json, sys
hosts = sys.argv[1].split(",")
async def probe(sem, h, p):
    async with sem:
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection(h, p), 2.0)
            w.close()
            return h, p, "open"
        except asyncio.TimeoutError:
            return h, p, "filtered"
        except OSError:
            return h, p, "closed"
async def main():
    sem = asyncio.Semaphore(2500)
    res = await asyncio.gather(*(probe(sem, h, p) for h in hosts for p in range(1, 10001)))
    out = {h: {"open": [], "closed": 0, "filtered": 0} for h in hosts}
    for h, p, s in res:
        if s == "open":
            out[h]["open"].append(p)
        else:
            out[h][s] += 1
    print(json.dumps(out))
asyncio.run(main())
"#;

/// Sends 20 UDP datagrams to each `addr:port` given.
const UDP: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for target in sys.argv[1:]:
    h, p = target.rsplit(":", 1)
    for _ in range(20):
        s.sendto(b"minipaas firewall test", (h, int(p)))
"#;

/// A container on the lab's network that is not a node: the outside world, as close to the
/// cluster as it gets. Removed when dropped.
struct Outsider {
    container: String,
}

impl Outsider {
    fn start() -> Outsider {
        let container = format!("{}-outsider", name());
        let _ = common::docker(&["rm", "--force", &container]);
        let out = common::docker(&[
            "run",
            "--detach",
            "--name",
            &container,
            "--network",
            &format!("{}-net", name()),
            "--entrypoint",
            "sleep",
            "minipaas-node:trixie",
            "infinity",
        ]);
        assert!(out.status.success(), "{}", common::text(&out));
        Outsider { container }
    }

    fn python(&self, script: &str, args: &[String]) -> String {
        let mut cmd = vec!["exec", &self.container, "python3", "-c", script];
        cmd.extend(args.iter().map(String::as_str));
        let out = common::docker(&cmd);
        assert!(out.status.success(), "{}", common::text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Outsider {
    fn drop(&mut self) {
        let _ = common::docker(&["rm", "--force", &self.container]);
    }
}

/// Services of this test, removed when dropped.
struct TestServices<'a>(&'a Lab);

impl Drop for TestServices<'_> {
    fn drop(&mut self) {
        let _ = self.0.ssh(
            "node1",
            "docker service rm minipaas-test-undeclared minipaas-test-registry-port >/dev/null 2>&1; true",
        );
    }
}

/// Packets the named counter of minipaas's table has counted on `node`.
fn counter(lab: &Lab, node: &str, name: &str) -> u64 {
    let out = lab.ssh_ok(node, &format!("nft list counter inet minipaas {name}"));
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in:\n{out}"))
}

fn tcp_connects(lab: &Lab, from: &str, addr: &str, port: u16) -> bool {
    lab.ssh(
        from,
        &format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{addr}/{port}'"),
    )
    .status
    .success()
}

#[test]
fn lab_firewall_scan_from_outside_finds_only_the_declared_ports() {
    let (_g, site, lab) = provisioned();
    let lab = &lab;
    // The registry's port declared on purpose: it must stay closed to the outside anyway.
    let declared_extra = format!("minipaas_extra_ports=[{SERVE_PORT}, 5000]");
    let (code, recap) = provision(site, lab, &[], std::slice::from_ref(&declared_extra));
    assert_eq!(code, 0, "{:#?}", failures(&recap));
    let _example = deployed_example(lab);

    // Two services that publish ports in host mode on node2: one nobody declared, one on the
    // runtime registry's port.
    let _services = TestServices(lab);
    busybox_image(lab, "node2");
    for (svc, port) in [
        ("minipaas-test-undeclared", 9090),
        ("minipaas-test-registry-port", 5000),
    ] {
        lab.ssh_ok(
            "node1",
            &format!(
                "docker service inspect {svc} >/dev/null 2>&1 || \
                 docker service create -q --detach --name {svc} --replicas 1 \
                 --constraint node.hostname==node2 --publish published={port},target=8080,mode=host \
                 minipaas-test-busybox /bin/busybox httpd -f -p 8080 -h /www"
            ),
        );
    }
    let node2 = lab.node("node2").private_address.clone();
    // They run and answer a cluster node: what the outside cannot reach is the firewall's doing.
    for port in [9090, 5000] {
        wait_until(
            &format!("node2:{port} from node1"),
            Duration::from_secs(120),
            || tcp_connects(lab, "node1", &node2, port),
        );
    }
    // From a node, the Swarm ports answer.
    let node1 = lab.node("node1").private_address.clone();
    for port in [2377, 7946] {
        assert!(
            tcp_connects(lab, "node2", &node1, port),
            "node2 cannot reach node1:{port}"
        );
    }

    let outsider = Outsider::start();
    let addrs: Vec<String> = lab
        .nodes
        .iter()
        .map(|n| n.private_address.clone())
        .collect();
    let scan: BTreeMap<String, Value> =
        serde_json::from_str(&outsider.python(SCAN, &[addrs.join(",")])).unwrap();

    // Declared: SSH, the web ports, Caddy's port (minipaas_http_port), the extra ports.
    let declared: BTreeSet<u64> = [22, 80, 443, u64::from(SERVE_PORT), 5000].into();
    let mut total_open = 0;
    for n in &lab.nodes {
        let r = &scan[&n.private_address];
        let open: BTreeSet<u64> = r["open"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        let (closed, filtered) = (
            r["closed"].as_u64().unwrap(),
            r["filtered"].as_u64().unwrap(),
        );
        println!(
            "{} ({}): 10000 TCP ports probed, open {open:?} (expected: a subset of the declared \
             {declared:?}, with 22), closed {closed}, filtered {filtered}",
            n.name, n.private_address
        );
        total_open += open.len();
        assert_eq!(open.len() as u64 + closed + filtered, 10000);
        let undeclared: Vec<&u64> = open.difference(&declared).collect();
        assert!(
            undeclared.is_empty(),
            "{}: undeclared ports open from outside: {undeclared:?}",
            n.name
        );
        assert!(open.contains(&22), "{}: SSH closed", n.name);
        // Default deny: ports nobody opened are dropped, not refused.
        assert!(filtered >= 9990, "{}: only {filtered} filtered", n.name);
    }
    let node1_open = &scan[&node1]["open"];
    assert!(
        node1_open
            .as_array()
            .unwrap()
            .contains(&Value::from(SERVE_PORT)),
        "Caddy's port on node1 is not open from outside: {node1_open}"
    );
    let node2_open = &scan[&node2]["open"];
    for port in [9090, 5000, 2377, 7946] {
        assert!(
            !node2_open.as_array().unwrap().contains(&Value::from(port)),
            "node2:{port} open from outside"
        );
    }
    println!(
        "scan: {} TCP ports probed on {} nodes, {total_open} open, all of them declared",
        10000 * lab.nodes.len(),
        lab.nodes.len()
    );

    // The Swarm's UDP ports (VXLAN, gossip): datagrams from outside are counted and dropped;
    // the same datagrams from a node are not (accepted before the drop).
    let udp_targets = |addr: &str| vec![format!("{addr}:4789"), format!("{addr}:7946")];
    let before = counter(lab, "node2", "swarm_outside");
    outsider.python(UDP, &udp_targets(&node2));
    let after = counter(lab, "node2", "swarm_outside");
    println!(
        "udp 4789, 7946 from outside: 40 sent, {} dropped",
        after - before
    );
    assert!(after - before >= 40, "dropped {} of 40", after - before);
    lab.put("node3", UDP.as_bytes(), "/root/udp.py");
    let before = counter(lab, "node2", "swarm_outside");
    lab.ssh_ok(
        "node3",
        &format!("python3 /root/udp.py {node2}:4789 {node2}:7946"),
    );
    assert_eq!(
        counter(lab, "node2", "swarm_outside"),
        before,
        "a node's datagrams dropped"
    );

    // The swarm still works across the firewall: Caddy (node1) reaches the web tasks on the
    // workers and they reach PostgreSQL (node1) over the overlay: a visit through Caddy is
    // recorded.
    let placed = lab.ssh_ok(
        "node1",
        "docker service ps minipaas_web minipaas_postgres --filter desired-state=running --format '{{.Name}} {{.Node}}'",
    );
    assert!(
        placed.contains("minipaas_postgres.1 node1")
            && placed
                .lines()
                .any(|l| l.starts_with("minipaas_web.") && !l.ends_with(" node1")),
        "want PostgreSQL on node1 and a web task on a worker:\n{placed}"
    );
    let visits = || {
        get(lab, "/visits")
            .and_then(|v| v.parse::<u64>().ok())
            .expect("/visits through Caddy")
    };
    let first = visits();
    get(lab, "/").expect("GET / through Caddy");
    assert!(visits() > first, "the visit was not recorded");

    // SSH from trusted sources only: the controller's address (the lab network's gateway)
    // keeps its way in (the run confirms over a fresh connection), the outsider has none.
    let gateway = lab.ssh_ok("node1", "ip route | awk '/^default/ {print $3}'");
    let sources = format!("firewall_ssh_sources=[\"{}/32\"]", gateway.trim());
    let (code, recap) = provision(site, lab, &[], &[declared_extra.clone(), sources]);
    assert_eq!(code, 0, "{:#?}", failures(&recap));
    let ssh = outsider.python(
        "import socket, sys\ns = socket.socket()\ns.settimeout(2)\n\
         try:\n    s.connect((sys.argv[1], 22)); print('open')\n\
         except socket.timeout:\n    print('filtered')\n\
         except OSError:\n    print('closed')",
        std::slice::from_ref(&node2),
    );
    assert_eq!(ssh.trim(), "filtered", "SSH from outside the sources");

    // Back to the lab's usual configuration: the firewall changes, and a second run nothing.
    let (code, recap) = provision(site, lab, &[], std::slice::from_ref(&declared_extra));
    assert_eq!(code, 0, "{:#?}", failures(&recap));
    let (code, again) = provision(site, lab, &[], &[declared_extra]);
    assert_eq!(code, 0, "{:#?}", failures(&again));
    assert!(changed(&again).is_empty(), "{:#?}", changed(&again));
}

/// The confirmation race: the revert timer fires after the confirmation saw it active and
/// before it stopped it. What that leaves on node2 is set up by hand: a new ruleset applied
/// (its listing recorded, as the apply task does), then the old one loaded back by the
/// revert, with the timer still active. The confirmation must look at the live table, refuse,
/// and keep the old ruleset as the confirmed one.
#[test]
fn lab_firewall_confirmation_checks_the_live_ruleset_not_the_timer() {
    let (_g, site, lab) = provisioned();
    let lab = &lab;
    let d = "/etc/minipaas/firewall";
    lab.ssh_ok(
        "node2",
        &format!(
            "set -e; cp {d}/confirmed.nft /root/confirmed.orig; cp {d}/wanted.nft /root/wanted.orig
             sed 's/comment \"ssh\"/comment \"ssh, changed\"/' /root/wanted.orig > {d}/wanted.nft
             ! cmp -s {d}/wanted.nft {d}/confirmed.nft
             cp {d}/confirmed.nft {d}/revert.nft
             nft -f {d}/wanted.nft
             nft -s list table inet minipaas > {d}/applied.list
             nft -f {d}/revert.nft
             systemd-run --quiet --unit minipaas-firewall-revert --on-active=600 /bin/true"
        ),
    );
    let plan = tempfile::tempdir().unwrap();
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(
        plan.path().join("confirm.yaml"),
        format!(
            "- name: firewall confirmation\n  hosts: node2\n  tasks:\n    - import_tasks: {}\n",
            root.join("playbooks/tasks/firewall_confirm.yaml").display()
        ),
    )
    .unwrap();
    let out = Mp::new()
        .dir(&lab.dir)
        .args(["provision", "-i"])
        .arg(&lab.inventory)
        .arg(plan.path().join("confirm.yaml"))
        .arg("--templates")
        .arg(root.join("templates"))
        .args([
            "-e",
            "enable_firewall=true",
            "-e",
            "firewall_confirm_timeout=120",
        ])
        .any_code()
        .run();
    let confirmed_kept = lab
        .ssh(
            "node2",
            &format!("cmp -s {d}/confirmed.nft /root/confirmed.orig"),
        )
        .status
        .success();
    // Back to the lab's ruleset, whatever happened.
    lab.ssh_ok(
        "node2",
        &format!(
            "systemctl stop minipaas-firewall-revert.timer 2>/dev/null; \
             cp /root/wanted.orig {d}/wanted.nft; cp /root/confirmed.orig {d}/confirmed.nft; \
             nft -f {d}/confirmed.nft"
        ),
    );
    assert_ne!(out.code, Some(0), "confirmed: {}", out.text());
    assert!(
        out.text().contains("reverted before it could be confirmed"),
        "{}",
        out.text()
    );
    assert!(
        confirmed_kept,
        "the reverted ruleset was recorded as confirmed"
    );
    let again = crate::common::site::converge(site, lab, &[]);
    assert!(changed(&again).is_empty(), "{:#?}", changed(&again));
}
