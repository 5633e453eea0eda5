//! `minipaas lab`: throwaway clusters of systemd+sshd nodes on the local Docker engine.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Start (or keep) a lab cluster and write its inventory.
    Up {},
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("no Docker engine answers")]
    NoDocker,
}

impl LabError {
    pub fn exit_code(&self) -> i32 {
        1
    }
}

pub async fn run(_cmd: LabCommand) -> Result<i32, crate::Error> {
    Err(LabError::NoDocker.into())
}
