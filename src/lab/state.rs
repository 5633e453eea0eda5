//! A lab's files on this machine: its key pair and known_hosts under `.minipaas/lab/NAME/` and
//! its inventory at `inventories/NAME.yaml`, both relative to the directory `lab up` ran in.
//!
//! Writes are atomic (temp file then rename) and skipped when the content is already right, so a
//! second `lab up` can tell that nothing changed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::LabError;

/// Where one lab keeps its files, all relative to the working directory.
#[derive(Debug, Clone)]
pub struct LabPaths {
    /// `.minipaas/lab/NAME`
    pub dir: PathBuf,
    /// `.minipaas/lab/NAME/id_ed25519` (its public half beside it with `.pub`)
    pub key: PathBuf,
    /// `.minipaas/lab/NAME/known_hosts`
    pub known_hosts: PathBuf,
    /// `inventories/NAME.yaml`
    pub inventory: PathBuf,
}

impl LabPaths {
    pub fn new(name: &str) -> LabPaths {
        let dir = Path::new(".minipaas").join("lab").join(name);
        LabPaths {
            key: dir.join("id_ed25519"),
            known_hosts: dir.join("known_hosts"),
            inventory: Path::new("inventories").join(format!("{name}.yaml")),
            dir,
        }
    }

    /// The public half of the lab key.
    pub fn public_key(&self) -> PathBuf {
        self.key.with_extension("pub")
    }
}

/// Makes sure the lab's ed25519 key pair exists (via `ssh-keygen`) and returns the public key
/// line, plus whether it had to be generated. The private key never leaves its file.
pub async fn ensure_key_pair(paths: &LabPaths, lab: &str) -> Result<(String, bool), LabError> {
    let public = paths.public_key();
    let mut generated = false;
    if !paths.key.exists() || !public.exists() {
        create_dir(&paths.dir)?;
        // A half-made pair (one file missing) is replaced whole.
        for f in [&paths.key, &public] {
            remove_if_present(f)?;
        }
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C"])
            .arg(format!("minipaas-lab-{lab}"))
            .arg("-f")
            .arg(&paths.key)
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    LabError::NoSshClient {
                        program: "ssh-keygen".into(),
                    }
                } else {
                    LabError::Spawn {
                        program: "ssh-keygen".into(),
                        source,
                    }
                }
            })?;
        if !out.status.success() {
            return Err(LabError::KeyGen {
                path: paths.key.clone(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        generated = true;
    }
    let line = std::fs::read_to_string(&public).map_err(|source| LabError::File {
        path: public.clone(),
        source,
    })?;
    Ok((line.trim().to_string(), generated))
}

/// Writes `content` to `path` unless it already holds exactly that; returns true when it wrote.
/// The parent directory is created when missing.
pub fn write_if_changed(path: &Path, content: &str) -> Result<bool, LabError> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == content) {
        return Ok(false);
    }
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    let tmp = path.with_extension("tmp");
    let err = |source| LabError::File {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, content).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(true)
}

/// Removes the lab's key pair, known_hosts and inventory; returns the paths that existed.
pub fn remove_files(paths: &LabPaths) -> Result<Vec<PathBuf>, LabError> {
    let mut removed = Vec::new();
    for f in [&paths.inventory, &paths.known_hosts, &paths.key] {
        if remove_if_present(f)? {
            removed.push(f.clone());
        }
    }
    remove_if_present(&paths.public_key())?;
    // Only an empty directory goes: anything else in it is the user's.
    let _ = std::fs::remove_dir(&paths.dir);
    Ok(removed)
}

/// One known_hosts line for a node's published SSH port, from the content of its
/// `ssh_host_ed25519_key.pub` (the comment dropped). `None` when the text is not an ed25519 key.
pub fn known_hosts_line(port: u16, host_key: &str) -> Option<String> {
    let mut fields = host_key.split_whitespace();
    let (algo, key) = (fields.next()?, fields.next()?);
    if algo != "ssh-ed25519" || !key.starts_with("AAAA") {
        return None;
    }
    Some(format!("[127.0.0.1]:{port} {algo} {key}"))
}

fn create_dir(dir: &Path) -> Result<(), LabError> {
    std::fs::create_dir_all(dir).map_err(|source| LabError::File {
        path: dir.to_path_buf(),
        source,
    })
}

fn remove_if_present(path: &Path) -> Result<bool, LabError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(LabError::File {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_lines_use_the_bracketed_port_form_without_comment() {
        assert_eq!(
            known_hosts_line(40001, "ssh-ed25519 AAAAC3Nza root@node1\n").as_deref(),
            Some("[127.0.0.1]:40001 ssh-ed25519 AAAAC3Nza")
        );
        assert_eq!(known_hosts_line(22, "ssh-rsa AAAAB3 x"), None);
        assert_eq!(known_hosts_line(22, "ssh-ed25519"), None);
        assert_eq!(known_hosts_line(22, ""), None);
    }

    #[test]
    fn paths_follow_the_inventory_contract() {
        let p = LabPaths::new("lab");
        assert_eq!(p.key, Path::new(".minipaas/lab/lab/id_ed25519"));
        assert_eq!(
            p.public_key(),
            Path::new(".minipaas/lab/lab/id_ed25519.pub")
        );
        assert_eq!(p.known_hosts, Path::new(".minipaas/lab/lab/known_hosts"));
        assert_eq!(p.inventory, Path::new("inventories/lab.yaml"));
    }

    #[test]
    fn write_if_changed_reports_only_real_changes() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/file");
        assert!(write_if_changed(&f, "a").unwrap());
        assert!(!write_if_changed(&f, "a").unwrap());
        assert!(write_if_changed(&f, "b").unwrap());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "b");
    }
}
