//! Authentication: a key file, or the ssh-agent's identities one by one.

use std::path::Path;
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg};
use russh::AgentAuthError;

use crate::transport::{SshTarget, TransportError};

use super::handshake::HostKeyCheck;

pub(super) async fn authenticate_with_key(
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

pub(super) async fn authenticate_with_agent(
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
