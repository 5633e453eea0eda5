//! What a lab needs of this machine's Docker engine and kernel: the inotify limit nodes need,
//! the lab's network, and one node's container started.

use super::{docker, node, LabError};

/// About 5 inotify instances per systemd node were measured (26 nodes fit the default 128);
/// 8 leaves room for the nested engines and the host's own users.
const INOTIFY_PER_NODE: u64 = 8;

const INOTIFY_RAISED: u64 = 1024;

const INOTIFY_FILE: &str = "/proc/sys/fs/inotify/max_user_instances";

/// Raises fs.inotify.max_user_instances when the lab nodes on this engine, `adding` more,
/// would exhaust it. Returns a change line when it raised the limit.
pub(super) async fn ensure_inotify(adding: usize) -> Result<Option<String>, LabError> {
    let running = docker::run(&[
        "ps",
        "--quiet",
        "--filter",
        &format!("label={}", node::LABEL_LAB),
    ])
    .await?
    .lines()
    .filter(|l| !l.is_empty())
    .count();
    let needed = (running + adding) as u64 * INOTIFY_PER_NODE;
    let current = std::fs::read_to_string(INOTIFY_FILE)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let Some(current) = current else {
        // Not Linux's procfs (or hidden): nothing to measure, let the engine speak for itself.
        return Ok(None);
    };
    if current >= needed {
        return Ok(None);
    }
    let target = needed.max(INOTIFY_RAISED);
    std::fs::write(INOTIFY_FILE, target.to_string()).map_err(|source| LabError::Inotify {
        current,
        needed,
        source,
    })?;
    Ok(Some(format!(
        "raised fs.inotify.max_user_instances from {current} to {target}"
    )))
}

/// Creates the lab's network unless it exists; one with that name that is not the lab's is an
/// error. Returns true when it created it.
pub(super) async fn ensure_network(lab: &str) -> Result<bool, LabError> {
    let name = node::network_name(lab);
    let label_format = format!("{{{{index .Labels \"{}\"}}}}", node::LABEL_LAB);
    let owner = |out: docker::Finished| out.success.then(|| out.stdout.trim().to_string());
    if let Some(owner) =
        owner(docker::try_run(&["network", "inspect", "--format", &label_format, &name]).await?)
    {
        return if owner == lab {
            Ok(false)
        } else {
            Err(LabError::Mismatch {
                lab: lab.into(),
                detail: format!("network `{name}` exists and is not this lab's"),
            })
        };
    }
    let created = docker::try_run(&[
        "network",
        "create",
        "--label",
        &format!("{}={lab}", node::LABEL_LAB),
        &name,
    ])
    .await?;
    if created.success {
        return Ok(true);
    }
    // Another `lab up` of the same lab may have created it a moment ago.
    match owner(docker::try_run(&["network", "inspect", "--format", &label_format, &name]).await?) {
        Some(owner) if owner == lab => Ok(false),
        _ => Err(LabError::Docker {
            command: format!("docker network create {name}"),
            stderr: created.stderr,
        }),
    }
}

/// Creates the node's volume and container. A name conflict means another `lab up` of the same
/// lab made it first, which is fine; a failed start is cleaned up so a retry starts clean.
pub(super) async fn start_node(
    lab: &str,
    node_name: &str,
    image: &str,
    ssh_port: Option<u16>,
) -> Result<(), LabError> {
    let volume = node::volume_name(lab, node_name);
    docker::run(&[
        "volume",
        "create",
        "--label",
        &format!("{}={lab}", node::LABEL_LAB),
        &volume,
    ])
    .await?;
    let args = node::run_args(&node::RunSpec {
        lab,
        node: node_name,
        image,
        ssh_port,
    });
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = docker::try_run(&args).await?;
    if ran.success {
        return Ok(());
    }
    let container = node::container_name(lab, node_name);
    if ran.stderr.contains("is already in use") {
        return Ok(());
    }
    // `docker run` leaves a created container behind when the start fails.
    let _ = docker::try_run(&["rm", "--force", &container]).await;
    if let Some(port) = ssh_port {
        if ran.stderr.contains("already allocated") || ran.stderr.contains("address already in use")
        {
            return Err(LabError::PortTaken {
                port,
                node: node_name.into(),
            });
        }
    }
    Err(LabError::Docker {
        command: format!("docker run ... {container}"),
        stderr: ran.stderr,
    })
}
