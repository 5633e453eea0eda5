//! The local Docker engine, reached through the `docker` command line: run one command, get its
//! standard output or a [`LabError`] that names the command and carries the engine's own words.
//!
//! Knows nothing about labs; `node.rs`, `image.rs` and `mod.rs` decide what to ask.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::LabError;

/// How long a single docker command may take before the lab gives up on it. Image pulls and
/// commits of a few hundred megabytes fit well inside.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// What a finished docker command printed, whatever its exit status.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `docker ARGS...` and returns what it printed, success or not. Errors only when the
/// command cannot run at all (no `docker` binary) or hangs.
pub async fn try_run(args: &[&str]) -> Result<Finished, LabError> {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(COMMAND_TIMEOUT, cmd.output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(source)) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(LabError::NoDocker {
                reason: "the `docker` command is not installed".into(),
            })
        }
        Ok(Err(source)) => {
            return Err(LabError::Spawn {
                program: "docker".into(),
                source,
            })
        }
        Err(_) => {
            return Err(LabError::Docker {
                command: shown(args),
                stderr: format!("no answer within {} s", COMMAND_TIMEOUT.as_secs()),
            })
        }
    };
    Ok(Finished {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Runs `docker ARGS...` and returns its standard output, trimmed; a non-zero exit is an error
/// carrying the engine's message.
pub async fn run(args: &[&str]) -> Result<String, LabError> {
    let out = try_run(args).await?;
    if out.success {
        Ok(out.stdout.trim().to_string())
    } else {
        Err(LabError::Docker {
            command: shown(args),
            stderr: out.stderr,
        })
    }
}

/// Fails with [`LabError::NoDocker`] unless an engine answers `docker version`.
pub async fn ping() -> Result<(), LabError> {
    let out = try_run(&["version", "--format", "{{.Server.Version}}"]).await?;
    if out.success && !out.stdout.trim().is_empty() {
        Ok(())
    } else {
        let reason = out
            .stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no server version reported")
            .to_string();
        Err(LabError::NoDocker { reason })
    }
}

/// True when `docker image inspect IMAGE` finds the image locally.
pub async fn image_exists(image: &str) -> Result<bool, LabError> {
    Ok(try_run(&["image", "inspect", "--format", "{{.Id}}", image])
        .await?
        .success)
}

/// The command as the user would type it, for messages. Arguments never carry secrets here.
fn shown(args: &[&str]) -> String {
    let mut s = String::from("docker");
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}
