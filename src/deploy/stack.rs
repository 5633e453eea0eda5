//! The stack's files as the manager keeps them, the digest a rollout is known by, and the
//! stack as Docker merges it.

use sha2::{Digest, Sha256};

use super::cluster::{Cluster, OpsError};
use crate::template::shell_quote;

/// Where rollouts keep the stack files on the manager.
pub(super) const STACKS_DIR: &str = "/var/lib/minipaas/stacks";

/// One file of the stack, named as it is kept on the manager.
#[derive(Debug, Clone)]
pub struct StackFile {
    pub name: String,
    pub content: String,
}

/// The digest a rollout of `files` at `version` is known by (on the manager and in history).
pub fn stack_digest(version: &str, files: &[StackFile]) -> String {
    let mut parts: Vec<&[u8]> = vec![version.as_bytes()];
    for f in files {
        parts.push(f.name.as_bytes());
        parts.push(f.content.as_bytes());
    }
    digest(&parts)
}

pub fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// The user's stack files merged as `docker stack deploy` would merge them, with
/// `MINIPAAS_DEPLOY_VERSION` set to `version` (`docker stack config` on the manager).
pub async fn merged_config(
    c: &Cluster,
    files: &[StackFile],
    version: &str,
) -> Result<String, OpsError> {
    let t = c.connect(&c.manager).await?;
    let result = async {
        let host = c.manager.0.clone();
        let run = |cmd: String, stdin: Option<Vec<u8>>| {
            let t = &t;
            let host = host.clone();
            async move {
                let out =
                    t.exec(&cmd, stdin.as_deref())
                        .await
                        .map_err(|source| OpsError::Transport {
                            host: host.clone(),
                            source: Box::new(source),
                        })?;
                if !out.success() {
                    return Err(OpsError::Remote {
                        host,
                        command: cmd.split(" && ").last().unwrap_or_default().to_string(),
                        stderr: out.stderr_str().trim().to_string(),
                    });
                }
                Ok(out.stdout_str())
            }
        };
        let dir = run("mktemp -d".into(), None).await?.trim().to_string();
        let q = shell_quote(&dir);
        let mut merged = Ok(String::new());
        for f in files {
            let path = shell_quote(&format!("{dir}/{}", f.name));
            if let Err(e) = run(
                format!("cat > {path}"),
                Some(f.content.clone().into_bytes()),
            )
            .await
            {
                merged = Err(e);
                break;
            }
        }
        if merged.is_ok() {
            let args: Vec<String> = files
                .iter()
                .map(|f| format!("-c {}", shell_quote(&f.name)))
                .collect();
            merged = run(
                format!(
                    "cd {q} && MINIPAAS_DEPLOY_VERSION={} docker stack config {}",
                    shell_quote(version),
                    args.join(" ")
                ),
                None,
            )
            .await;
        }
        let _ = run(format!("rm -rf {q}"), None).await;
        merged
    }
    .await;
    t.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_separates_parts() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"x"]).len(), 64);
    }
}
