//! The handshake: the algorithms offered (only the recorded host key types when a key is on
//! record) and the strict host key check.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use russh::client;
use russh::keys::{Algorithm, HashAlg, PublicKeyOrCertificate};
use russh::Preferred;

use crate::transport::known_hosts::{self, KnownHosts, Verdict};
use crate::transport::{HostKeyPolicy, TransportError};

use super::{CIPHER_ORDER, KEEPALIVE_INTERVAL, KEEPALIVE_MAX, KEX_ORDER};

/// The shared client configuration for a host with nothing on record, or one whose host key
/// algorithms are only the types recorded for the host. A server that has none of them fails the
/// handshake (its key would be refused as changed anyway): a man in the middle cannot get a
/// key of another type past us by offering only that type.
pub(super) fn config_for(recorded: &[Algorithm]) -> Arc<client::Config> {
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

pub(super) fn config(host_keys: Cow<'static, [Algorithm]>) -> client::Config {
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
pub(super) struct HostKeyCheck {
    pub(super) host: String,
    /// The known_hosts name of the target (`address` or `[address]:port`).
    pub(super) name: String,
    pub(super) known: KnownHosts,
    pub(super) policy: HostKeyPolicy,
    pub(super) record_in: Option<PathBuf>,
}

/// Why the handshake stopped: our refusal, carried out of russh intact, or russh's own error.
#[derive(Debug)]
pub(super) enum HandshakeError {
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
