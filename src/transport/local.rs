//! The local transport: `sh -c` on this machine, for targets that are this machine.

use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

    /// Runs `command`, handing its stdout and stderr to `out` and `err` as they arrive; stdin
    /// stays open (and empty) until it ends. Dropping the future kills the command.
    pub async fn exec_streaming(
        &self,
        command: &str,
        out: &mut (dyn std::io::Write + Send),
        err: &mut (dyn std::io::Write + Send),
    ) -> Result<Option<u32>, TransportError> {
        let local = |source| TransportError::Local {
            host: self.host.clone(),
            source,
        };
        let sink = |source| TransportError::Sink {
            host: self.host.clone(),
            source,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(local)?;
        let _stdin = child.stdin.take();
        let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take())
        else {
            // Cannot happen: both were asked for as pipes just above.
            return Err(local(std::io::Error::other("no output pipes")));
        };
        let (mut obuf, mut ebuf) = (vec![0u8; 8192], vec![0u8; 8192]);
        let (mut o_open, mut e_open) = (true, true);
        while o_open || e_open {
            tokio::select! {
                n = stdout.read(&mut obuf), if o_open => {
                    let n = n.map_err(local)?;
                    o_open = n > 0;
                    out.write_all(&obuf[..n]).and_then(|()| out.flush()).map_err(sink)?;
                }
                n = stderr.read(&mut ebuf), if e_open => {
                    let n = n.map_err(local)?;
                    e_open = n > 0;
                    err.write_all(&ebuf[..n]).and_then(|()| err.flush()).map_err(sink)?;
                }
            }
        }
        let status = child.wait().await.map_err(local)?;
        Ok(status.code().map(|c| c as u32))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Remembers what it got and when the first bytes came.
    struct Sink {
        data: Vec<u8>,
        first: Option<Instant>,
    }

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.first.get_or_insert_with(Instant::now);
            self.data.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn streaming_passes_output_on_before_the_end() {
        let t = LocalTransport::new("here");
        let (mut out, mut err) = (
            Sink {
                data: Vec::new(),
                first: None,
            },
            Sink {
                data: Vec::new(),
                first: None,
            },
        );
        let started = Instant::now();
        let code = t
            .exec_streaming(
                "printf early; sleep 1; printf late; printf oops >&2; exit 3",
                &mut out,
                &mut err,
            )
            .await
            .unwrap();
        assert_eq!(code, Some(3));
        assert_eq!(out.data, b"earlylate");
        assert_eq!(err.data, b"oops");
        let first = out.first.unwrap().duration_since(started);
        assert!(first < Duration::from_millis(800), "{first:?}");
        assert!(started.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test]
    async fn streaming_keeps_stdin_open_until_dropped() {
        let t = LocalTransport::new("here");
        let mut out = Vec::new();
        let mut err = Vec::new();
        // `cat` ends only at EOF: still running after a while means stdin stayed open.
        let run = t.exec_streaming("cat; echo eof", &mut out, &mut err);
        let r = tokio::time::timeout(Duration::from_millis(500), run).await;
        assert!(r.is_err(), "stdin was closed");
    }
}
