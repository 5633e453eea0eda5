//! The lab: throwaway clusters of Debian nodes on the local Docker engine, each node a container
//! with systemd as PID 1 and OpenSSH, reachable on a loopback port with a lab key and strictly
//! checked host keys. Owns bringing a lab up (idempotently), down, listing it, and the `ssh`
//! command line that reaches a node.
//!
//! Everything goes through the `docker` command line ([`docker`]); nothing here prints: callers
//! get reports and a progress callback. Only containers, volumes and networks labelled with the
//! lab's name are ever changed or removed.

pub mod docker;
pub mod image;
pub mod inventory;
pub mod node;
pub mod state;

mod host;

use host::{ensure_inotify, ensure_network, start_node};

use std::net::TcpListener;
use std::path::PathBuf;

pub use state::LabPaths;

/// The Debian release of a lab's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Release {
    /// Debian 12
    Bookworm,
    /// Debian 13
    Trixie,
}

impl Release {
    pub fn codename(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
        }
    }
}

/// One node of a running lab, as written to the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `node1`, `node2`, ...: the inventory host name and the node's hostname.
    pub name: String,
    /// The container: `LAB-node1`.
    pub container: String,
    /// The SSH port published on 127.0.0.1.
    pub ssh_port: u16,
    /// The node's address on the lab network (a swarm advertise address).
    pub private_address: String,
}

/// What `lab up` is asked for.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub name: String,
    pub nodes: usize,
    pub managers: usize,
    pub release: Release,
    /// The node image; `minipaas-node:RELEASE` when `None`. Built when missing.
    pub image: Option<String>,
    /// The first node's SSH port (later nodes consecutive); `None` lets Docker pick free ports.
    pub ssh_port: Option<u16>,
}

/// What `lab up` did.
#[derive(Debug)]
pub struct UpReport {
    /// One line per change made; empty when the lab was already exactly as asked.
    pub changes: Vec<String>,
    pub nodes: Vec<Node>,
    pub paths: LabPaths,
}

/// One container of a lab, for `lab status`.
#[derive(Debug)]
pub struct NodeStatus {
    pub node: String,
    pub container: String,
    /// Docker's own words: `Up 5 minutes`, `Exited (0) ...`.
    pub status: String,
    pub ssh_port: Option<u16>,
    pub private_address: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("lab name `{name}` is not usable: use lowercase letters, digits, `-`, `_` or `.`, starting with a letter or digit, at most 40 characters")]
    BadName { name: String },
    #[error("{reason}")]
    BadShape { reason: String },
    #[error("no Docker engine answers ({reason}); install one with `apt-get install docker.io` and start it with `dockerd &` (or `systemctl start docker` where systemd runs)")]
    NoDocker { reason: String },
    #[error("`{command}` failed: {stderr}")]
    Docker { command: String, stderr: String },
    #[error("cannot run `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build node image `{image}`: no registry answers for `debian:{release}` ({registry}) and `debootstrap` is not installed; install it with `apt-get install debootstrap`")]
    NoImageBuilder {
        image: String,
        release: String,
        registry: String,
    },
    #[error("cannot build base image `{image}`: `debootstrap` is not installed; install it with `apt-get install debootstrap` (where a registry answers, use `debian:RELEASE-slim` instead)")]
    NoDebootstrap { image: String },
    #[error("debootstrap of Debian `{release}` failed:\n{output}")]
    Debootstrap { release: String, output: String },
    #[error("configuring node image `{image}` failed:\n{output}")]
    ImageSetup { image: String, output: String },
    #[error("port `{port}` on 127.0.0.1 is already taken (wanted for node `{node}`); pass `--ssh-port PORT` with a free range of ports, or leave it out to let Docker choose free ones")]
    PortTaken { port: u16, node: String },
    #[error("lab `{lab}` already exists and differs: {detail}; run `minipaas lab down --name {lab}` first")]
    Mismatch { lab: String, detail: String },
    #[error("`{program}` is not installed; install it with `apt-get install openssh-client`")]
    NoSshClient { program: String },
    #[error("`ssh-keygen` could not create `{path}`: {stderr}")]
    KeyGen { path: PathBuf, stderr: String },
    #[error("cannot write `{path}`")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("node `{node}` did not bring up {what} within {seconds} s; look inside with `docker logs` or `docker exec`")]
    BootTimeout {
        node: String,
        seconds: u64,
        what: String,
    },
    #[error("node `{node}` booted `{state}` instead of `running`; failed units: {failed_units}")]
    NodeNotRunning {
        node: String,
        state: String,
        failed_units: String,
    },
    #[error("fs.inotify.max_user_instances is {current}, {needed} needed for this many nodes, and it cannot be raised here; run `sysctl -w fs.inotify.max_user_instances=1024` as root")]
    Inotify {
        current: u64,
        needed: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("node `{node}`: the boot check crashed")]
    WaitCrashed {
        node: String,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("lab `{lab}` is not up")]
    NotUp { lab: String },
    #[error("lab `{lab}` has no node `{node}` (nodes: {known})")]
    NoSuchNode {
        lab: String,
        node: String,
        known: String,
    },
    #[error("no key for lab `{lab}` in this directory (`{path}`); run `minipaas lab up --name {lab}` here first")]
    NoKeyHere { lab: String, path: PathBuf },
}

impl LabError {
    /// 2 for requests the user can fix before anything ran, 1 for failures while acting.
    pub fn exit_code(&self) -> i32 {
        match self {
            LabError::BadName { .. }
            | LabError::BadShape { .. }
            | LabError::PortTaken { .. }
            | LabError::Mismatch { .. }
            | LabError::NoSuchNode { .. }
            | LabError::NotUp { .. }
            | LabError::NoKeyHere { .. } => 2,
            _ => 1,
        }
    }
}

/// Brings lab `opts.name` to the asked shape and writes its key, known_hosts and inventory
/// under the current directory. Idempotent: on a lab that is already up as asked it changes
/// nothing and returns an empty `changes`. Errors with [`LabError::Mismatch`] rather than
/// removing or replacing nodes of an existing lab.
pub async fn up(opts: &UpOptions, progress: &dyn Fn(&str)) -> Result<UpReport, LabError> {
    check_name(&opts.name)?;
    check_shape(opts)?;
    docker::ping().await?;
    let lab = opts.name.as_str();
    let image = opts
        .image
        .clone()
        .unwrap_or_else(|| image::default_tag(opts.release));
    let wanted: Vec<String> = (1..=opts.nodes).map(|i| format!("node{i}")).collect();

    let existing = node::list(lab).await?;
    for e in &existing {
        if !wanted.contains(&e.node) {
            return Err(LabError::Mismatch {
                lab: lab.into(),
                detail: format!("it has node `{}` beyond --nodes {}", e.node, opts.nodes),
            });
        }
        if e.image != image {
            return Err(LabError::Mismatch {
                lab: lab.into(),
                detail: format!("node `{}` runs image `{}`, not `{image}`", e.node, e.image),
            });
        }
    }
    let missing: Vec<(usize, &String)> = wanted
        .iter()
        .enumerate()
        .filter(|(_, n)| !existing.iter().any(|e| &e.node == *n))
        .collect();

    let mut changes = Vec::new();
    if !missing.is_empty() {
        if let Some(base) = opts.ssh_port {
            for (i, n) in &missing {
                let port = node_ssh_port(base, *i)?;
                if TcpListener::bind(("127.0.0.1", port)).is_err() {
                    return Err(LabError::PortTaken {
                        port,
                        node: (*n).clone(),
                    });
                }
            }
        }
        if let Some(change) = ensure_inotify(missing.len()).await? {
            changes.push(change);
        }
        if image::ensure(&image, opts.release, progress).await? {
            changes.push(format!("built node image `{image}`"));
        }
        if ensure_network(lab).await? {
            changes.push(format!("created network `{}`", node::network_name(lab)));
        }
        for (i, n) in &missing {
            progress(&format!("starting `{}`", node::container_name(lab, n)));
            let port = opts.ssh_port.map(|p| node_ssh_port(p, *i)).transpose()?;
            start_node(lab, n, &image, port).await?;
            changes.push(format!("started node `{n}`"));
        }
    }
    for e in existing.iter().filter(|e| !e.running) {
        docker::run(&["start", &e.container]).await?;
        changes.push(format!("restarted stopped node `{}`", e.node));
    }

    let paths = LabPaths::new(lab);
    let (public_key, generated) = state::ensure_key_pair(&paths, lab).await?;
    if generated {
        changes.push(format!("generated key `{}`", paths.key.display()));
    }

    let mut nodes = Vec::new();
    for n in &wanted {
        let container = node::container_name(lab, n);
        nodes.push(Node {
            name: n.clone(),
            ssh_port: node::ssh_port(&container).await?,
            private_address: node::private_address(lab, &container).await?,
            container,
        });
    }
    let fresh: Vec<String> = missing.iter().map(|(_, n)| (*n).clone()).collect();
    let restarted: Vec<String> = existing
        .iter()
        .filter(|e| !e.running)
        .map(|e| e.node.clone())
        .collect();
    if !fresh.is_empty() || !restarted.is_empty() {
        progress("waiting for the nodes to boot");
    }
    let mut waits = Vec::new();
    for n in &nodes {
        let boot = if fresh.contains(&n.name) {
            node::Boot::Fresh
        } else if restarted.contains(&n.name) {
            node::Boot::Restarted
        } else {
            node::Boot::AlreadyUp
        };
        let n = n.clone();
        waits.push(tokio::spawn(
            async move { node::wait_booted(&n, boot).await },
        ));
    }
    let mut host_keys = Vec::new();
    for (n, wait) in nodes.iter().zip(waits) {
        let key = wait.await.map_err(|source| LabError::WaitCrashed {
            node: n.name.clone(),
            source,
        })??;
        host_keys.push(key);
    }

    for n in &nodes {
        if node::authorize(&n.container, &public_key).await? {
            changes.push(format!("authorized the lab key on `{}`", n.name));
        }
    }
    let mut known_hosts = String::new();
    for (n, key) in nodes.iter().zip(&host_keys) {
        // wait_booted only returns keys that make a line.
        if let Some(line) = state::known_hosts_line(n.ssh_port, key) {
            known_hosts.push_str(&line);
            known_hosts.push('\n');
        }
    }
    if state::write_if_changed(&paths.known_hosts, &known_hosts)? {
        changes.push(format!("wrote `{}`", paths.known_hosts.display()));
    }
    let text = inventory::render(lab, &nodes, opts.managers);
    if state::write_if_changed(&paths.inventory, &text)? {
        changes.push(format!("wrote `{}`", paths.inventory.display()));
    }
    Ok(UpReport {
        changes,
        nodes,
        paths,
    })
}

/// Removes lab `name`'s containers, volumes and network, then its key, known_hosts and
/// inventory in the current directory. Returns one line per thing removed; empty when there was
/// no such lab.
pub async fn down(name: &str) -> Result<Vec<String>, LabError> {
    check_name(name)?;
    docker::ping().await?;
    let mut removed = Vec::new();
    let filter = format!("label={}={name}", node::LABEL_LAB);
    for e in node::list(name).await? {
        docker::run(&["rm", "--force", "--volumes", &e.container]).await?;
        removed.push(format!("container `{}`", e.container));
    }
    let volumes = docker::run(&["volume", "ls", "--quiet", "--filter", &filter]).await?;
    for v in volumes.lines().filter(|v| !v.is_empty()) {
        docker::run(&["volume", "rm", "--force", v]).await?;
        removed.push(format!("volume `{v}`"));
    }
    let networks = docker::run(&[
        "network",
        "ls",
        "--quiet",
        "--filter",
        &filter,
        "--format",
        "{{.Name}}",
    ])
    .await?;
    for n in networks.lines().filter(|n| !n.is_empty()) {
        docker::run(&["network", "rm", n]).await?;
        removed.push(format!("network `{n}`"));
    }
    for f in state::remove_files(&LabPaths::new(name))? {
        removed.push(format!("file `{}`", f.display()));
    }
    Ok(removed)
}

/// The containers of lab `name` with their state, ports and addresses; empty when there is no
/// such lab.
pub async fn status(name: &str) -> Result<Vec<NodeStatus>, LabError> {
    check_name(name)?;
    docker::ping().await?;
    let mut out = Vec::new();
    for e in node::list(name).await? {
        let (ssh_port, private_address) = if e.running {
            (
                node::ssh_port(&e.container).await.ok(),
                node::private_address(name, &e.container).await.ok(),
            )
        } else {
            (None, None)
        };
        out.push(NodeStatus {
            node: e.node,
            container: e.container,
            status: e.status,
            ssh_port,
            private_address,
        });
    }
    Ok(out)
}

/// The system `ssh` command that opens a shell (or runs `command`) as root on `node` of lab
/// `name`, with the lab key and strict host-key checking against the lab's known_hosts in the
/// current directory. `node` may be `node1` or the container name `LAB-node1`.
pub async fn ssh_command(
    name: &str,
    node_name: &str,
    command: &[String],
) -> Result<std::process::Command, LabError> {
    check_name(name)?;
    docker::ping().await?;
    let existing = node::list(name).await?;
    if existing.is_empty() {
        return Err(LabError::NotUp { lab: name.into() });
    }
    let Some(found) = existing
        .iter()
        .find(|e| e.node == node_name || e.container == node_name)
    else {
        return Err(LabError::NoSuchNode {
            lab: name.into(),
            node: node_name.into(),
            known: existing
                .iter()
                .map(|e| e.node.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let paths = LabPaths::new(name);
    if !paths.key.exists() || !paths.known_hosts.exists() {
        return Err(LabError::NoKeyHere {
            lab: name.into(),
            path: paths.key,
        });
    }
    let port = node::ssh_port(&found.container).await?;
    let mut cmd = std::process::Command::new("ssh");
    cmd.arg("-i")
        .arg(&paths.key)
        .args(["-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            paths.known_hosts.display()
        ))
        .arg("root@127.0.0.1");
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    Ok(cmd)
}

fn check_name(name: &str) -> Result<(), LabError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LabError::BadName { name: name.into() })
    }
}

fn check_shape(opts: &UpOptions) -> Result<(), LabError> {
    let reason = if opts.nodes == 0 || opts.nodes > 200 {
        format!("--nodes must be between 1 and 200, not {}", opts.nodes)
    } else if opts.managers == 0 || opts.managers > opts.nodes {
        format!(
            "--managers must be between 1 and --nodes ({}), not {}",
            opts.nodes, opts.managers
        )
    } else if opts
        .ssh_port
        .is_some_and(|p| p == 0 || node_ssh_port(p, opts.nodes - 1).is_err())
    {
        format!(
            "--ssh-port must leave room for {} consecutive ports below 65536",
            opts.nodes
        )
    } else {
        return Ok(());
    };
    Err(LabError::BadShape { reason })
}

/// The SSH port of the node at 0-based `index` when the first node's is `base`: ports are
/// consecutive, and one past 65535 is an error rather than an overflow.
fn node_ssh_port(base: u16, index: usize) -> Result<u16, LabError> {
    u16::try_from(index)
        .ok()
        .and_then(|i| base.checked_add(i))
        .ok_or_else(|| LabError::BadShape {
            reason: format!(
                "--ssh-port {base} leaves no port below 65536 for node{}",
                index.saturating_add(1)
            ),
        })
}

#[cfg(test)]
mod tests;
