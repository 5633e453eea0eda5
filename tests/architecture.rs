//! The shape of src/, read from its `crate::` paths: dependencies point one way
//! (cli -> commands -> deploy|sql|... -> engine -> plan -> modules -> transport, then the
//! leaves), and no file depends on itself through others. Code under `#[cfg(test)]` is left out:
//! a test may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may use only modules of a higher number. Leaves
/// (inventory, role, swarm, template, source, error) use nothing above them.
const LAYERS: &[(&str, u32)] = &[
    ("cli", 0),
    ("commands", 1),
    ("deploy", 2),
    ("sql", 2),
    ("lab", 2),
    ("certs", 2),
    ("progress", 2),
    ("engine", 3),
    ("plan", 4),
    ("modules", 5),
    ("transport", 6),
    ("inventory", 7),
    ("role", 7),
    ("template", 8),
    ("swarm", 7),
    ("source", 9),
    ("error", 10),
];

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `a::b` for src/a/b.rs and src/a/b/mod.rs; `` for lib.rs and main.rs.
fn module_of(path: &Path) -> String {
    let rel = path.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code without comments (`//` to the end of the line, unless it is part of `://`).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| {
            let mut from = 0;
            while let Some(i) = line[from..].find("//") {
                let at = from + i;
                if at > 0 && line.as_bytes()[at - 1] == b':' {
                    from = at + 2;
                    continue;
                }
                return &line[..at];
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The text without comments and items under `#[cfg(test)]`; the names of modules declared
/// there (`#[cfg(test)] mod fuzz;`), whose files are test code too.
fn without_tests(text: &str) -> (String, Vec<String>) {
    let text = without_comments(text);
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = rest[i + "#[cfg(test)]".len()..].trim_start();
        let item_end = match (after.find('{'), after.find(';')) {
            // `mod name;`, `use ...;`: up to the semicolon.
            (open, Some(semi)) if open.is_none_or(|o| semi < o) => {
                if let Some(name) = after[..semi].strip_prefix("mod ") {
                    test_mods.push(name.trim().to_string());
                }
                semi + 1
            }
            // `mod tests { ... }`, `fn f() { ... }`: up to the matching brace.
            (Some(open), _) => {
                let mut depth = 0;
                let mut end = after.len();
                for (k, c) in after[open..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = open + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            _ => after.len(),
        };
        rest = &after[item_end..];
    }
    out.push_str(rest);
    (out, test_mods)
}

/// Every `crate::a::b::...` path the text names: in `use` trees (`crate::{a, b::{c, d}}`) and
/// inline. Paths, not items: `crate::a::B` gives `a::B`.
fn crate_paths(text: &str) -> BTreeSet<String> {
    fn expand(prefix: &str, tree: &str, out: &mut BTreeSet<String>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let base = tree[..open].trim().trim_end_matches("::");
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let prefix = [prefix, base]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("::");
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&prefix, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&prefix, &inner[start..], out);
        } else if !tree.is_empty() {
            let path = tree.split(" as ").next().unwrap().trim();
            let full = if prefix.is_empty() {
                path.to_string()
            } else if path == "self" {
                prefix.to_string()
            } else {
                format!("{prefix}::{path}")
            };
            out.insert(full);
        }
    }
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        if after.starts_with('{') {
            let end = after.find(';').unwrap_or(after.len());
            expand("", &after[..end], &mut out);
            rest = &after[end..];
        } else {
            let end = after
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(after.len());
            let path = after[..end].trim_end_matches(':');
            if !path.is_empty() {
                out.insert(path.to_string());
            }
            rest = &after[end..];
        }
    }
    out
}

/// module -> the modules its non-test code uses (the deepest module each path names).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut texts = BTreeMap::new();
    let mut test_only = Vec::new();
    for f in &files {
        let (text, test_mods) = without_tests(&std::fs::read_to_string(f).unwrap());
        let m = module_of(f);
        for t in test_mods {
            test_only.push(if m.is_empty() { t } else { format!("{m}::{t}") });
        }
        texts.insert(m, text);
    }
    let is_test = |m: &str| {
        test_only
            .iter()
            .any(|t| m == t || m.starts_with(&format!("{t}::")))
    };
    let modules: BTreeSet<String> = texts.keys().filter(|m| !is_test(m)).cloned().collect();
    let mut graph = BTreeMap::new();
    for (m, text) in &texts {
        if is_test(m) {
            continue;
        }
        let mut deps = BTreeSet::new();
        for path in crate_paths(text) {
            let parts: Vec<&str> = path.split("::").collect();
            let Some(target) = (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|c| modules.contains(c))
            else {
                continue;
            };
            // A module using its own items or its ancestors' (Rust's parent/child idiom).
            let ancestor = m == &target || m.starts_with(&format!("{target}::"));
            if !ancestor && !target.is_empty() {
                deps.insert(target);
            }
        }
        graph.insert(m.clone(), deps);
    }
    graph
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap()
}

#[test]
fn dependencies_point_down_the_layers() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (m, deps) in graph() {
        if m.is_empty() {
            continue; // lib.rs and main.rs: the edge, above every layer
        }
        let from = top(&m);
        let Some(&lf) = layers.get(from) else {
            wrong.push(format!("`{from}` has no layer in LAYERS"));
            continue;
        };
        for d in deps {
            let to = top(&d);
            if to == from {
                continue;
            }
            match layers.get(to) {
                Some(&lt) if lt > lf => {}
                Some(_) => wrong.push(format!("{m} -> {d} (against the layers)")),
                None => wrong.push(format!("`{to}` has no layer in LAYERS")),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let graph = graph();
    // Tarjan's strongly connected components: any with two or more modules is a cycle.
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        next: usize,
        cycles: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.cycles.push(comp);
            }
        }
    }
    let mut s = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        cycles: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    let cycles: Vec<String> = s
        .cycles
        .iter()
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .flat_map(|v| {
                    graph[*v]
                        .iter()
                        .filter(|w| c.contains(&w.as_str()))
                        .map(move |w| format!("{v} -> {w}"))
                })
                .collect();
            edges.join(", ")
        })
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

/// The checker sees what it must: a grouped `use` tree and an inline path.
#[test]
fn crate_paths_reads_use_trees_and_inline_paths() {
    let text = "use crate::{a::{b, c::D}, e};\n/// [`crate::y`]\nfn f() { crate::g::h(); } // crate::x\n#[cfg(test)]\nmod tests { use crate::z; }\n";
    let (text, _) = without_tests(text);
    let paths: Vec<String> = crate_paths(&text).into_iter().collect();
    assert_eq!(paths, ["a::b", "a::c::D", "e", "g::h"]);
}

/// Files a newcomer can read: none in src/ over 600 lines (split by what the parts own).
#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).unwrap().lines().count();
            (n > 600).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}

/// Test helpers live in tests/common: a feature's test module uses no other feature's.
#[test]
fn feature_tests_share_helpers_only_through_common() {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut wrong = Vec::new();
    for entry in std::fs::read_dir(&tests).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // This file reads source as data: its `crate::` strings are examples.
        if !name.ends_with(".rs") || name == "lib.rs" || name == "architecture.rs" {
            continue;
        }
        let (text, _) = without_tests(&std::fs::read_to_string(&path).unwrap());
        for p in crate_paths(&text) {
            if !p.starts_with("common") {
                wrong.push(format!("{name}: crate::{p}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
