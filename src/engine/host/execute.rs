//! Running a prepared unit: its module checked and applied (or not, in check mode), or run on
//! the controller (set_fact, assert, fail, debug), with `changed_when`/`failed_when`.

use serde_json::{json, Value};

use crate::modules::{Context, Module, ModuleError, ModuleKind, Seen};
use crate::plan::Task;
use crate::template::{self};

use crate::engine::redact::is_secret_path;
use crate::engine::{Mode, Status, TaskError};

use super::prepare::{Unit, UnitKind};
use super::HostRun;

impl HostRun<'_> {
    pub(super) async fn run_unit(&self, task: &Task, unit: Unit) -> UnitResult {
        let mut r = UnitResult::new(unit.item.clone());
        match unit.kind {
            UnitKind::Skip(reason) => {
                r.status = Status::Skipped;
                r.message = Some(reason);
                r.result = json!({"changed": false, "failed": false, "skipped": true});
            }
            UnitKind::Broken(message) => r.fail(TaskError::Render { message }),
            UnitKind::Local => self.run_local(task, &unit.vars, &mut r),
            UnitKind::Module {
                module,
                sudo,
                seen,
                delegate,
            } => {
                // `run_task` probes every unit before running it.
                let Some(seen) = seen else {
                    r.fail(TaskError::NoAnswer);
                    return r;
                };
                let peer = match self.peer(delegate.as_deref()).await {
                    Ok(p) => p,
                    Err(message) => {
                        r.fail(TaskError::Module { message });
                        return r;
                    }
                };
                let ctx = self.context_on(peer.as_deref(), sudo);
                if let Err(e) = self
                    .run_module(task, &module, &seen, &ctx, &unit.vars, &mut r)
                    .await
                {
                    match (e, &delegate) {
                        (ModuleError::Transport(t), None) => {
                            r.unreachable = Some(crate::error::chain(&t))
                        }
                        (other, Some(d)) => r.fail(TaskError::Module {
                            message: format!("on `{d}`: {}", crate::error::chain(&other)),
                        }),
                        (other, None) => r.fail(TaskError::Module {
                            message: crate::error::chain(&other),
                        }),
                    }
                }
                if let Some(d) = &delegate {
                    for c in &mut r.changes {
                        *c = format!("on {d}: {c}");
                    }
                }
            }
        }
        r
    }

    async fn run_module(
        &self,
        task: &Task,
        module: &Module,
        seen: &Seen,
        ctx: &Context<'_>,
        vars: &Value,
        r: &mut UnitResult,
    ) -> Result<(), ModuleError> {
        let changes = module.check(seen)?;
        r.changes = changes.iter().map(|c| c.to_string()).collect();
        let is_command = matches!(module, Module::Command(_));
        if changes.is_empty() {
            r.status = Status::Ok;
            r.result = json!({"changed": false, "failed": false, "skipped": is_command,
                              "rc": 0, "stdout": "", "stderr": "", "stdout_lines": []});
            return Ok(());
        }
        if self.ctx.opts.diff && !task.no_log {
            if let Some(d) = module.diff(ctx, &changes).await? {
                // A file with a secret value in it, before or after (a rotated token is in
                // the old content only as what the template rendered last time), and a file
                // being removed are named, never shown.
                let hidden = if is_secret_path(&d.path) {
                    Some("content of a secret file not shown")
                } else if self.uses_secret_variables(task) {
                    Some("content rendered from secret variables not shown")
                } else if self.redactor.reveals(&d.before) || self.redactor.reveals(&d.after) {
                    Some("content with secret values not shown")
                } else if d.after.is_empty() && !d.before.is_empty() {
                    Some("the file is removed; its content is not shown")
                } else {
                    None
                };
                r.diff = Some(if let Some(why) = hidden {
                    format!("--- {p}\n+++ {p}\n({why})\n", p = d.path)
                } else {
                    similar::TextDiff::from_lines(&d.before, &d.after)
                        .unified_diff()
                        .header(&d.path, &d.path)
                        .to_string()
                });
            }
        }
        // A command declared read-only (`changed_when: false`) runs in check mode too, so
        // later tasks can use what it printed; so does a module that changes nothing (a wait).
        let read_only =
            module.read_only() || (is_command && task.changed_when == Some(Value::Bool(false)));
        if self.ctx.opts.mode == Mode::Check && !read_only {
            r.status = Status::Changed;
            r.result = json!({"changed": true, "failed": false, "skipped": is_command,
                              "rc": 0, "stdout": "", "stderr": "", "stdout_lines": []});
            return Ok(());
        }
        if !task.notify.is_empty() && !read_only {
            self.record_pending(&task.notify).await?;
        }
        let applied = module.apply(ctx, &changes).await?;
        r.applied = !read_only;
        r.status = Status::Changed;
        r.result = json!({"changed": true, "failed": false, "changes": r.changes});
        if let Some(out) = applied.output {
            let stdout = out.stdout_str();
            let stderr = out.stderr_str();
            let rc = out.code.map(|c| c as i64).unwrap_or(-1);
            let mut result = json!({
                "rc": rc, "stdout": stdout.trim_end(), "stderr": stderr.trim_end(),
                "stdout_lines": stdout.lines().collect::<Vec<_>>(),
                "changed": true, "failed": rc != 0, "skipped": false,
            });
            let mut v = vars.clone();
            if let Value::Object(m) = &mut v {
                m.insert("result".into(), result.clone());
                if let Some(name) = &task.register {
                    m.insert(name.clone(), result.clone());
                }
            }
            let eval = |e: &Value| template::eval_bool(e, &v);
            let failed = match &task.failed_when {
                Some(e) => eval(e)?,
                None => rc != 0,
            };
            let changed = match &task.changed_when {
                Some(e) => eval(e)?,
                None => !module.read_only(),
            };
            result["failed"] = json!(failed);
            result["changed"] = json!(changed);
            r.result = result;
            r.status = if failed {
                Status::Failed
            } else if changed {
                Status::Changed
            } else {
                Status::Ok
            };
            if failed {
                let text = if stderr.trim().is_empty() {
                    &stdout
                } else {
                    &stderr
                };
                r.error = Some(TaskError::Exit {
                    code: rc,
                    output: last_lines(text, 10),
                });
            } else if !changed {
                r.changes.clear();
            }
        }
        Ok(())
    }

    fn run_local(&self, task: &Task, vars: &Value, r: &mut UnitResult) {
        let args = match template::render_value(&task.args, vars) {
            Ok(a) => a,
            Err(e) => {
                return r.fail(TaskError::Render {
                    message: crate::error::chain(&e),
                })
            }
        };
        r.status = Status::Ok;
        r.result = json!({"changed": false, "failed": false});
        match task.module {
            ModuleKind::Debug => {
                r.message = Some(match (args.get("msg"), args.get("var")) {
                    (Some(Value::String(m)), _) => m.clone(),
                    (Some(m), _) => m.to_string(),
                    (None, Some(Value::String(name))) => {
                        format!(
                            "{name} = {}",
                            vars.get(name).cloned().unwrap_or(Value::Null)
                        )
                    }
                    _ => String::new(),
                });
            }
            ModuleKind::Fail => r.fail(TaskError::Plan {
                message: args
                    .get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or("failed as the plan asked")
                    .to_string(),
            }),
            ModuleKind::Assert => {
                let that = match task.args.get("that") {
                    Some(Value::Array(a)) => a.clone(),
                    Some(other) => vec![other.clone()],
                    None => Vec::new(),
                };
                for cond in &that {
                    match template::eval_bool(cond, vars) {
                        Ok(true) => {}
                        Ok(false) => {
                            let msg = args
                                .get("fail_msg")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                                .unwrap_or_else(|| {
                                    format!("assertion `{}` failed", cond.as_str().unwrap_or("?"))
                                });
                            return r.fail(TaskError::Plan { message: msg });
                        }
                        Err(e) => {
                            return r.fail(TaskError::Render {
                                message: crate::error::chain(&e),
                            })
                        }
                    }
                }
            }
            ModuleKind::SetFact => {
                if let Value::Object(m) = args {
                    r.facts = m.into_iter().collect();
                }
            }
            _ => {}
        }
    }
}

pub(super) struct UnitResult {
    pub(super) item: Option<Value>,
    pub(super) status: Status,
    pub(super) changes: Vec<String>,
    pub(super) diff: Option<String>,
    pub(super) message: Option<String>,
    pub(super) error: Option<TaskError>,
    pub(super) result: Value,
    pub(super) facts: Vec<(String, Value)>,
    pub(super) applied: bool,
    pub(super) unreachable: Option<String>,
}

impl UnitResult {
    pub(super) fn new(item: Option<Value>) -> Self {
        UnitResult {
            item,
            status: Status::Ok,
            changes: Vec::new(),
            diff: None,
            message: None,
            error: None,
            result: Value::Null,
            facts: Vec::new(),
            applied: false,
            unreachable: None,
        }
    }

    pub(super) fn fail(&mut self, error: TaskError) {
        self.status = Status::Failed;
        self.error = Some(error);
        self.result = json!({"changed": false, "failed": true});
    }
}

pub(super) fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(60).collect::<String>())
    } else {
        s
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
