//! The fuzz test of every input file minipaas reads: inventories (YAML with its `group_vars/` and
//! `host_vars/`, and INI), plans, task files, templates, the user's compose files,
//! `compose.apps.yaml`, `minipaas.yaml`, `caddy.json` and known_hosts files; and what a host
//! prints for the batched path probes, which is as untrusted as any file.
//!
//! Each target starts from real files (the repository's inventories, playbooks, templates,
//! examples and fixtures, and envs written by `code init`), copied into a temporary directory.
//! A case mutates one of them (byte flips, deleted, duplicated, swapped and spliced lines,
//! YAML/INI/Tera/JSON tokens, NUL and invalid UTF-8, numbers at the edges of the integer
//! types, deep nesting, alias bombs),
//! writes it in place and loads it through the same function the CLI uses. It asserts that
//! loading never panics, stays fast, and that every error names the file, and the line when the
//! parser reported one. It only reads local files: nothing here opens a connection.
//!
//! Deterministic: case `i` of a target always gets the same input, so a failure reproduces; it
//! prints the target, the seed, the case index and the input. Inputs that found bugs are kept in
//! [`REGRESSIONS`]. `MINIPAAS_FUZZ_SEED` changes the seed and `MINIPAAS_FUZZ_SCALE` multiplies
//! the number of cases, for longer runs by hand.
//!
//! This is a unit test of the library, not an integration test, because some loaders
//! (`caddy.json`'s routes, known_hosts) are crate-private.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::deploy::caddy::Routes;
use crate::deploy::{Env, InitOptions, ObjectKind, Role};
use crate::inventory::Inventory;
use crate::plan::Plan;
use crate::template::Templates;
use crate::transport::known_hosts::KnownHosts;

mod hosts;
mod mutate;

use mutate::{mutate, Rng};

/// The default seed: any fixed value; change it with `MINIPAAS_FUZZ_SEED` to explore.
const SEED: u64 = 0x6d69_6e69_7061_6173;

/// A case slower than this is a failure: an input must not make loading explode.
const SLOW: Duration = Duration::from_secs(3);

/// A load's error, as the user would read it.
struct Failure {
    /// The top-level message.
    display: String,
    /// The message with its sources.
    chain: String,
}

fn fail(e: &dyn std::error::Error) -> Failure {
    Failure {
        display: e.to_string(),
        chain: crate::error::chain(e),
    }
}

/// Loads from the target's directory (first argument) after its file (second, relative) changed.
type Loader = dyn Fn(&Path, &Path) -> Result<(), Failure>;

/// One kind of input: a directory of real files, which of them to mutate, and how to load.
struct Target {
    name: &'static str,
    dir: tempfile::TempDir,
    /// Relative path and original bytes of each file to mutate.
    seeds: Vec<(PathBuf, Vec<u8>)>,
    cases: usize,
    /// Loads what is in `dir` the way the CLI does; `Ok` or the error.
    load: Box<Loader>,
}

fn write(dir: &Path, rel: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Every file below `root`, as paths relative to it, sorted.
fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Copies the repository's `from` directory into `dir/to`; returns the copied files, relative
/// to `dir`, with their bytes.
fn copy_tree(from: &str, dir: &Path, to: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = repo(from);
    files_below(&root)
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            let dest = Path::new(to).join(&rel);
            write(dir, &dest, &bytes);
            (dest, bytes)
        })
        .collect()
}

/// The error must name the file (its name, or its path relative to a template directory), or
/// the file it names that cannot be read (`dir` is the target's directory), and the line the
/// parser reported, if it reported one.
fn check_error(e: &Failure, dir: &Path, file: &Path) -> Result<(), String> {
    let name = file.file_name().unwrap().to_string_lossy();
    let names_a_file = e.display.contains(name.as_ref())
        || (e.display.starts_with("cannot read ")
            && e.display.contains(dir.to_string_lossy().as_ref()));
    if !names_a_file {
        return Err(format!("the error does not name `{name}`"));
    }
    if let Some(line) = reported_line(&e.chain) {
        if !e.display.contains(&format!("line {line}")) {
            return Err(format!(
                "the parser reported line {line}, the error does not say it"
            ));
        }
    }
    Ok(())
}

/// The line a parser put in its message: serde's `at line N column M`, Tera's `--> N:M`.
fn reported_line(chain: &str) -> Option<usize> {
    let digits = |s: &str| -> Option<usize> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    if let Some(i) = chain.find(" at line ") {
        return digits(&chain[i + " at line ".len()..]);
    }
    if let Some(i) = chain.find("--> ") {
        let rest = &chain[i + "--> ".len()..];
        let n = digits(rest)?;
        return rest[n.to_string().len()..].starts_with(':').then_some(n);
    }
    None
}

/// What went wrong with one case.
struct Finding {
    case: String,
    file: PathBuf,
    problem: String,
    input: Vec<u8>,
}

/// Loads `input` as the target's `file`, restores the original, and says what was wrong.
fn run_case(t: &Target, file: &Path, input: &[u8], original: &[u8]) -> Option<String> {
    write(t.dir.path(), file, input);
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| (t.load)(t.dir.path(), file)));
    let took = started.elapsed();
    write(t.dir.path(), file, original);
    let problem = match result {
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Some(format!("panicked: {msg}"))
        }
        Ok(Ok(())) => None,
        Ok(Err(e)) => check_error(&e, t.dir.path(), file)
            .err()
            .map(|p| format!("{p}: {}", e.chain)),
    };
    problem.or_else(|| (took > SLOW).then(|| format!("took {took:?}")))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Runs the target's regression inputs, then its mutated cases; panics listing every finding.
fn run(t: Target) {
    let seed = env_u64("MINIPAAS_FUZZ_SEED").unwrap_or(SEED);
    let cases = t.cases * env_u64("MINIPAAS_FUZZ_SCALE").unwrap_or(1) as usize;
    let mut findings = Vec::new();
    for (i, (target, file, input)) in REGRESSIONS.iter().enumerate() {
        if *target != t.name {
            continue;
        }
        let file = Path::new(file);
        let original = std::fs::read(t.dir.path().join(file)).unwrap_or_default();
        if let Some(problem) = run_case(&t, file, input, &original) {
            findings.push(Finding {
                case: format!("regression {i}"),
                file: file.to_path_buf(),
                problem,
                input: input.to_vec(),
            });
        }
    }
    let all: Vec<&[u8]> = t.seeds.iter().map(|(_, b)| b.as_slice()).collect();
    let started = Instant::now();
    for case in 0..cases {
        // Each case has its own generator: case `i` reproduces alone.
        let mut rng = Rng(seed ^ (case as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        rng.0 ^= t
            .name
            .bytes()
            .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        let (file, original) = rng.pick(&t.seeds);
        let input = mutate(&mut rng, original, &all);
        if let Some(problem) = run_case(&t, file, &input, original) {
            findings.push(Finding {
                case: format!("case {case}"),
                file: file.clone(),
                problem,
                input,
            });
        }
        if findings.len() >= 20 {
            break;
        }
    }
    eprintln!("fuzz {}: {cases} cases in {:?}", t.name, started.elapsed());
    if !findings.is_empty() {
        let report: Vec<String> = findings
            .iter()
            .map(|f| {
                format!(
                    "{} (seed {seed:#x}), file `{}`: {}\n  input: {:?}",
                    f.case,
                    f.file.display(),
                    f.problem,
                    String::from_utf8_lossy(&f.input)
                )
            })
            .collect();
        panic!(
            "fuzz target `{}`: {} finding(s):\n{}",
            t.name,
            findings.len(),
            report.join("\n")
        );
    }
}

/// Inputs that once panicked or gave an error without its file: target, file, bytes.
const REGRESSIONS: &[(&str, &str, &[u8])] = &[
    // A line of just `""` has no host name: indexing its words panicked.
    ("inventory_ini", "local.ini", b"\"\"\n"),
    (
        "inventory_ini",
        "inventory_hosts",
        b"[x]\nm1\n[all:children]\n''\n",
    ),
    // `""` is no word, so the host name was `ansible_port=22`: an error without its line.
    (
        "inventory_ini",
        "local.ini",
        b"[local]\n\"\" ansible_port=22\n",
    ),
    // A bad stack name said `invalid stack name` without naming minipaas.yaml.
    ("settings", "minipaas.yaml", b"version: 0.1.0\nstack: a b\n"),
    // Tera puts the line of a syntax error only in its text (` --> 2:4`).
    ("templates", "0/caddy/Caddyfile", b"ok\n{% if %}\n"),
    // Inputs that must stay cheap: an alias bomb (10^7 strings expanded) and a self-import.
    ("inventory_yaml", "example.yaml", ALIAS_BOMB),
    (
        "plans",
        "playbooks/site.yaml",
        b"- hosts: all\n  tasks: [import_tasks: site.yaml]\n",
    ),
];

const ALIAS_BOMB: &[u8] = b"a: &a [x, x, x, x, x, x, x, x, x, x]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
all: {vars: {x: *g}}
";

const CASES_INVENTORY_YAML: usize = 3000;
const CASES_INVENTORY_INI: usize = 3000;
const CASES_PLANS: usize = 2000;
const CASES_TASK_FILES: usize = 2000;
const CASES_TEMPLATES: usize = 3000;
const CASES_COMPOSE: usize = 2000;
const CASES_SETTINGS: usize = 2000;
const CASES_CADDY: usize = 2000;
const CASES_KNOWN_HOSTS: usize = 2000;
const CASES_PROBE_ANSWERS: usize = 30000;

#[test]
fn at_least_20000_cases_per_run() {
    let total = CASES_INVENTORY_YAML
        + CASES_INVENTORY_INI
        + CASES_PLANS
        + CASES_TASK_FILES
        + CASES_TEMPLATES
        + CASES_COMPOSE
        + CASES_SETTINGS
        + CASES_CADDY
        + CASES_KNOWN_HOSTS
        + CASES_PROBE_ANSWERS;
    assert!(total >= 20_000, "{total}");
}

fn inventory_loader(file: &'static str) -> Box<Loader> {
    Box::new(move |dir, _| {
        Inventory::load(&dir.join(file))
            .map(|_| ())
            .map_err(|e| fail(&e))
    })
}

#[test]
fn fuzz_inventory_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();
    for (name, rel) in [
        ("example.yaml", "inventories/example.yaml"),
        ("vagrant.yaml", "inventories/vagrant.yaml"),
    ] {
        let bytes = std::fs::read(repo(rel)).unwrap();
        write(dir.path(), name, &bytes);
        seeds.push((PathBuf::from(name), bytes));
    }
    let nodes: Vec<crate::lab::Node> = (1..=3)
        .map(|i| crate::lab::Node {
            name: format!("node{i}"),
            container: format!("lab-node{i}"),
            ssh_port: 40000 + i,
            private_address: format!("172.28.0.{}", i + 1),
        })
        .collect();
    let lab = crate::lab::inventory::render("lab", &nodes, 1);
    let extra: [(&str, &str); 4] = [
        ("inv.yaml", &lab),
        ("group_vars/all.yml", "d: from_group_vars\nlist: [1, 2]\n"),
        (
            "group_vars/managers/a.yaml",
            "swarm_node_labels: {zone: a}\n",
        ),
        ("host_vars/node1.yaml", "a: node1\nenable_firewall: false\n"),
    ];
    for (rel, text) in extra {
        write(dir.path(), rel, text);
        seeds.push((PathBuf::from(rel), text.as_bytes().to_vec()));
    }
    // Each case loads every inventory: a vars file is read through the inventories beside it.
    let load: Box<Loader> = Box::new(|dir, _| {
        for f in ["example.yaml", "vagrant.yaml", "inv.yaml"] {
            Inventory::load(&dir.join(f)).map_err(|e| fail(&e))?;
        }
        Ok(())
    });
    run(Target {
        name: "inventory_yaml",
        dir,
        seeds,
        cases: CASES_INVENTORY_YAML,
        load,
    });
}

#[test]
fn fuzz_inventory_ini() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = "# the original role's inventory\n[managers]\nmanager1 ansible_host=1.2.3.4 ansible_user=root ansible_port=2200\n\n\
                 [workers]\nworker1 ansible_host=1.2.3.5 ansible_ssh_private_key_file=~/.ssh/id enable_firewall=false\n\
                 worker2 ansible_host=\"1.2.3.6\" 'ansible_connection'=ssh\n; a comment\n\
                 [all:vars]\nenable_syslog=true\nmonitoring_telegram_chat_id=\"12 34\"\nminipaas_extra_ports=[8080, \"53/udp\"]\n\
                 [workers:vars]\nansible_ssh_port=22\n[swarm:children]\nmanagers\nworkers\n";
    let local = "[local]\nlocalhost ansible_connection=local\n[local:vars]\nx='a b' # trailing\n";
    write(dir.path(), "inventory_hosts", hosts);
    write(dir.path(), "local.ini", local);
    run(Target {
        name: "inventory_ini",
        seeds: vec![
            (PathBuf::from("inventory_hosts"), hosts.as_bytes().to_vec()),
            (PathBuf::from("local.ini"), local.as_bytes().to_vec()),
        ],
        dir,
        cases: CASES_INVENTORY_INI,
        load: Box::new(|dir, file| {
            inventory_loader("inventory_hosts")(dir, file)?;
            inventory_loader("local.ini")(dir, file)
        }),
    });
}

/// `playbooks/` and the provision fixture; mutating the task files (`tasks/`) when `name` is
/// `task_files`, the plays otherwise.
fn plans(name: &'static str, cases: usize) -> Target {
    let dir = tempfile::tempdir().unwrap();
    let mut files = copy_tree("playbooks", dir.path(), "playbooks");
    files.extend(copy_tree("tests/fixtures/provision", dir.path(), "fixture"));
    let seeds = files
        .into_iter()
        .filter(|(p, _)| {
            let s = p.to_string_lossy();
            s.ends_with(".yaml") && (s.contains("/tasks/") == (name == "task_files"))
        })
        .collect();
    // The plan that reads the changed file; a task file through a play that imports only it
    // (site.yaml reads all thirteen, which costs five times as much).
    let load: Box<Loader> = Box::new(|dir, file| {
        let plan = if file.starts_with("fixture") {
            dir.join("fixture/every-module.yaml")
        } else if let Ok(task_file) = file.strip_prefix("playbooks/tasks") {
            let import = format!(
                "- hosts: all\n  tasks:\n    - import_tasks: {}\n",
                task_file.display()
            );
            write(dir, "playbooks/one_task_file.yaml", import)
        } else {
            dir.join("playbooks/site.yaml")
        };
        Plan::load(&[plan], &dir.join("templates"))
            .map(|_| ())
            .map_err(|e| fail(&e))
    });
    Target {
        name,
        dir,
        seeds,
        cases,
        load,
    }
}

#[test]
fn fuzz_plans() {
    run(plans("plans", CASES_PLANS));
}

#[test]
fn fuzz_task_files() {
    run(plans("task_files", CASES_TASK_FILES));
}

#[test]
fn fuzz_templates() {
    // Each template in a directory of its own (`N/`), so that a case loads only the file it
    // changed (a whole directory per case is slow), under its name relative to that directory
    // as the engine names it.
    let dir = tempfile::tempdir().unwrap();
    let mut seeds = Vec::new();
    for from in ["templates", "tests/fixtures/provision/templates"] {
        let root = repo(from);
        for rel in files_below(&root) {
            let bytes = std::fs::read(root.join(&rel)).unwrap();
            let file = Path::new(&seeds.len().to_string()).join(rel);
            write(dir.path(), &file, &bytes);
            seeds.push((file, bytes));
        }
    }
    run(Target {
        name: "templates",
        dir,
        seeds,
        cases: CASES_TEMPLATES,
        load: Box::new(|dir, file| {
            let root = dir.join(file.components().next().unwrap());
            Templates::load(&[root.into()])
                .map(|_| ())
                .map_err(|e| fail(&e))
        }),
    });
}

/// An env as `code init`, `route`, `worker`, `job`, `cron` and `secret` leave it, around the
/// example app's compose file.
fn env_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let compose = std::fs::read(repo("examples/app/compose.yaml")).unwrap();
    write(dir.path(), "compose.yaml", &compose);
    write(
        dir.path(),
        "compose.override.yaml",
        "services:\n  worker:\n    deploy:\n      mode: replicated\n    build: ./w\nnetworks:\n  extra: {}\n",
    );
    let opts = InitOptions {
        files: vec!["compose.yaml".into(), "compose.override.yaml".into()],
        domain: Some("example.com".into()),
        ..InitOptions::default()
    };
    crate::deploy::init(dir.path(), &opts).unwrap();
    let mut env = Env::load(dir.path()).unwrap();
    env.route("https://app.example.com", "web", 8000).unwrap();
    env.route("/api", "web", 8000).unwrap();
    env.route("http://plain.example.com/x", "web", 8000)
        .unwrap();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    env.set_role(&s(&["worker"]), &Role::Worker).unwrap();
    env.set_role(&s(&["migrate"]), &Role::Job).unwrap();
    env.set_role(
        &s(&["cleanup"]),
        &Role::Cron {
            schedule: "0 3 * * *".into(),
        },
    )
    .unwrap();
    env.set_object_ref(
        ObjectKind::Secret,
        "app_secret",
        "app_secret.1",
        &s(&["web"]),
    )
    .unwrap();
    env.set_object_ref(
        ObjectKind::Config,
        "app_conf",
        "app_conf.1",
        &s(&["web", "worker"]),
    )
    .unwrap();
    dir
}

/// Loads the env as the deploy commands do: settings, compose.apps.yaml, the user's compose
/// files (services, builds with their interpolation, jobs) and caddy.json.
fn load_env(dir: &Path) -> Result<(), Failure> {
    let env = Env::load(dir).map_err(|e| fail(&e))?;
    env.services().map_err(|e| fail(&e))?;
    env.jobs().map_err(|e| fail(&e))?;
    env.builds().map_err(|e| fail(&e))?;
    Routes::load(&env.caddy_json_path()).map_err(|e| fail(&e))?;
    Ok(())
}

fn env_target(name: &'static str, files: &[&str], cases: usize) -> Target {
    let dir = env_dir();
    let seeds = files
        .iter()
        .map(|f| (PathBuf::from(f), std::fs::read(dir.path().join(f)).unwrap()))
        .collect();
    Target {
        name,
        dir,
        seeds,
        cases,
        load: Box::new(|dir, _| load_env(dir)),
    }
}

#[test]
fn fuzz_compose_files() {
    run(env_target(
        "compose",
        &["compose.yaml", "compose.override.yaml", "compose.apps.yaml"],
        CASES_COMPOSE,
    ));
}

#[test]
fn fuzz_settings() {
    run(env_target("settings", &["minipaas.yaml"], CASES_SETTINGS));
}

#[test]
fn fuzz_caddy_json() {
    let mut t = env_target("caddy", &["caddy.json"], CASES_CADDY);
    t.load = Box::new(|dir, _| {
        Routes::load(&dir.join("caddy.json"))
            .map(|_| ())
            .map_err(|e| fail(&e))
    });
    run(t);
}
