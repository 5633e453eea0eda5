//! Plans: Ansible-shaped playbooks (plays of tasks and handlers) read from YAML.
//!
//! Loading resolves `import_playbook` and `import_tasks` statically and checks every key, so a
//! typo or an unknown module is an error naming the file and line before any host is contacted.
//! Values stay unrendered here: templating happens per host in the engine.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::modules::ModuleKind;
use crate::source::SourcePath;

mod serial;

pub use serial::{batches, BatchSize};
use serial::{max_fail_percentage, serial};

/// A task's name as written in the plan (or derived from its module when it has none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskName(pub String);

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where something was written: plan file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: SourcePath,
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file, self.line)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read plan `{path}`")]
    Read {
        path: SourcePath,
        #[source]
        source: std::io::Error,
    },
    #[error("plan `{}` line {}: {message}", .at.file, .at.line)]
    Invalid { at: Location, message: String },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub plays: Vec<Play>,
}

#[derive(Debug, Clone)]
pub struct Play {
    pub name: String,
    /// A host pattern (see `Inventory::select`).
    pub hosts: String,
    pub vars: Map<String, Value>,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub become_: bool,
    /// Open a new connection to each host before this play (Ansible's `meta: reset_connection`
    /// as a play key): proves the host still accepts new connections, e.g. after a firewall
    /// change.
    pub reset_connection: bool,
    /// Batches the play's hosts run in, one after the other (Ansible's `serial`); empty: all
    /// hosts at once. The last size repeats until every host ran.
    pub serial: Vec<BatchSize>,
    /// The run stops after a batch in which more than this percentage of hosts failed.
    /// Without it, the run stops only when a whole batch failed, as in Ansible.
    pub max_fail_percentage: Option<u8>,
    /// Any failed host stops the run once its batch ends.
    pub any_errors_fatal: bool,
    pub at: Location,
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: TaskName,
    pub module: ModuleKind,
    /// The module's arguments, unrendered.
    pub args: Value,
    /// All must hold (a list is an `and`).
    pub when: Vec<Value>,
    pub loop_items: Option<Value>,
    pub loop_var: String,
    pub notify: Vec<String>,
    /// Extra names this handler answers to.
    pub listen: Vec<String>,
    pub tags: Vec<String>,
    pub become_: Option<bool>,
    pub register: Option<String>,
    pub changed_when: Option<Value>,
    pub failed_when: Option<Value>,
    pub ignore_errors: bool,
    /// Run this task's module on that host (a host of the inventory, a template) with this
    /// host's variables, as Ansible's `delegate_to`: a node's drain runs on a manager.
    pub delegate_to: Option<Value>,
    /// Hide this task's output and diff entirely.
    pub no_log: bool,
    pub vars: Map<String, Value>,
    /// Directories where this task's template `src` is looked up, in order.
    pub template_dirs: Vec<SourcePath>,
    /// Where `copy`'s local `src` files are looked up: `files/` beside the plan, then the plan's dir.
    pub file_dirs: Vec<SourcePath>,
    pub at: Location,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlay {
    name: Option<String>,
    hosts: Option<String>,
    #[serde(default)]
    vars: Map<String, Value>,
    #[serde(default)]
    tasks: Vec<Map<String, Value>>,
    #[serde(default)]
    handlers: Vec<Map<String, Value>>,
    #[serde(default, rename = "become")]
    become_: bool,
    #[serde(default)]
    reset_connection: bool,
    serial: Option<Value>,
    max_fail_percentage: Option<Value>,
    #[serde(default)]
    any_errors_fatal: bool,
    /// Accepted for compatibility with Ansible playbooks; minipaas gathers no facts.
    #[allow(dead_code)]
    gather_facts: Option<bool>,
    import_playbook: Option<String>,
}

const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "loop",
    "with_items",
    "loop_control",
    "notify",
    "listen",
    "tags",
    "become",
    "register",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "no_log",
    "vars",
    "check_mode",
    "delegate_to",
];

/// Finds where each task starts by scanning the text in order: serde_yaml keeps no positions
/// for values, and errors at run time must still name the plan line.
struct LineFinder {
    lines: Vec<String>,
    cursor: usize,
}

impl LineFinder {
    fn new(text: &str) -> Self {
        LineFinder {
            lines: text.lines().map(str::to_string).collect(),
            cursor: 0,
        }
    }

    /// The 1-based line of the next sequence item at or after the cursor whose first key is one
    /// of `keys` with `value` (when given).
    fn next_item(&mut self, name: Option<&str>, first_keys: &[&str]) -> usize {
        for i in self.cursor..self.lines.len() {
            let l = self.lines[i].trim_start();
            let Some(item) = l.strip_prefix("- ") else {
                continue;
            };
            let item = item.trim_start();
            let hit = match name {
                Some(n) => item
                    .strip_prefix("name:")
                    .is_some_and(|v| v.trim().trim_matches(|c| c == '"' || c == '\'') == n),
                None => false,
            } || first_keys
                .iter()
                .any(|k| item.starts_with(&format!("{k}:")));
            if hit {
                self.cursor = i + 1;
                return i + 1;
            }
        }
        // A name on a later line of the item (`- when: ...\n  name: x`): search plainly.
        if let Some(n) = name {
            for i in self.cursor..self.lines.len() {
                if self.lines[i].contains(n) {
                    self.cursor = i + 1;
                    return i + 1;
                }
            }
        }
        self.cursor.max(1)
    }
}

impl Plan {
    /// Loads plan files from disk into one list of plays, in order. `project_templates` is the
    /// project's templates/ directory, searched after the plan's own.
    pub fn load(paths: &[PathBuf], project_templates: &Path) -> Result<Plan, PlanError> {
        let paths: Vec<SourcePath> = paths.iter().cloned().map(SourcePath::disk).collect();
        Plan::load_sources(&paths, &[SourcePath::disk(project_templates)])
    }

    /// Loads plan files, on disk or built in, into one list of plays, in order. Imports are read
    /// beside the file that imports them, from the same origin. `templates` are searched, in
    /// order, after the plan's own templates/ (see [`crate::source::Sources`]).
    pub fn load_sources(paths: &[SourcePath], templates: &[SourcePath]) -> Result<Plan, PlanError> {
        let mut plays = Vec::new();
        for p in paths {
            load_file(p, templates, &mut plays, 0)?;
        }
        Ok(Plan { plays })
    }

    /// A plan compiled into the binary apart from the node role (the deploy commands' plans).
    /// `name` stands for its file in locations and errors (`rollout.yaml (built in)`); it uses
    /// no template or local file and imports nothing.
    pub fn from_text(name: &str, text: &str) -> Result<Plan, PlanError> {
        let mut plays = Vec::new();
        load_text(&SourcePath::built_in(name), text, &[], &mut plays, 0)?;
        Ok(Plan { plays })
    }
}

fn read(path: &SourcePath) -> Result<String, PlanError> {
    path.read_to_string().map_err(|source| PlanError::Read {
        path: path.clone(),
        source,
    })
}

fn invalid(file: &SourcePath, line: usize, message: impl Into<String>) -> PlanError {
    PlanError::Invalid {
        at: Location {
            file: file.clone(),
            line,
        },
        message: message.into(),
    }
}

fn yaml_err(file: &SourcePath, e: &serde_yaml::Error) -> PlanError {
    invalid(
        file,
        e.location().map(|l| l.line()).unwrap_or(1),
        e.to_string(),
    )
}

fn load_file(
    path: &SourcePath,
    templates: &[SourcePath],
    plays: &mut Vec<Play>,
    depth: usize,
) -> Result<(), PlanError> {
    if depth > 16 {
        return Err(invalid(
            path,
            1,
            "imports nest deeper than 16 levels (a cycle?)",
        ));
    }
    let text = read(path)?;
    load_text(path, &text, templates, plays, depth)
}

fn load_text(
    path: &SourcePath,
    text: &str,
    templates: &[SourcePath],
    plays: &mut Vec<Play>,
    depth: usize,
) -> Result<(), PlanError> {
    let raw: Vec<RawPlay> = serde_yaml::from_str::<Option<Vec<RawPlay>>>(text)
        .map_err(|e| yaml_err(path, &e))?
        .unwrap_or_default();
    let dir = path.parent();
    let mut finder = LineFinder::new(text);
    for rp in raw {
        let line = finder.next_item(rp.name.as_deref(), &["hosts", "import_playbook"]);
        if let Some(file) = &rp.import_playbook {
            if rp.hosts.is_some() || !rp.tasks.is_empty() {
                return Err(invalid(
                    path,
                    line,
                    "`import_playbook` stands alone in its item",
                ));
            }
            load_file(&dir.join(file), templates, plays, depth + 1)?;
            continue;
        }
        let hosts = rp
            .hosts
            .ok_or_else(|| invalid(path, line, "a play needs `hosts`"))?;
        let ctx = TaskCtx {
            template_dirs: std::iter::once(dir.join("templates"))
                .chain(templates.iter().cloned())
                .collect(),
            file_dirs: vec![dir.join("files"), dir.clone()],
        };
        let tasks = parse_tasks(
            path,
            &mut finder,
            &rp.tasks,
            &ctx,
            &Inherit::default(),
            depth,
        )?;
        let handlers = parse_tasks(
            path,
            &mut finder,
            &rp.handlers,
            &ctx,
            &Inherit::default(),
            depth,
        )?;
        plays.push(Play {
            name: rp.name.unwrap_or_else(|| hosts.clone()),
            hosts,
            vars: rp.vars,
            tasks,
            handlers,
            become_: rp.become_,
            reset_connection: rp.reset_connection,
            serial: serial(rp.serial.as_ref()).map_err(|m| invalid(path, line, m))?,
            max_fail_percentage: max_fail_percentage(rp.max_fail_percentage.as_ref())
                .map_err(|m| invalid(path, line, m))?,
            any_errors_fatal: rp.any_errors_fatal,
            at: Location {
                file: path.clone(),
                line,
            },
        });
    }
    Ok(())
}

struct TaskCtx {
    template_dirs: Vec<SourcePath>,
    file_dirs: Vec<SourcePath>,
}

/// What an `import_tasks` passes down to every task it imports.
#[derive(Default, Clone)]
struct Inherit {
    when: Vec<Value>,
    tags: Vec<String>,
}

fn string_list(
    v: &Value,
    file: &SourcePath,
    line: usize,
    key: &str,
) -> Result<Vec<String>, PlanError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid(
                    file,
                    line,
                    format!("`{key}` items must be strings, found `{other}`"),
                )),
            })
            .collect(),
        other => Err(invalid(
            file,
            line,
            format!("`{key}` must be a string or a list, found `{other}`"),
        )),
    }
}

fn parse_tasks(
    path: &SourcePath,
    finder: &mut LineFinder,
    raw: &[Map<String, Value>],
    ctx: &TaskCtx,
    inherit: &Inherit,
    depth: usize,
) -> Result<Vec<Task>, PlanError> {
    let mut out = Vec::new();
    let module_names: Vec<&str> = ModuleKind::names().to_vec();
    for map in raw {
        let name = map.get("name").and_then(Value::as_str);
        let mut first: Vec<&str> = module_names.clone();
        first.extend(["import_tasks", "include_tasks", "when", "become", "tags"]);
        let line = finder.next_item(name, &first);
        let err = |m: String| invalid(path, line, m);

        let mut when = inherit.when.clone();
        if let Some(w) = map.get("when") {
            match w {
                Value::Array(a) => when.extend(a.iter().cloned()),
                other => when.push(other.clone()),
            }
        }
        let mut tags = inherit.tags.clone();
        if let Some(t) = map.get("tags") {
            tags.extend(string_list(t, path, line, "tags")?);
        }

        if let Some(file) = map.get("import_tasks").or_else(|| map.get("include_tasks")) {
            for k in map.keys() {
                if !matches!(
                    k.as_str(),
                    "import_tasks" | "include_tasks" | "name" | "when" | "tags"
                ) {
                    return Err(err(format!("`{k}` is not allowed beside `import_tasks`")));
                }
            }
            let file = file
                .as_str()
                .ok_or_else(|| err("`import_tasks` takes a file name".into()))?;
            let dir = path.parent();
            let sub = [dir.join(file), dir.join("tasks").join(file)]
                .into_iter()
                .find(|p| p.is_file())
                .ok_or_else(|| {
                    err(format!(
                        "task file `{file}` not found beside the plan or in tasks/"
                    ))
                })?;
            if depth > 16 {
                return Err(err("imports nest deeper than 16 levels (a cycle?)".into()));
            }
            let text = read(&sub)?;
            let raw_sub: Vec<Map<String, Value>> = serde_yaml::from_str::<Option<_>>(&text)
                .map_err(|e| yaml_err(&sub, &e))?
                .unwrap_or_default();
            let mut sub_finder = LineFinder::new(&text);
            let inherit = Inherit { when, tags };
            out.extend(parse_tasks(
                &sub,
                &mut sub_finder,
                &raw_sub,
                ctx,
                &inherit,
                depth + 1,
            )?);
            continue;
        }

        let mut module: Option<(ModuleKind, Value)> = None;
        for (k, v) in map {
            if TASK_KEYS.contains(&k.as_str()) {
                continue;
            }
            let kind = ModuleKind::from_name(k).ok_or_else(|| {
                err(format!(
                    "unknown key or module `{k}` (modules: {})",
                    ModuleKind::names().join(", ")
                ))
            })?;
            if let Some((prev, _)) = &module {
                return Err(err(format!(
                    "a task has one module, found `{}` and `{k}`",
                    prev.name()
                )));
            }
            module = Some((kind, v.clone()));
        }
        let (kind, args) = module.ok_or_else(|| err("the task names no module".into()))?;
        let args = kind.normalize_args(args).map_err(err)?;

        let name = TaskName(match name {
            Some(n) => n.to_string(),
            None => kind.default_task_name(&args),
        });
        let bool_key = |k: &str| -> Result<Option<bool>, PlanError> {
            match map.get(k) {
                None => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(other) => Err(err(format!("`{k}` must be true or false, found `{other}`"))),
            }
        };
        let loop_items = map.get("loop").or_else(|| map.get("with_items")).cloned();
        let loop_var = match map.get("loop_control") {
            None => "item".to_string(),
            Some(Value::Object(o)) => {
                for k in o.keys() {
                    if k != "loop_var" {
                        return Err(err(format!("unknown `loop_control` key `{k}`")));
                    }
                }
                o.get("loop_var")
                    .and_then(Value::as_str)
                    .unwrap_or("item")
                    .to_string()
            }
            Some(other) => {
                return Err(err(format!(
                    "`loop_control` must be a mapping, found `{other}`"
                )))
            }
        };
        let vars = match map.get("vars") {
            None => Map::new(),
            Some(Value::Object(o)) => o.clone(),
            Some(other) => return Err(err(format!("`vars` must be a mapping, found `{other}`"))),
        };
        let opt_list = |k: &str| -> Result<Vec<String>, PlanError> {
            map.get(k)
                .map(|v| string_list(v, path, line, k))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        out.push(Task {
            name,
            module: kind,
            args,
            when,
            loop_items,
            loop_var,
            notify: opt_list("notify")?,
            listen: opt_list("listen")?,
            tags,
            become_: bool_key("become")?,
            register: map
                .get("register")
                .and_then(Value::as_str)
                .map(str::to_string),
            changed_when: map.get("changed_when").cloned(),
            failed_when: map.get("failed_when").cloned(),
            ignore_errors: bool_key("ignore_errors")?.unwrap_or(false),
            no_log: bool_key("no_log")?.unwrap_or(false),
            delegate_to: match map.get("delegate_to") {
                None | Some(Value::Null) => None,
                Some(v @ Value::String(_)) => Some(v.clone()),
                Some(other) => {
                    return Err(err(format!(
                        "`delegate_to` names one host, found `{other}`"
                    )))
                }
            },
            vars,
            template_dirs: ctx.template_dirs.clone(),
            file_dirs: ctx.file_dirs.clone(),
            at: Location {
                file: path.clone(),
                line,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
