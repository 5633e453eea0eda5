//! `minipaas init [DIR]`: the starter files of a cluster directory: `inventory.yaml` with
//! commented example hosts, `group_vars/all.yaml` with every variable of the node role and its
//! default (commented), and with `--playbooks` the built-in playbooks and templates to edit,
//! which `minipaas provision -i DIR/inventory.yaml` then uses instead of the built-in ones.
//!
//! Never overwrites a file: one that exists is left as it is and reported as skipped.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::role;
use crate::source;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to write into (created when missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Also write the built-in playbooks/ and templates/ for editing; provision prefers them
    /// to the built-in ones.
    #[arg(long)]
    pub playbooks: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Role(#[from] role::RoleError),
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// 1: a file could not be written; 2: the built-in role is unreadable (a build problem).
    pub fn exit_code(&self) -> i32 {
        match self {
            InitError::Role(_) => 2,
            InitError::Write { .. } => 1,
        }
    }
}

/// What [`init`] did with each file, relative to the directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub created: Vec<PathBuf>,
    /// Files that existed and were left alone.
    pub skipped: Vec<PathBuf>,
}

/// Writes the starter files into `dir`; a file that exists is skipped, never changed.
pub fn init(dir: &Path, playbooks: bool) -> Result<Written, InitError> {
    let vars = role::variables()?;
    let mut files: Vec<(PathBuf, Vec<u8>)> = vec![
        (
            "inventory.yaml".into(),
            role::STARTER_INVENTORY.as_bytes().to_vec(),
        ),
        (
            "group_vars/all.yaml".into(),
            role::group_vars_all(&vars).into_bytes(),
        ),
    ];
    if playbooks {
        files.extend(
            source::built_in_files()
                .iter()
                .map(|(p, bytes)| (PathBuf::from(p), bytes.to_vec())),
        );
    }
    let mut written = Written::default();
    for (rel, bytes) in files {
        let path = dir.join(&rel);
        let err = |source| InitError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        // create_new: a file that appeared since nothing checked is still never replaced.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(&bytes).map_err(err)?;
                written.created.push(rel);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => written.skipped.push(rel),
            Err(e) => return Err(err(e)),
        }
    }
    Ok(written)
}

pub fn run(args: InitArgs) -> Result<i32, crate::commands::Error> {
    let written = init(&args.dir, args.playbooks)?;
    let shown = |rel: &Path| args.dir.join(rel).display().to_string();
    for rel in &written.created {
        println!("created {}", shown(rel));
    }
    for rel in &written.skipped {
        println!("skipped {} (exists; left as it is)", shown(rel));
    }
    let inventory = args.dir.join("inventory.yaml");
    println!(
        "next: add your servers to {} and run `minipaas provision -i {}`",
        inventory.display(),
        inventory.display()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_starter_files_and_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let w = init(d.path(), false).unwrap();
        assert_eq!(
            w.created,
            [
                PathBuf::from("inventory.yaml"),
                PathBuf::from("group_vars/all.yaml")
            ]
        );
        assert!(w.skipped.is_empty());
        assert!(!d.path().join("playbooks").exists());
        let all = std::fs::read_to_string(d.path().join("group_vars/all.yaml")).unwrap();
        assert!(all.contains("# enable_firewall: true\n"), "{all}");
        // The written inventory parses; it asks for hosts before anything else.
        let e = crate::inventory::Inventory::load(&d.path().join("inventory.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no hosts defined"), "{e}");

        // A file the user changed stays; a second init with --playbooks adds only what is new.
        std::fs::write(d.path().join("inventory.yaml"), "mine").unwrap();
        let w = init(d.path(), true).unwrap();
        assert_eq!(
            w.skipped,
            [
                PathBuf::from("inventory.yaml"),
                PathBuf::from("group_vars/all.yaml")
            ]
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("inventory.yaml")).unwrap(),
            "mine"
        );
        assert!(w.created.contains(&PathBuf::from("playbooks/site.yaml")));
        assert!(w
            .created
            .contains(&PathBuf::from("templates/firewall/nftables.conf")));
        assert_eq!(w.created.len(), source::built_in_files().len());
        let site = std::fs::read(d.path().join("playbooks/site.yaml")).unwrap();
        assert_eq!(
            site,
            source::SourcePath::built_in("playbooks/site.yaml")
                .read()
                .unwrap()
        );

        // The written playbooks are what provision now picks: the ones beside the inventory.
        let s = source::Sources::resolve(&[], None, &d.path().join("inventory.yaml"));
        assert_eq!(
            s.plans,
            [source::SourcePath::disk(
                d.path().join("playbooks/site.yaml")
            )]
        );
        crate::plan::Plan::load_sources(&s.plans, &s.templates).unwrap();

        let w = init(d.path(), true).unwrap();
        assert!(w.created.is_empty(), "{:?}", w.created);
    }
}
