//! Where plan and template files come from: a directory on disk, or the node role built into
//! the binary (every file below `playbooks/` and `templates/` when it was built, listed by
//! build.rs), and the order in which a run looks for them.
//!
//! Owns reading, listing and naming those files, so that plans and templates resolve imports
//! and names the same way whatever their origin, and an error names a built-in file as
//! `playbooks/site.yaml (built in)`. Knows nothing of what the files mean; never writes.

use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

include!(concat!(env!("OUT_DIR"), "/built_in.rs"));

/// Where a file lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Disk,
    /// In the binary, under its path relative to the repository root.
    BuiltIn,
}

/// A file or directory of plans or templates, on disk or built in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePath {
    origin: Origin,
    path: PathBuf,
}

impl SourcePath {
    pub fn disk(path: impl Into<PathBuf>) -> SourcePath {
        SourcePath {
            origin: Origin::Disk,
            path: path.into(),
        }
    }

    /// `path` relative to the repository root, as `playbooks/site.yaml`.
    pub fn built_in(path: impl AsRef<Path>) -> SourcePath {
        SourcePath {
            origin: Origin::BuiltIn,
            path: normalize(path.as_ref()),
        }
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding this file (`.` on disk, the root when built in, for a bare name).
    pub fn parent(&self) -> SourcePath {
        let parent = self.path.parent().unwrap_or(Path::new(""));
        match self.origin {
            Origin::Disk if parent.as_os_str().is_empty() => SourcePath::disk("."),
            Origin::Disk => SourcePath::disk(parent),
            Origin::BuiltIn => SourcePath::built_in(parent),
        }
    }

    /// `rel` below this directory, in the same origin (an absolute `rel` on disk is itself).
    pub fn join(&self, rel: impl AsRef<Path>) -> SourcePath {
        match self.origin {
            Origin::Disk => SourcePath::disk(self.path.join(rel)),
            Origin::BuiltIn => SourcePath::built_in(self.path.join(rel)),
        }
    }

    pub fn is_file(&self) -> bool {
        match self.origin {
            Origin::Disk => self.path.is_file(),
            Origin::BuiltIn => built_in_bytes(&self.path).is_some(),
        }
    }

    pub fn is_dir(&self) -> bool {
        match self.origin {
            Origin::Disk => self.path.is_dir(),
            Origin::BuiltIn => !built_in_below(&self.path).is_empty(),
        }
    }

    pub fn read(&self) -> io::Result<Vec<u8>> {
        match self.origin {
            Origin::Disk => std::fs::read(&self.path),
            Origin::BuiltIn => built_in_bytes(&self.path)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not built in")),
        }
    }

    pub fn read_to_string(&self) -> io::Result<String> {
        String::from_utf8(self.read()?).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Every file below this directory, as (its name relative to the directory with `/`
    /// separators, its path), sorted by name.
    pub fn files_below(&self) -> io::Result<Vec<(String, SourcePath)>> {
        let mut out = Vec::new();
        match self.origin {
            Origin::Disk => collect(&self.path, &self.path, &mut out)?,
            Origin::BuiltIn => {
                for (rel, _) in built_in_below(&self.path) {
                    out.push((rel.to_string(), self.join(rel)));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

impl From<PathBuf> for SourcePath {
    fn from(path: PathBuf) -> SourcePath {
        SourcePath::disk(path)
    }
}

impl fmt::Display for SourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.origin {
            Origin::Disk => write!(f, "{}", self.path.display()),
            Origin::BuiltIn => write!(f, "{} (built in)", self.path.display()),
        }
    }
}

/// Every built-in file: (path relative to the repository root, bytes), sorted by path.
pub fn built_in_files() -> &'static [(&'static str, &'static [u8])] {
    FILES
}

fn built_in_bytes(path: &Path) -> Option<&'static [u8]> {
    let path = path.to_str()?;
    FILES.iter().find(|(p, _)| *p == path).map(|(_, b)| *b)
}

/// The built-in files below directory `dir`, with their names relative to it.
fn built_in_below(dir: &Path) -> Vec<(&'static str, &'static [u8])> {
    let Some(dir) = dir.to_str() else {
        return Vec::new();
    };
    FILES
        .iter()
        .filter_map(|(p, b)| {
            let rel = if dir.is_empty() {
                Some(*p)
            } else {
                p.strip_prefix(dir).and_then(|r| r.strip_prefix('/'))
            };
            rel.map(|r| (r, *b))
        })
        .collect()
}

/// `a/./b/../c` as `a/c`, with `/` separators: built-in names are plain relative paths.
fn normalize(path: &Path) -> PathBuf {
    let mut parts: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                if parts.pop().is_none() {
                    // Above the root: a name no built-in file has, so it is never found.
                    parts.push("..".into());
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => parts.push(String::new()),
        }
    }
    PathBuf::from(parts.join("/"))
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, SourcePath)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push((
                rel.to_string_lossy().replace('\\', "/"),
                SourcePath::disk(&path),
            ));
        }
    }
    Ok(())
}

/// The plans and template directories of a run, in the order they are looked in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Run in order.
    pub plans: Vec<SourcePath>,
    /// Searched after a plan's own `templates/`; for a name found in several, the first wins.
    pub templates: Vec<SourcePath>,
}

/// The plan run when none is named.
pub const SITE_PLAN: &str = "playbooks/site.yaml";

impl Sources {
    /// The documented order. Plans: the paths given on the command line; else
    /// `playbooks/site.yaml` beside the inventory when it exists (its imports are then read from
    /// that directory); else the built-in one. Templates: `explicit_templates` (`--templates`)
    /// when given, then `templates/` beside the inventory, then the built-in ones, each name
    /// from the first that has it.
    pub fn resolve(
        plans: &[PathBuf],
        explicit_templates: Option<&Path>,
        inventory: &Path,
    ) -> Sources {
        let beside = SourcePath::disk(inventory).parent();
        let plans = if !plans.is_empty() {
            plans.iter().cloned().map(SourcePath::disk).collect()
        } else {
            let own = beside.join(SITE_PLAN);
            if own.is_file() {
                vec![own]
            } else {
                vec![SourcePath::built_in(SITE_PLAN)]
            }
        };
        let mut templates: Vec<SourcePath> = explicit_templates
            .map(SourcePath::disk)
            .into_iter()
            .collect();
        templates.push(beside.join("templates"));
        templates.push(SourcePath::built_in("templates"));
        Sources { plans, templates }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_role_is_complete_and_named_as_built_in() {
        let site = SourcePath::built_in(SITE_PLAN);
        assert!(site.is_file());
        assert_eq!(site.to_string(), "playbooks/site.yaml (built in)");
        let text = site.read_to_string().unwrap();
        assert!(text.contains("import_tasks: defaults.yaml"), "{text}");
        // Every file of the checkout is built in, byte for byte.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["playbooks", "templates"] {
            let on_disk = SourcePath::disk(root.join(dir)).files_below().unwrap();
            let built = SourcePath::built_in(dir).files_below().unwrap();
            let names =
                |v: &[(String, SourcePath)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
            assert_eq!(names(&on_disk), names(&built), "{dir}");
            for ((_, d), (_, b)) in on_disk.iter().zip(&built) {
                assert_eq!(d.read().unwrap(), b.read().unwrap(), "{b}");
            }
        }
    }

    #[test]
    fn built_in_paths_join_and_climb_like_directories() {
        let tasks = SourcePath::built_in("playbooks").join("tasks/./firewall.yaml");
        assert_eq!(tasks.path(), Path::new("playbooks/tasks/firewall.yaml"));
        assert!(tasks.is_file());
        assert_eq!(tasks.parent().parent(), SourcePath::built_in("playbooks"));
        assert!(SourcePath::built_in("playbooks/tasks/../site.yaml").is_file());
        assert!(!SourcePath::built_in("../playbooks/site.yaml").is_file());
        assert!(SourcePath::built_in("templates/firewall").is_dir());
        assert!(!SourcePath::built_in("templates/fire").is_dir());
        assert!(!SourcePath::built_in("playbooks/nope.yaml").is_file());
        let e = SourcePath::built_in("playbooks/nope.yaml")
            .read()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            SourcePath::disk("site.yaml").parent(),
            SourcePath::disk(".")
        );
    }

    /// The override order: an explicit plan, then the inventory's own playbooks/, then the
    /// built-in one; templates from --templates, then beside the inventory, then built in.
    #[test]
    fn override_order() {
        let d = tempfile::tempdir().unwrap();
        let inv = d.path().join("inventory.yaml");
        let built_in_site = SourcePath::built_in(SITE_PLAN);
        let beside_templates = SourcePath::disk(d.path().join("templates"));
        let built_in_templates = SourcePath::built_in("templates");

        let s = Sources::resolve(&[], None, &inv);
        assert_eq!(s.plans, std::slice::from_ref(&built_in_site));
        assert_eq!(
            s.templates,
            [beside_templates.clone(), built_in_templates.clone()]
        );

        std::fs::create_dir_all(d.path().join("playbooks")).unwrap();
        let s = Sources::resolve(&[], None, &inv);
        assert_eq!(s.plans, [built_in_site], "a playbooks/ without site.yaml");
        std::fs::write(d.path().join(SITE_PLAN), "[]").unwrap();
        let s = Sources::resolve(&[], None, &inv);
        assert_eq!(s.plans, [SourcePath::disk(d.path().join(SITE_PLAN))]);

        let mine = PathBuf::from("elsewhere/mine.yaml");
        let s = Sources::resolve(std::slice::from_ref(&mine), Some(Path::new("tpl")), &inv);
        assert_eq!(s.plans, [SourcePath::disk(&mine)]);
        assert_eq!(
            s.templates,
            [
                SourcePath::disk("tpl"),
                beside_templates,
                built_in_templates
            ]
        );

        // An inventory named without a directory: its directory is the current one.
        let s = Sources::resolve(&[], None, Path::new("inventory.yaml"));
        assert_eq!(s.templates[0], SourcePath::disk("./templates"));
    }
}
