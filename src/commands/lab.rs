//! `minipaas lab`: command-line arguments and terminal output for the lab; the work is in
//! [`crate::lab`].

use clap::Subcommand;

pub use crate::lab::LabError;
use crate::lab::{self, Release, UpOptions};

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start (or keep) a lab cluster and write its inventory to `inventories/NAME.yaml`.
    Up {
        /// How many nodes (`node1` .. `nodeN`).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// How many of the first nodes go into group `managers`; the rest are `workers`.
        #[arg(long, default_value_t = 1)]
        managers: usize,
        /// The lab's name: containers are `NAME-node1`, ...
        #[arg(long, default_value = "lab")]
        name: String,
        /// Debian release of the nodes.
        #[arg(long, value_enum, default_value_t = Release::Trixie)]
        release: Release,
        /// Node image to run (built from Debian when missing) [default: minipaas-node:RELEASE]
        #[arg(long)]
        image: Option<String>,
        /// Loopback port for the first node's SSH, later nodes consecutive [default: free ports
        /// chosen by Docker]
        #[arg(long)]
        ssh_port: Option<u16>,
    },
    /// Build the application base image `minipaas-base:RELEASE` (Debian minbase with
    /// ca-certificates) from debootstrap, for `docker build --build-arg BASE=...` where no
    /// registry answers. Does nothing when the image exists.
    BaseImage {
        /// Debian release of the image.
        #[arg(long, value_enum, default_value_t = Release::Trixie)]
        release: Release,
    },
    /// Remove a lab's nodes, volumes, network, key and inventory.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// List a lab's nodes.
    Status {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// Open a shell (or run a command) as root on a node, over SSH with strict host-key checking.
    Ssh {
        /// `node1`, `node2`, ...
        node: String,
        #[arg(long, default_value = "lab")]
        name: String,
        /// A command to run instead of a shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

pub async fn run(cmd: LabCommand) -> Result<i32, crate::commands::Error> {
    match cmd {
        LabCommand::Up {
            nodes,
            managers,
            name,
            release,
            image,
            ssh_port,
        } => {
            let opts = UpOptions {
                name,
                nodes,
                managers,
                release,
                image,
                ssh_port,
            };
            let report = lab::up(&opts, &|line| eprintln!("lab `{}`: {line}", opts.name)).await?;
            if report.changes.is_empty() {
                println!(
                    "lab `{}` is up ({} nodes); nothing to do",
                    opts.name,
                    report.nodes.len()
                );
            } else {
                for c in &report.changes {
                    println!("changed: {c}");
                }
                println!("lab `{}` is up ({} nodes)", opts.name, report.nodes.len());
            }
            for n in &report.nodes {
                println!(
                    "  {:<8} ssh root@127.0.0.1 -p {:<5}  private {}",
                    n.name, n.ssh_port, n.private_address
                );
            }
            println!("inventory: {}", report.paths.inventory.display());
            println!("shell:     minipaas lab ssh node1 --name {}", opts.name);
            Ok(0)
        }
        LabCommand::BaseImage { release } => {
            let tag = lab::image::base_tag(release);
            if lab::image::ensure_base(release, &|line| eprintln!("lab: {line}")).await? {
                println!("changed: built image `{tag}`");
            } else {
                println!("image `{tag}` exists; nothing to do");
            }
            Ok(0)
        }
        LabCommand::Down { name } => {
            let removed = lab::down(&name).await?;
            if removed.is_empty() {
                println!("lab `{name}` is not up; nothing to do");
            } else {
                for r in &removed {
                    println!("removed {r}");
                }
            }
            Ok(0)
        }
        LabCommand::Status { name } => {
            let nodes = lab::status(&name).await?;
            if nodes.is_empty() {
                println!("lab `{name}` is not up");
                return Ok(0);
            }
            println!(
                "{:<8} {:<20} {:<6} {:<16} STATUS",
                "NODE", "CONTAINER", "SSH", "PRIVATE"
            );
            for n in nodes {
                println!(
                    "{:<8} {:<20} {:<6} {:<16} {}",
                    n.node,
                    n.container,
                    n.ssh_port.map(|p| p.to_string()).unwrap_or("-".into()),
                    n.private_address.as_deref().unwrap_or("-"),
                    n.status
                );
            }
            Ok(0)
        }
        LabCommand::Ssh {
            node,
            name,
            command,
        } => {
            let mut ssh = lab::ssh_command(&name, &node, &command).await?;
            let status = ssh.status().map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    LabError::NoSshClient {
                        program: "ssh".into(),
                    }
                } else {
                    LabError::Spawn {
                        program: "ssh".into(),
                        source,
                    }
                }
            })?;
            // ssh exits 255 on its own errors and with the remote command's code otherwise.
            Ok(status.code().unwrap_or(1))
        }
    }
}
