//! The local transport: `sh -c` on this machine, for targets that are this machine.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Output, TransportError};

#[derive(Debug, Clone)]
pub struct LocalTransport {
    /// The name used in messages (`localhost` unless the inventory says otherwise).
    pub host: String,
}

impl LocalTransport {
    pub fn new(host: impl Into<String>) -> Self {
        LocalTransport { host: host.into() }
    }

    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        let err = |source| TransportError::Local {
            host: self.host.clone(),
            source,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(err)?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A command that exits without reading its input is not an error of ours.
            let _ = pipe.write_all(data).await;
            drop(pipe);
        }
        let out = child.wait_with_output().await.map_err(err)?;
        Ok(Output {
            code: out.status.code().map(|c| c as u32),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}
