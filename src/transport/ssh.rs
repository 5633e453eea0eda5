//! The SSH transport over russh: one connection per host for a whole run, with every command on
//! its own session channel multiplexed over it. Owns connecting (TCP, handshake, strict host key
//! check, key file or ssh-agent authentication), the per-host channel limit, and running one
//! command with stdin/stdout/stderr/exit status. Knows nothing of sudo, tasks or retries.

use std::borrow::Cow;
use std::convert::Infallible;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{
    AgentAuthError, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, ChannelWriteHalf, Disconnect,
    Preferred, Sig,
};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::known_hosts::{self, KnownHosts, Verdict};
use super::{HostKeyPolicy, Output, SshTarget, TransportError};

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

async fn authenticate_with_key(
    handle: &mut Handle<HostKeyCheck>,
    target: &SshTarget,
    path: &Path,
) -> Result<(), TransportError> {
    let key_error = |reason: String| TransportError::Key {
        host: target.host.clone(),
        path: path.to_path_buf(),
        reason,
    };
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| key_error(e.to_string()))?;
    // As OpenSSH does: a private key others can read may already be theirs.
    let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
    if mode & 0o077 != 0 {
        return Err(key_error(format!(
            "its permissions {mode:04o} are too open: a private key must not be readable by \
             group or others (`chmod 600 {}`)",
            path.display()
        )));
    }
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| key_error(e.to_string()))?;
    let encrypted = || {
        key_error(
            "it is protected by a passphrase, which minipaas does not ask for; load it into \
             ssh-agent and leave `key` unset, or use an unencrypted key"
                .into(),
        )
    };
    // PEM keys say so in their header; russh reports the others as `KeyIsEncrypted`.
    if text.contains("ENCRYPTED") {
        return Err(encrypted());
    }
    let key = russh::keys::decode_secret_key(&text, None).map_err(|e| match e {
        russh::keys::Error::KeyIsEncrypted => encrypted(),
        e => key_error(e.to_string()),
    })?;
    let hash = if key.algorithm().is_rsa() {
        rsa_hash(handle).await
    } else {
        None
    };
    let result = handle
        .authenticate_publickey(
            &target.user,
            PrivateKeyWithHashAlg::new(Arc::new(key), hash),
        )
        .await
        .map_err(|e| TransportError::Ssh {
            host: target.host.clone(),
            reason: format!("authentication failed: {e}"),
        })?;
    if result.success() {
        Ok(())
    } else {
        Err(TransportError::Auth {
            host: target.host.clone(),
            user: target.user.clone(),
            method: format!("key `{}`", path.display()),
        })
    }
}

async fn authenticate_with_agent(
    handle: &mut Handle<HostKeyCheck>,
    target: &SshTarget,
) -> Result<(), TransportError> {
    let agent_error = |reason: String| TransportError::Agent {
        host: target.host.clone(),
        reason,
    };
    let mut agent = AgentClient::connect_env().await.map_err(|e| match e {
        russh::keys::Error::EnvVar(_) => {
            agent_error("no `key` is set for the host and SSH_AUTH_SOCK is not set".into())
        }
        e => agent_error(format!("cannot reach it at SSH_AUTH_SOCK: {e}")),
    })?;
    let identities = agent
        .request_identities()
        .await
        .map_err(|e| agent_error(format!("cannot list its keys: {e}")))?;
    let mut rsa: Option<Option<HashAlg>> = None;
    let mut tried = 0;
    for identity in identities {
        // Host-side certificates need a CA setup minipaas does not manage; plain keys only.
        let AgentIdentity::PublicKey { key, .. } = identity else {
            continue;
        };
        let hash = if key.algorithm().is_rsa() {
            match rsa {
                Some(hash) => hash,
                None => *rsa.insert(rsa_hash(handle).await),
            }
        } else {
            None
        };
        tried += 1;
        match handle
            .authenticate_publickey_with(&target.user, key, hash, &mut agent)
            .await
        {
            Ok(result) if result.success() => return Ok(()),
            Ok(_) => {}
            // The agent would not sign with this key (confirmation refused, key removed): the
            // next one may do.
            Err(AgentAuthError::Key(_)) => {}
            Err(AgentAuthError::Send(_)) => {
                return Err(TransportError::Ssh {
                    host: target.host.clone(),
                    reason: "the connection was lost during authentication".into(),
                })
            }
        }
    }
    Err(TransportError::Auth {
        host: target.host.clone(),
        user: target.user.clone(),
        method: format!("ssh-agent, {tried} key(s) tried"),
    })
}

/// rsa-sha2-512 or -256 as the server allows; plain ssh-rsa (SHA-1) only for a server that
/// announces neither.
async fn rsa_hash(handle: &Handle<HostKeyCheck>) -> Option<HashAlg> {
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// The shared client configuration for a host with nothing on record, or one whose host key
/// algorithms are only the types recorded for the host. A server that has none of them fails the
/// handshake (its key would be refused as changed anyway): a man in the middle cannot get a
/// key of another type past us by offering only that type.
fn config_for(recorded: &[Algorithm]) -> Arc<client::Config> {
    static SHARED: OnceLock<Arc<client::Config>> = OnceLock::new();
    let default = Preferred::DEFAULT.key;
    if recorded.is_empty() {
        return SHARED.get_or_init(|| Arc::new(config(default))).clone();
    }
    Arc::new(config(Cow::Owned(recorded_only(&default, recorded))))
}

/// `offered` in its order, less the types not in `recorded` (an RSA key on record allows every
/// RSA signature hash). A recorded type `offered` does not know is left out: russh could not
/// verify it.
fn recorded_only(offered: &[Algorithm], recorded: &[Algorithm]) -> Vec<Algorithm> {
    let is_recorded = |a: &Algorithm| {
        recorded.iter().any(|r| {
            r == a || (matches!(r, Algorithm::Rsa { .. }) && matches!(a, Algorithm::Rsa { .. }))
        })
    };
    offered.iter().filter(|a| is_recorded(a)).cloned().collect()
}

fn config(host_keys: Cow<'static, [Algorithm]>) -> client::Config {
    client::Config {
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        preferred: Preferred {
            kex: Cow::Borrowed(KEX_ORDER),
            cipher: Cow::Borrowed(CIPHER_ORDER),
            key: host_keys,
            ..Preferred::DEFAULT
        },
        ..client::Config::default()
    }
}

/// The russh handler: decides on the server's host key during the handshake.
struct HostKeyCheck {
    host: String,
    /// The known_hosts name of the target (`address` or `[address]:port`).
    name: String,
    known: KnownHosts,
    policy: HostKeyPolicy,
    record_in: Option<PathBuf>,
}

/// Why the handshake stopped: our refusal, carried out of russh intact, or russh's own error.
#[derive(Debug)]
enum HandshakeError {
    Refused(TransportError),
    Ssh(russh::Error),
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> Self {
        HandshakeError::Ssh(e)
    }
}

impl client::Handler for HostKeyCheck {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, HandshakeError> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_key else {
            // Not offered by our configuration, so a server sending one is misbehaving.
            return Err(HandshakeError::Refused(TransportError::Ssh {
                host: self.host.clone(),
                reason: "the server presented a host certificate, which was not asked for".into(),
            }));
        };
        let fingerprint = || key.fingerprint(HashAlg::Sha256).to_string();
        let refused = match self.known.check(&self.name, key) {
            Verdict::Known => return Ok(true),
            Verdict::Changed { file, line } => TransportError::ChangedHostKey {
                host: self.host.clone(),
                address: self.name.clone(),
                fingerprint: fingerprint(),
                file,
                line,
            },
            Verdict::Revoked { file, line } => TransportError::RevokedHostKey {
                host: self.host.clone(),
                address: self.name.clone(),
                fingerprint: fingerprint(),
                file,
                line,
            },
            Verdict::Unknown => match (&self.record_in, self.policy) {
                (Some(file), HostKeyPolicy::AcceptNew) => {
                    // A few hundred bytes appended once per new host: not worth a blocking pool.
                    return match known_hosts::append(file, &self.name, key) {
                        Ok(()) => Ok(true),
                        Err(source) => {
                            Err(HandshakeError::Refused(TransportError::RecordHostKey {
                                host: self.host.clone(),
                                address: self.name.clone(),
                                file: file.clone(),
                                source,
                            }))
                        }
                    };
                }
                _ => TransportError::UnknownHostKey {
                    host: self.host.clone(),
                    address: self.name.clone(),
                    fingerprint: fingerprint(),
                },
            },
        };
        Err(HandshakeError::Refused(refused))
    }
}

/// One chunk of output passed on whole, at once.
fn put(sink: &mut (dyn Write + Send), data: &[u8]) -> std::io::Result<()> {
    sink.write_all(data)?;
    sink.flush()
}

enum Received {
    /// The server closed the channel; the output is complete.
    Closed(Output),
    /// The server would not run the command (its channel stays open until we close it).
    Refused,
    /// The connection ended before the channel closed.
    Lost,
}

async fn receive(read: &mut ChannelReadHalf) -> Received {
    let mut output = Output::default();
    loop {
        match read.wait().await {
            Some(ChannelMsg::Data { data }) => output.stdout.extend_from_slice(&data),
            // 1 is SSH_EXTENDED_DATA_STDERR, the only extended stream defined.
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                output.stderr.extend_from_slice(&data)
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => output.code = Some(exit_status),
            Some(ChannelMsg::Failure) => return Received::Refused,
            Some(ChannelMsg::Close) => return Received::Closed(output),
            None => return Received::Lost,
            Some(_) => {}
        }
    }
}

/// An open channel and the concurrency slot it occupies. Unless [`ChannelSlot::finished`] says the
/// server already closed it, dropping it (error, or the `exec` future dropped by a timeout or
/// cancellation) ends the channel in the background before the slot is handed back.
///
/// OpenSSH keeps a session (and its `MaxSessions` slot) until its command exits, even after the
/// client closed the channel. So an abandoned command first gets SIGTERM (a `signal` request;
/// OpenSSH honours it since 7.9, but not for root logins) and EOF on stdin, and a short while to
/// exit, which the server confirms by closing the channel. Only then is the channel closed from
/// our side, which also closes the command's pipes.
struct ChannelSlot {
    parts: Option<(ChannelReadHalf, ChannelWriteHalf<Msg>)>,
    permit: Option<OwnedSemaphorePermit>,
    /// The server accepted a command on this channel that may still be running.
    started: bool,
    /// Stdin was closed already (sending EOF twice is a protocol error).
    eof_sent: bool,
}

impl ChannelSlot {
    /// The server has closed the channel and russh has answered its close: nothing left to do.
    fn finished(&mut self) {
        self.parts = None;
    }
}

impl Drop for ChannelSlot {
    fn drop(&mut self) {
        let Some((mut read, write)) = self.parts.take() else {
            return;
        };
        let permit = self.permit.take();
        let (started, eof_sent) = (self.started, self.eof_sent);
        // Drop cannot wait; without a runtime (process exit) the connection dies with it anyway.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                abandon(&mut read, &write, started, eof_sent).await;
                drop(permit);
            });
        }
    }
}

/// Ends an abandoned channel. Reading all the while keeps an unread channel from stalling the
/// connection.
async fn abandon(
    read: &mut ChannelReadHalf,
    write: &ChannelWriteHalf<Msg>,
    started: bool,
    eof_sent: bool,
) {
    if started {
        if write.signal(Sig::TERM).await.is_err() || (!eof_sent && write.eof().await.is_err()) {
            // The connection is gone, and the channel with it.
            return;
        }
        let drained = async { while read.wait().await.is_some() {} };
        if tokio::time::timeout(ABANDONED_TERM_WAIT, drained)
            .await
            .is_ok()
        {
            return;
        }
    }
    // russh forgets a channel as soon as it has sent our close, so the server's confirmation
    // never reaches us: the slot is handed back now. A server still holding the session for a
    // command that outlives this refuses the next channel, and `open_channel` retries.
    let _ = write.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

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
