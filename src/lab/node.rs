//! One lab node as a container: how it is started (the flags that let systemd run as PID 1
//! without `--privileged`), how it is found again, and what is read from or put into it through
//! `docker exec`, the trusted channel that needs no host key.

use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::{docker, state, LabError, Node};

/// Labels that mark what belongs to a lab, so `down` and `status` never touch anything else.
pub const LABEL_LAB: &str = "minipaas.lab";
pub const LABEL_NODE: &str = "minipaas.lab.node";
pub const LABEL_IMAGE: &str = "minipaas.lab.image";

/// How long a node may take from `docker run` to a running system with sshd answering.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(500);

/// `NAME-nodeI`: the container of node `nodeI` of lab `NAME`.
pub fn container_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}")
}

/// The lab's own bridge network.
pub fn network_name(lab: &str) -> String {
    format!("{lab}-net")
}

/// The volume a node's nested Docker engine keeps its data in (overlay2 needs a real
/// filesystem under it, not the container's own overlay).
pub fn volume_name(lab: &str, node: &str) -> String {
    format!("{lab}-{node}-docker")
}

/// A container of a lab as the engine reports it.
#[derive(Debug, Clone)]
pub struct Existing {
    pub container: String,
    pub node: String,
    pub image: String,
    pub running: bool,
    pub status: String,
}

/// Every container labelled as part of lab `lab`, sorted by node number.
pub async fn list(lab: &str) -> Result<Vec<Existing>, LabError> {
    let filter = format!("label={LABEL_LAB}={lab}");
    let format = format!(
        "{{{{.Names}}}}\t{{{{.Label \"{LABEL_NODE}\"}}}}\t{{{{.Label \"{LABEL_IMAGE}\"}}}}\t{{{{.State}}}}\t{{{{.Status}}}}"
    );
    let out = docker::run(&["ps", "-a", "--filter", &filter, "--format", &format]).await?;
    let mut found: Vec<Existing> = out
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (f.len() == 5).then(|| Existing {
                container: f[0].to_string(),
                node: f[1].to_string(),
                image: f[2].to_string(),
                running: f[3] == "running",
                status: f[4].to_string(),
            })
        })
        .collect();
    found.sort_by_key(|e| node_number(&e.node));
    Ok(found)
}

/// `7` for `node7`; nodes with other names sort last.
pub fn node_number(node: &str) -> usize {
    node.strip_prefix("node")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// How to start one node.
pub struct RunSpec<'a> {
    pub lab: &'a str,
    pub node: &'a str,
    pub image: &'a str,
    /// A fixed loopback port for SSH, or `None` to let Docker pick a free one.
    pub ssh_port: Option<u16>,
}

/// The `docker run` arguments for a node. No `--privileged` (the sandbox withholds
/// CAP_SYS_RESOURCE, which it would need); this set still runs systemd, nftables and a nested
/// Docker engine.
pub fn run_args(spec: &RunSpec) -> Vec<String> {
    let publish = match spec.ssh_port {
        Some(port) => format!("127.0.0.1:{port}:22"),
        None => "127.0.0.1::22".to_string(),
    };
    let mut args: Vec<String> = vec![
        "run".into(),
        "--detach".into(),
        "--name".into(),
        container_name(spec.lab, spec.node),
        "--hostname".into(),
        spec.node.into(),
        "--label".into(),
        format!("{LABEL_LAB}={}", spec.lab),
        "--label".into(),
        format!("{LABEL_NODE}={}", spec.node),
        "--label".into(),
        format!("{LABEL_IMAGE}={}", spec.image),
        "--network".into(),
        network_name(spec.lab),
        "--publish".into(),
        publish,
        "--volume".into(),
        format!("{}:/var/lib/docker", volume_name(spec.lab, spec.node)),
    ];
    for flag in [
        "--cap-add=ALL",
        "--cap-drop=SYS_RESOURCE",
        "--security-opt=seccomp=unconfined",
        "--security-opt=apparmor=unconfined",
        "--cgroupns=host",
        "--volume=/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs=/run",
        "--tmpfs=/run/lock",
        "--env=container=docker",
        "--stop-signal=SIGRTMIN+3",
    ] {
        args.push(flag.into());
    }
    args.push(spec.image.into());
    args.push("/sbin/init".into());
    args
}

/// The loopback port Docker published for the node's SSH port.
pub async fn ssh_port(container: &str) -> Result<u16, LabError> {
    let out = docker::run(&["port", container, "22/tcp"]).await?;
    // `127.0.0.1:40001`, one line per binding; only loopback bindings are made.
    out.lines()
        .filter_map(|l| l.rsplit_once(':'))
        .find_map(|(_, p)| p.trim().parse().ok())
        .ok_or_else(|| LabError::Docker {
            command: format!("docker port {container} 22/tcp"),
            stderr: format!("no published port in `{out}`"),
        })
}

/// The node's address on the lab network.
pub async fn private_address(lab: &str, container: &str) -> Result<String, LabError> {
    let format = format!(
        "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
        network_name(lab)
    );
    let addr = docker::run(&["inspect", "--format", &format, container]).await?;
    if addr.is_empty() {
        return Err(LabError::Docker {
            command: format!("docker inspect {container}"),
            stderr: format!("no address on network `{}`", network_name(lab)),
        });
    }
    Ok(addr)
}

/// How a node came to be up in this `lab up`, which decides what "booted" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boot {
    /// Created by this run from the image: it must reach `running`.
    Fresh,
    /// A stopped node this run started again: it carries whatever was done to it before
    /// (failed units of someone's test included), so boot must finish but may end `degraded`.
    Restarted,
    /// Was running already: it only has to answer SSH.
    AlreadyUp,
}

/// Waits for the node to be usable: its own host key exists, systemd has finished booting
/// (see [`Boot`]) and sshd sends its banner on the published port. Returns the ed25519 host
/// public key as the node itself reports it.
pub async fn wait_booted(node: &Node, boot: Boot) -> Result<String, LabError> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let timeout = |what: &str| LabError::BootTimeout {
        node: node.name.clone(),
        seconds: BOOT_TIMEOUT.as_secs(),
        what: what.to_string(),
    };

    let host_key = loop {
        let out = docker::try_run(&[
            "exec",
            &node.container,
            "cat",
            "/etc/ssh/ssh_host_ed25519_key.pub",
        ])
        .await?;
        // A half-written file does not parse; the next poll reads it whole.
        if out.success && state::known_hosts_line(node.ssh_port, &out.stdout).is_some() {
            break out.stdout.trim().to_string();
        }
        if Instant::now() > deadline {
            return Err(timeout("its SSH host key"));
        }
        tokio::time::sleep(POLL).await;
    };

    if boot != Boot::AlreadyUp {
        wait_running(node, deadline, boot == Boot::Fresh).await?;
    }

    loop {
        if ssh_banner(node.ssh_port).await {
            return Ok(host_key);
        }
        if Instant::now() > deadline {
            return Err(timeout("sshd to answer on the published port"));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits for systemd to finish booting. `running` is required when `strict`; otherwise
/// `degraded` is accepted too. Anything else is an error naming the failed units.
async fn wait_running(node: &Node, deadline: Instant, strict: bool) -> Result<(), LabError> {
    let state = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let out = tokio::time::timeout(
            left,
            docker::try_run(&[
                "exec",
                &node.container,
                "systemctl",
                "is-system-running",
                "--wait",
            ]),
        )
        .await
        .map_err(|_| LabError::BootTimeout {
            node: node.name.clone(),
            seconds: BOOT_TIMEOUT.as_secs(),
            what: "systemd to finish booting".into(),
        })??;
        let state = out.stdout.trim().to_string();
        // Right after `docker start`, before systemd's bus is up, systemctl prints nothing
        // (or `offline`) instead of waiting; ask again.
        if !matches!(
            state.as_str(),
            "" | "offline" | "unknown" | "initializing" | "starting"
        ) {
            break state;
        }
        if Instant::now() > deadline {
            return Err(LabError::BootTimeout {
                node: node.name.clone(),
                seconds: BOOT_TIMEOUT.as_secs(),
                what: "systemd to finish booting".into(),
            });
        }
        tokio::time::sleep(POLL).await;
    };
    if state == "running" || (!strict && state == "degraded") {
        return Ok(());
    }
    let failed = docker::try_run(&[
        "exec",
        &node.container,
        "systemctl",
        "list-units",
        "--failed",
        "--plain",
        "--no-legend",
    ])
    .await?;
    let units: Vec<String> = failed
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    Err(LabError::NodeNotRunning {
        node: node.name.clone(),
        state,
        failed_units: units.join(", "),
    })
}

/// True when something on 127.0.0.1:`port` greets like an SSH server. Docker's port proxy
/// accepts connections before sshd listens, so an open port alone proves nothing.
async fn ssh_banner(port: u16) -> bool {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let mut buf = [0u8; 8];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf.starts_with(b"SSH-2.0-"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), attempt).await,
        Ok(Some(true))
    )
}

/// Puts `public_key` into root's authorized_keys on the node unless it is there; returns true
/// when it added it.
pub async fn authorize(container: &str, public_key: &str) -> Result<bool, LabError> {
    const SCRIPT: &str = r#"umask 077; mkdir -p /root/.ssh
if grep -qxF "$1" /root/.ssh/authorized_keys 2>/dev/null; then echo present
else printf '%s\n' "$1" >> /root/.ssh/authorized_keys && echo added; fi"#;
    let out = docker::run(&["exec", container, "sh", "-c", SCRIPT, "sh", public_key]).await?;
    Ok(out == "added")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_lab() {
        assert_eq!(container_name("lab", "node1"), "lab-node1");
        assert_eq!(network_name("mptest"), "mptest-net");
        assert_eq!(volume_name("lab", "node2"), "lab-node2-docker");
    }

    #[test]
    fn nodes_sort_by_number() {
        let mut v = vec!["node10", "node2", "node1", "other"];
        v.sort_by_key(|n| node_number(n));
        assert_eq!(v, ["node1", "node2", "node10", "other"]);
    }

    #[test]
    fn run_args_publish_on_loopback_only_and_never_privileged() {
        let spec = RunSpec {
            lab: "lab",
            node: "node1",
            image: "minipaas-node:trixie",
            ssh_port: None,
        };
        let args = run_args(&spec);
        assert!(args.windows(2).any(|w| w == ["--publish", "127.0.0.1::22"]));
        assert!(!args.iter().any(|a| a.contains("privileged")));
        assert_eq!(args.last().unwrap(), "/sbin/init");
        let fixed = run_args(&RunSpec {
            ssh_port: Some(40001),
            ..spec
        });
        assert!(fixed
            .windows(2)
            .any(|w| w == ["--publish", "127.0.0.1:40001:22"]));
    }
}
