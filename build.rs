//! Builds the list of files built into the binary: everything below `playbooks/` and
//! `templates/` (the node role), so an installed `minipaas` provisions without a checkout.
//!
//! The list is generated rather than written by hand so a new task file or template cannot be
//! forgotten; `rerun-if-changed` on the two directories makes cargo rebuild when a file is
//! added, changed or removed (a directory is scanned whole).

use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut files = Vec::new();
    for dir in ["playbooks", "templates"] {
        println!("cargo:rerun-if-changed={dir}");
        collect(&root, &root.join(dir), &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// Every file below playbooks/ and templates/ at build time: (path, bytes), sorted.\n\
         pub(crate) static FILES: &[(&str, &[u8])] = &[\n",
    );
    for rel in &files {
        let abs = root.join(rel);
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            abs.to_str()
                .expect("paths below the manifest directory are UTF-8")
        ));
    }
    out.push_str("];\n");
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("built_in.rs");
    std::fs::write(dest, out).expect("OUT_DIR is writable");
}

/// Paths relative to `root`, with `/` separators, of the files below `dir`.
fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read `{}`: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a readable directory entry").path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel = rel.to_str().expect("plan and template names are UTF-8");
            out.push(rel.replace('\\', "/"));
        }
    }
}
