//! The SSH transport over russh: one connection per host for a whole run, with every command on
//! its own session channel multiplexed over it. Owns connecting (TCP, handshake, strict host key
//! check, key file or ssh-agent authentication), the per-host channel limit, and running one
//! command with stdin/stdout/stderr/exit status. Knows nothing of sudo, tasks or retries.

use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::{ChannelMsg, ChannelOpenFailure, Disconnect};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::known_hosts::{self, KnownHosts};
use super::{Output, SshTarget, TransportError};

mod auth;
mod channel;
mod handshake;

use auth::*;
use channel::*;
use handshake::*;

/// Channels open at once on one connection. OpenSSH refuses channels beyond its `MaxSessions`
/// (10 by default); 8 leaves room for channels that are still closing on the server side.
pub const MAX_CHANNELS_PER_HOST: usize = 8;

/// A keepalive after 15 s of silence, the connection declared dead after 3 unanswered ones.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;

/// How long an abandoned command gets to exit on SIGTERM and EOF before its channel is closed.
const ABANDONED_TERM_WAIT: Duration = Duration::from_secs(2);

/// How long `exec` keeps retrying a channel the server refuses for lack of free sessions (a lower
/// `MaxSessions`, or abandoned commands still running), before giving up.
const REFUSED_CHANNEL_RETRY: Duration = Duration::from_secs(60);
const REFUSED_CHANNEL_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Plain curve25519 first: the cheapest exchange OpenSSH offers; the hybrid post-quantum one
/// stays available. The `ext-info-c` and strict-kex markers must stay (server-sig-algs for RSA
/// keys; the Terrapin countermeasure).
const KEX_ORDER: &[russh::kex::Name] = &[
    russh::kex::CURVE25519,
    russh::kex::CURVE25519_PRE_RFC_8731,
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::DH_G16_SHA512,
    russh::kex::DH_G14_SHA256,
    russh::kex::EXTENSION_SUPPORT_AS_CLIENT,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
];

/// AES-GCM first: ring runs it on AES-NI, faster than chacha20-poly1305 for bulk file transfer.
const CIPHER_ORDER: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_128_CTR,
];

/// A connection to one host. `Send + Sync`: many tasks may call [`SshTransport::exec`] on a
/// shared reference at once; at most [`MAX_CHANNELS_PER_HOST`] commands run at a time, the rest
/// wait their turn.
pub struct SshTransport {
    host: String,
    handle: Arc<Handle<HostKeyCheck>>,
    channels: Arc<Semaphore>,
}

impl SshTransport {
    /// Connects, checks the host key against `target.known_hosts` and authenticates with
    /// `target.key` or, without one, the ssh-agent at `SSH_AUTH_SOCK`. TCP connect, handshake and
    /// authentication together must finish within `target.connect_timeout`.
    ///
    /// A host key in no file is refused (`UnknownHostKey`) unless the policy is `AcceptNew`, which
    /// appends it to the first file. A key that differs from a recorded key of the same type is
    /// always refused (`ChangedHostKey`), as is a key marked `@revoked`.
    pub async fn connect(target: SshTarget) -> Result<SshTransport, TransportError> {
        let name = known_hosts::host_name(&target.address, target.port);
        let known = KnownHosts::load(&target.known_hosts).map_err(|(file, source)| {
            TransportError::KnownHosts {
                host: target.host.clone(),
                file,
                source,
            }
        })?;
        let config = config_for(&known.recorded_algorithms(&name));
        let recorded_at = known.first_recorded(&name);
        let check = HostKeyCheck {
            host: target.host.clone(),
            name,
            known,
            policy: target.host_key_policy,
            record_in: target.known_hosts.first().cloned(),
        };
        let connecting = establish(&target, config, check, recorded_at);
        match tokio::time::timeout(target.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::ConnectTimeout {
                host: target.host.clone(),
                address: target.address.clone(),
                port: target.port,
                seconds: target.connect_timeout.as_secs(),
            }),
        }
    }

    /// Runs `command` through the remote user's shell on a fresh channel, streams `stdin` (if any)
    /// then EOF while collecting stdout and stderr, and returns once the server closes the channel.
    /// A non-zero exit is an `Ok`. The channel is ended on every path, including when this
    /// future is dropped before it finishes (see [`ChannelSlot`]).
    pub async fn exec(
        &self,
        command: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        let mut slot = self.open_channel().await?;
        // Cannot fail: only `Drop` and `finished` take the parts.
        let Some((read, write)) = slot.parts.as_mut() else {
            return Err(self.error("channel already closed"));
        };

        // Nothing waits for the server's answer to `exec`: stdin follows at once, and a refusal
        // arrives in order on the channel.
        write
            .exec(true, command)
            .await
            .map_err(|e| self.error(format!("cannot start the command: {e}")))?;
        slot.started = true;
        let eof_sent = AtomicBool::new(false);
        let send = async {
            if let Some(data) = stdin.filter(|d| !d.is_empty()) {
                // Chunked by russh to the packet size and the server's window.
                write.data_bytes(data.to_vec()).await?;
            }
            write.eof().await?;
            eof_sent.store(true, Ordering::Relaxed);
            Ok::<_, russh::Error>(())
        };
        // The output is read while stdin is still being written: a command may answer before it
        // has read all its input, and an unread channel stalls the whole connection. Sending
        // errors are not ours to report: a command may exit without reading its input, and a
        // lost connection shows on the reading side.
        let send_then_wait = async {
            let _ = send.await;
            std::future::pending::<Infallible>().await
        };
        let received = tokio::select! {
            received = receive(read) => received,
            never = send_then_wait => match never {},
        };
        slot.eof_sent = eof_sent.load(Ordering::Relaxed);
        match received {
            Received::Closed(output) => {
                slot.finished();
                Ok(output)
            }
            Received::Refused => {
                slot.started = false;
                Err(self.error("the server refused to run the command"))
            }
            Received::Lost => {
                slot.finished();
                Err(self.error("the connection was lost while a command was running"))
            }
        }
    }

    /// Runs `command` like [`SshTransport::exec`] but hands stdout and stderr to `out` and `err`
    /// chunk by chunk as they arrive (each written whole, then flushed), for commands that run
    /// until stopped (`docker service logs --follow`). Returns the exit status once the server
    /// closes the channel. Stdin stays open and empty until then, so a remote wrapper can learn
    /// that we went away when it reaches EOF. Dropping the future ends the command as `exec`
    /// does (SIGTERM, EOF, close).
    pub async fn exec_streaming(
        &self,
        command: &str,
        out: &mut (dyn Write + Send),
        err: &mut (dyn Write + Send),
    ) -> Result<Option<u32>, TransportError> {
        let mut slot = self.open_channel().await?;
        // Cannot fail: only `Drop` and `finished` take the parts.
        let Some((read, write)) = slot.parts.as_mut() else {
            return Err(self.error("channel already closed"));
        };
        write
            .exec(true, command)
            .await
            .map_err(|e| self.error(format!("cannot start the command: {e}")))?;
        slot.started = true;
        let mut code = None;
        loop {
            let written = match read.wait().await {
                Some(ChannelMsg::Data { data }) => put(out, &data),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => put(err, &data),
                Some(ChannelMsg::ExitStatus { exit_status }) => {
                    code = Some(exit_status);
                    Ok(())
                }
                Some(ChannelMsg::Failure) => {
                    slot.started = false;
                    return Err(self.error("the server refused to run the command"));
                }
                Some(ChannelMsg::Close) => {
                    slot.finished();
                    return Ok(code);
                }
                None => {
                    slot.finished();
                    return Err(self.error("the connection was lost while a command was running"));
                }
                Some(_) => Ok(()),
            };
            // The slot's drop ends the remote command when our side of the output is gone.
            written.map_err(|source| TransportError::Sink {
                host: self.host.clone(),
                source,
            })?;
        }
    }

    /// Closes the connection; commands still waiting for a channel fail. Idempotent.
    pub async fn close(&self) {
        self.channels.close();
        // Already disconnected is as good as disconnected now.
        let _ = self
            .handle
            .disconnect(Disconnect::ByApplication, "", "en")
            .await;
    }

    /// Opens a session channel within the per-host limit. A server out of sessions answers with
    /// an open failure; that is retried with backoff, since sessions of abandoned commands free
    /// up when those exit.
    async fn open_channel(&self) -> Result<ChannelSlot, TransportError> {
        let deadline = Instant::now() + REFUSED_CHANNEL_RETRY;
        let mut backoff = Duration::from_millis(20);
        loop {
            let permit = self
                .channels
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| self.error("the connection is closed"))?;
            let handle = self.handle.clone();
            // A task of its own runs to the end even if `exec` is dropped meanwhile, so a channel
            // the server opens for us always lands in a slot that closes it again.
            let opening = tokio::spawn(async move {
                let channel = handle.channel_open_session().await?;
                Ok::<_, russh::Error>(ChannelSlot {
                    parts: Some(channel.split()),
                    permit: Some(permit),
                    started: false,
                    eof_sent: false,
                })
            });
            match opening.await {
                Ok(Ok(slot)) => return Ok(slot),
                Ok(Err(russh::Error::ChannelOpenFailure(
                    ChannelOpenFailure::ConnectFailed
                    | ChannelOpenFailure::AdministrativelyProhibited
                    | ChannelOpenFailure::ResourceShortage,
                ))) => {
                    if Instant::now() + backoff > deadline {
                        return Err(self.error(format!(
                            "the server refused new channels for {} s: its MaxSessions is too \
                             low or earlier abandoned commands still run",
                            REFUSED_CHANNEL_RETRY.as_secs()
                        )));
                    }
                }
                Ok(Err(e)) => return Err(self.error(format!("cannot open a channel: {e}"))),
                Err(e) => return Err(self.error(format!("cannot open a channel: {e}"))),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(REFUSED_CHANNEL_BACKOFF_MAX);
        }
    }

    fn error(&self, reason: impl Into<String>) -> TransportError {
        TransportError::Ssh {
            host: self.host.clone(),
            reason: reason.into(),
        }
    }
}

/// TCP connect, handshake (with the host key check) and authentication.
async fn establish(
    target: &SshTarget,
    config: Arc<client::Config>,
    check: HostKeyCheck,
    recorded_at: Option<(PathBuf, usize)>,
) -> Result<SshTransport, TransportError> {
    let name = check.name.clone();
    let tcp = TcpStream::connect((target.address.as_str(), target.port))
        .await
        .map_err(|source| TransportError::Connect {
            host: target.host.clone(),
            address: target.address.clone(),
            port: target.port,
            source,
        })?;
    // Small request/response packets dominate; Nagle would add latency to each. Failing to set
    // it only costs speed.
    let _ = tcp.set_nodelay(true);
    let mut handle = client::connect_stream(config, tcp, check)
        .await
        .map_err(|e| match e {
            HandshakeError::Refused(e) => e,
            // Only the recorded key types were offered (`config_for`): a server with none of
            // them has another key than the one on record, which is a changed key.
            HandshakeError::Ssh(russh::Error::NoCommonAlgo {
                kind: russh::AlgorithmKind::Key,
                theirs,
                ..
            }) if recorded_at.is_some() => {
                let (file, line) = recorded_at.clone().unwrap_or_default();
                TransportError::ChangedHostKey {
                    host: target.host.clone(),
                    address: name.clone(),
                    fingerprint: format!("only a key of type `{}`", theirs.join("`, `")),
                    file,
                    line,
                }
            }
            HandshakeError::Ssh(e) => TransportError::Ssh {
                host: target.host.clone(),
                reason: format!(
                    "handshake with `{}:{}` failed: {e}",
                    target.address, target.port
                ),
            },
        })?;
    match &target.key {
        Some(path) => authenticate_with_key(&mut handle, target, path).await?,
        None => authenticate_with_agent(&mut handle, target).await?,
    }
    Ok(SshTransport {
        host: target.host.clone(),
        handle: Arc::new(handle),
        channels: Arc::new(Semaphore::new(MAX_CHANNELS_PER_HOST)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, HashAlg};

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn transport_is_shareable_across_tasks() {
        assert_send_sync::<SshTransport>();
    }

    #[test]
    fn only_recorded_key_types_are_offered() {
        let offered = |recorded: &[Algorithm]| config_for(recorded).preferred.key.to_vec();
        let ecdsa = Algorithm::Ecdsa {
            curve: russh::keys::EcdsaCurve::NistP256,
        };
        assert_eq!(offered(&[])[0], Algorithm::Ed25519);
        assert!(offered(&[]).contains(&ecdsa));
        assert_eq!(offered(std::slice::from_ref(&ecdsa)), vec![ecdsa.clone()]);
        assert_eq!(offered(&[Algorithm::Ed25519]), vec![Algorithm::Ed25519]);
        assert_eq!(
            offered(&[ecdsa.clone(), Algorithm::Ed25519]),
            vec![Algorithm::Ed25519, ecdsa]
        );
        // A recorded RSA key allows its SHA-2 signature variants, and nothing else.
        let rsa = offered(&[Algorithm::Rsa { hash: None }]);
        assert!(!rsa.is_empty());
        assert!(
            rsa.iter().all(|a| matches!(a, Algorithm::Rsa { .. })),
            "{rsa:?}"
        );
        assert_eq!(
            rsa[0],
            Algorithm::Rsa {
                hash: Some(HashAlg::Sha512)
            }
        );
        // A host with nothing on record shares one configuration.
        assert!(Arc::ptr_eq(&config_for(&[]), &config_for(&[])));
    }
}
