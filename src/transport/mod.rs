//! Transport: reach a host and run commands on it. Knows nothing of tasks, plans or check mode.
//!
//! Everything minipaas does on a host is a command with optional stdin (files are written by
//! streaming their bytes to a command that renames them into place), so the whole interface is
//! [`Transport::exec`] (and [`Transport::exec_streaming`] for output that must not wait for the
//! end). SSH keeps one connection per host for a run and multiplexes channels over
//! it; the local transport runs `sh -c` on this machine (used by `sql --database-url` and tests).

pub(crate) mod known_hosts;
pub mod local;
pub mod ssh;

use std::path::PathBuf;
use std::time::Duration;

pub use local::LocalTransport;
pub use ssh::SshTransport;

/// What a finished command left behind. `code` is `None` when it died of a signal or the channel
/// closed without an exit status.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// How to treat a host key that is in no known_hosts file. A key that differs from a recorded one
/// is always refused, whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyPolicy {
    Strict,
    /// Record the new key in the first known_hosts file of the target and go on.
    AcceptNew,
}

/// Where and how to connect over SSH.
#[derive(Debug, Clone)]
pub struct SshTarget {
    /// The inventory name of the host, used in every message.
    pub host: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// A private key file; without one, the ssh-agent at `SSH_AUTH_SOCK` is asked.
    pub key: Option<PathBuf>,
    /// known_hosts files to check, in order; the first one receives accepted new keys.
    pub known_hosts: Vec<PathBuf>,
    pub host_key_policy: HostKeyPolicy,
    pub connect_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("host `{host}`: cannot connect to `{address}:{port}`")]
    Connect {
        host: String,
        address: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("host `{host}`: no answer from `{address}:{port}` within {seconds} s")]
    ConnectTimeout {
        host: String,
        address: String,
        port: u16,
        seconds: u64,
    },
    #[error("host `{host}`: unknown host key {fingerprint} for `{address}`; verify it and add it to known_hosts, or pass --accept-new-host-keys")]
    UnknownHostKey {
        host: String,
        address: String,
        fingerprint: String,
    },
    #[error("host `{host}`: the host key of `{address}` has CHANGED (now {fingerprint}, recorded in `{file}` line {line}); refusing to connect")]
    ChangedHostKey {
        host: String,
        address: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("host `{host}`: the host key of `{address}` ({fingerprint}) is marked @revoked in `{file}` line {line}; refusing to connect")]
    RevokedHostKey {
        host: String,
        address: String,
        fingerprint: String,
        file: PathBuf,
        line: usize,
    },
    #[error("host `{host}`: cannot record the host key of `{address}` in `{file}`")]
    RecordHostKey {
        host: String,
        address: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("host `{host}`: cannot read known_hosts file `{file}`")]
    KnownHosts {
        host: String,
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("host `{host}`: cannot load private key `{path}`: {reason}")]
    Key {
        host: String,
        path: PathBuf,
        reason: String,
    },
    #[error("host `{host}`: authentication as `{user}` failed ({method})")]
    Auth {
        host: String,
        user: String,
        method: String,
    },
    #[error("host `{host}`: cannot authenticate with the ssh-agent: {reason}")]
    Agent { host: String, reason: String },
    #[error("host `{host}`: ssh: {reason}")]
    Ssh { host: String, reason: String },
    #[error("host `{host}`: cannot pass on the command's output")]
    Sink {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("host `{host}`: cannot run a local command")]
    Local {
        host: String,
        #[source]
        source: std::io::Error,
    },
}

/// A connected host.
pub enum Transport {
    Local(LocalTransport),
    Ssh(SshTransport),
}

impl Transport {
    /// Runs `command` through the remote user's shell, feeding `stdin` (then EOF) when given, and
    /// waits for it to finish. A non-zero exit is an `Ok` output: deciding what it means is the
    /// caller's job.
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        match self {
            Transport::Local(t) => t.exec(command, stdin).await,
            Transport::Ssh(t) => t.exec(command, stdin).await,
        }
    }

    /// Runs `command` and hands its stdout and stderr to `out` and `err` as they arrive, until
    /// it ends; returns its exit status (`None`: killed by a signal). Stdin stays open until
    /// then (see [`SshTransport::exec_streaming`]). Dropping the future stops the command. A
    /// write error on `out` or `err` (a closed pipe) stops it too and is `Sink`.
    pub async fn exec_streaming(
        &self,
        command: &str,
        out: &mut (dyn std::io::Write + Send),
        err: &mut (dyn std::io::Write + Send),
    ) -> Result<Option<u32>, TransportError> {
        match self {
            Transport::Local(t) => t.exec_streaming(command, out, err).await,
            Transport::Ssh(t) => t.exec_streaming(command, out, err).await,
        }
    }

    /// Closes the connection; idempotent.
    pub async fn close(&self) {
        match self {
            Transport::Local(_) => {}
            Transport::Ssh(t) => t.close().await,
        }
    }
}
