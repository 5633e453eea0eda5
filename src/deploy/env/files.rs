//! The env's files on disk: written only when their bytes change, atomically (temp file and
//! rename), and what each write did.

use std::path::{Path, PathBuf};

use crate::deploy::settings::Settings;
use crate::deploy::{yaml_error, DeployError};

use super::{is_name, SETTINGS_FILE};

/// A file an edit created, rewrote or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Absolute.
    pub path: PathBuf,
    pub change: Change,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    Removed,
}

impl Written {
    /// `updated compose.apps.yaml`, the path relative to `dir` when inside it.
    pub fn describe(&self, dir: &Path) -> String {
        let verb = match self.change {
            Change::Created => "created",
            Change::Updated => "updated",
            Change::Removed => "removed",
        };
        let path = self.path.strip_prefix(dir).unwrap_or(&self.path);
        format!("{verb} {}", path.display())
    }
}

pub(super) fn absolute(dir: &Path) -> Result<PathBuf, DeployError> {
    std::path::absolute(dir).map_err(|source| DeployError::Read {
        path: dir.to_path_buf(),
        source,
    })
}

pub(super) fn load_settings(dir: &Path) -> Result<Option<Settings>, DeployError> {
    let path = dir.join(SETTINGS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DeployError::Read { path, source }),
    };
    let settings: Settings =
        serde_yaml::from_str(&text).map_err(|e| yaml_error(path.clone(), e))?;
    if !is_name(&settings.stack) {
        return Err(DeployError::BadStack {
            path,
            name: settings.stack,
        });
    }
    if settings.project.files.is_empty() {
        return Err(DeployError::BadSettings {
            path,
            problem: "`project.files` lists no compose file",
        });
    }
    Ok(Some(settings))
}

/// Writes `content` to `path` unless it holds exactly that already: temp file, then rename.
pub(super) fn write_file(path: &Path, content: &str) -> Result<Option<Written>, DeployError> {
    let change = match std::fs::read(path) {
        Ok(old) if old == content.as_bytes() => return Ok(None),
        Ok(_) => Change::Updated,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Change::Created,
        Err(source) => {
            return Err(DeployError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let werr = |source| DeployError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(werr)?;
    }
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, content).map_err(werr)?;
    std::fs::rename(&tmp, path).map_err(werr)?;
    Ok(Some(Written {
        path: path.to_path_buf(),
        change,
    }))
}

pub(super) fn remove_file(path: &Path) -> Result<Option<Written>, DeployError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Some(Written {
            path: path.to_path_buf(),
            change: Change::Removed,
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DeployError::Write {
            path: path.to_path_buf(),
            source,
        }),
    }
}

pub(super) fn render_settings(settings: &Settings) -> String {
    // Plain structs and strings: serialization cannot fail.
    let body = serde_yaml::to_string(settings).unwrap_or_default();
    format!("# minipaas env settings; `minipaas code init` merges into this file.\n{body}")
}
