//! File handling for certificates and keys: reading PEM files with errors that name the file, and
//! writing atomically (a temporary file in the same directory, fsync, rename) so a reader never
//! sees a half-written key or certificate. Knows nothing about X.509.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use x509_parser::pem::Pem;

use super::CertsError;

/// Mode of private key files: the owner alone may read them.
pub const KEY_MODE: u32 = 0o600;
/// Mode of certificate files: public material.
pub const CERT_MODE: u32 = 0o644;
/// Mode of directories minipaas creates for certificates (they hold keys).
const DIR_MODE: u32 = 0o700;

/// Creates `dir` (and its parents) as 0700 when missing; an existing directory is left as it is.
pub fn create_dir(dir: &Path) -> Result<(), CertsError> {
    if dir.is_dir() {
        return Ok(());
    }
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| CertsError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Replaces `path` with `contents` and exactly `mode`, atomically: the file is either the old one
/// or the complete new one, never a mix. The temporary file is created with `mode` already set,
/// so key material is never readable by others, even for an instant.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertsError> {
    let write_err = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed the mode at creation; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        // The rename itself is durable only once the directory entry is on disk.
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: the temporary file may not exist if creating it was what failed.
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(write_err)
}

/// Reads a whole file, naming it in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, CertsError> {
    fs::read(path).map_err(|source| CertsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The PEM blocks in `bytes` (read from `path`); an error when there is none or one is broken.
pub fn pem_blocks(path: &Path, bytes: &[u8]) -> Result<Vec<Pem>, CertsError> {
    let blocks: Vec<Pem> = Pem::iter_from_buffer(bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| CertsError::NotPem {
            path: path.to_path_buf(),
        })?;
    if blocks.is_empty() {
        return Err(CertsError::NotPem {
            path: path.to_path_buf(),
        });
    }
    Ok(blocks)
}

/// True when `label` names a private key block (`PRIVATE KEY`, `EC PRIVATE KEY`, ...).
pub fn is_key_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_atomic_sets_exact_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"first", CERT_MODE).unwrap();
        write_atomic(&path, b"second", KEY_MODE).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, KEY_MODE);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key.pem")]);
    }

    #[test]
    fn write_atomic_into_missing_dir_fails_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("cert.pem");
        let err = write_atomic(&path, b"x", CERT_MODE).unwrap_err();
        assert!(err.to_string().contains("nope/cert.pem"), "{err}");
    }

    #[test]
    fn pem_blocks_rejects_non_pem() {
        let path = Path::new("x.pem");
        assert!(matches!(
            pem_blocks(path, b"hello"),
            Err(CertsError::NotPem { .. })
        ));
        assert!(matches!(
            pem_blocks(
                path,
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"
            ),
            Err(CertsError::NotPem { .. })
        ));
    }
}
