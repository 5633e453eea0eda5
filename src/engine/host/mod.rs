//! One play on one host: prepare tasks, batch their probes, check, apply (or not, in check
//! mode), register results, notify and run handlers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc::UnboundedSender;

use crate::inventory::Host;
use crate::modules::{Context, ModuleError, ModuleKind};
use crate::plan::{Plan, Play, Task};
use crate::source::SourcePath;
use crate::template::{TemplateError, Templates};
use crate::transport::Transport;

use super::pending::Pending;
use super::redact::{mentions_secret, Redactor};
use super::{vars, Event, Mode, Options, Status, TaskError, TaskReport};

mod execute;
mod prepare;

use execute::short;
use prepare::{is_barrier, Prepared, Unit, UnitKind, MAX_BATCH};

/// Parsed template directories, shared by every host.
#[derive(Clone, Default)]
pub struct TemplateCache(Arc<HashMap<Vec<SourcePath>, Arc<Templates>>>);

impl TemplateCache {
    /// Plans already list the project's templates/ last in each task's directories.
    pub fn load(plan: &Plan) -> Result<TemplateCache, TemplateError> {
        let mut map = HashMap::new();
        for play in &plan.plays {
            for t in play.tasks.iter().chain(&play.handlers) {
                if !map.contains_key(&t.template_dirs) {
                    let templates = Templates::load(&t.template_dirs)?;
                    map.insert(t.template_dirs.clone(), Arc::new(templates));
                }
            }
        }
        Ok(TemplateCache(Arc::new(map)))
    }

    fn get(&self, dirs: &[SourcePath]) -> Option<Arc<Templates>> {
        self.0.get(dirs).cloned()
    }
}

pub struct PlayCtx {
    pub play: Play,
    pub opts: Options,
    pub templates: TemplateCache,
    pub groups: Value,
    pub hostvars: Arc<Value>,
    pub peers: Arc<super::peers::Peers>,
    pub events: UnboundedSender<Event>,
}

#[derive(Default)]
pub struct PlayOutcome {
    pub reports: Vec<TaskReport>,
    pub unreachable: Option<String>,
    pub failed: bool,
}

impl PlayOutcome {
    pub fn unreachable(e: String) -> PlayOutcome {
        PlayOutcome {
            unreachable: Some(e),
            ..Default::default()
        }
    }
}

struct HostRun<'a> {
    ctx: &'a PlayCtx,
    host: &'a Host,
    transport: &'a Transport,
    vars: Map<String, Value>,
    redactor: Redactor,
    notified: Vec<String>,
    /// The host's record of handlers notified but not yet run (see [`Pending`]).
    pending: std::sync::Mutex<Pending>,
    out: PlayOutcome,
}

/// Runs one play on one host. `pending` is the host's record of handlers not yet run, read
/// from the host at its first play of the run and carried across plays.
pub async fn run_play(
    ctx: &PlayCtx,
    host: &Host,
    transport: &Transport,
    facts: &mut Map<String, Value>,
    pending: &mut Option<Pending>,
) -> PlayOutcome {
    let record = match pending.take() {
        Some(p) => p,
        None => match Pending::load(transport).await {
            Ok(p) => p,
            Err(e) => return PlayOutcome::unreachable(crate::error::chain(&e)),
        },
    };
    // Handlers a cut-short run notified and never ran: they run now, as if notified again.
    let play = &ctx.play;
    let notified: Vec<String> = record
        .for_play(&play.name)
        .filter(|n| {
            play.handlers
                .iter()
                .any(|h| h.name.0 == *n || h.listen.iter().any(|l| l == n))
        })
        .map(str::to_string)
        .collect();
    let vars = vars::build(
        host,
        &ctx.play,
        &ctx.opts.extra_vars,
        facts,
        &ctx.groups,
        &ctx.hostvars,
    );
    // `vars` includes the extra vars, so secret-named `-e` values are masked too.
    let redactor = Redactor::from_vars(&vars);
    let mut run = HostRun {
        ctx,
        host,
        transport,
        vars,
        redactor,
        notified,
        pending: std::sync::Mutex::new(record),
        out: PlayOutcome::default(),
    };
    let tasks: Vec<&Task> = ctx
        .play
        .tasks
        .iter()
        .filter(|t| tag_selected(t, &ctx.opts))
        .collect();
    run.run_tasks(&tasks, false, facts).await;
    // Handlers run for what changed even when a later task failed; not when the host is gone.
    let mut handlers_failed = false;
    if run.out.unreachable.is_none() && !run.notified.is_empty() {
        let handlers: Vec<&Task> = ctx
            .play
            .handlers
            .iter()
            .filter(|h| {
                run.notified
                    .iter()
                    .any(|n| *n == h.name.0 || h.listen.contains(n))
            })
            .collect();
        let failed_before = run.out.failed;
        run.out.failed = false;
        run.run_tasks(&handlers, true, facts).await;
        handlers_failed = run.out.failed;
        run.out.failed |= failed_before;
    }
    let mut record = std::mem::take(
        &mut *run
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    // The handlers ran (or none was due): the play owes the host nothing any more.
    if ctx.opts.mode == Mode::Apply
        && run.out.unreachable.is_none()
        && !handlers_failed
        && record.clear(&play.name)
    {
        if let Err(e) = record.save(transport).await {
            run.out.failed = true;
            run.out.reports.push(run.report_error(&e));
        }
    }
    *pending = Some(record);
    run.out
}

fn tag_selected(t: &Task, o: &Options) -> bool {
    let has = |set: &[String]| t.tags.iter().any(|x| set.contains(x));
    let included = o.tags.is_empty() || has(&o.tags) || t.tags.iter().any(|x| x == "always");
    included && !has(&o.skip_tags)
}

impl HostRun<'_> {
    /// Records `handlers` as pending on the host before the change that notifies them is
    /// applied: if the run is cut short after the change, the next run still runs them.
    async fn record_pending(&self, handlers: &[String]) -> Result<(), ModuleError> {
        let record = {
            let mut p = self
                .pending
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !p.add(&self.ctx.play.name, handlers) {
                return Ok(());
            }
            p.clone()
        };
        record.save(self.transport).await
    }

    /// Whether `task`'s arguments or its template file use a secret-named variable.
    fn uses_secret_variables(&self, task: &Task) -> bool {
        if mentions_secret(&task.args.to_string()) {
            return true;
        }
        let template = task.args.get("src").and_then(Value::as_str);
        match (task.module, template) {
            (ModuleKind::Template, Some(name)) => self
                .ctx
                .templates
                .get(&task.template_dirs)
                .is_some_and(|t| t.source(name).is_some_and(mentions_secret)),
            _ => false,
        }
    }

    /// A failed report of the engine's own bookkeeping on this host, sent like a task's.
    fn report_error(&self, e: &ModuleError) -> TaskReport {
        let report = TaskReport {
            host: self.host.name.0.clone(),
            play: self.ctx.play.name.clone(),
            task: "clear pending handlers".into(),
            status: Status::Failed,
            changes: Vec::new(),
            diff: None,
            message: None,
            error: Some(TaskError::Module {
                message: self.redactor.redact(&crate::error::chain(e)),
            }),
            at: self.ctx.play.name.clone(),
            handler: true,
            ignored: false,
            duration_ms: 0,
        };
        let _ = self.ctx.events.send(Event::TaskDone(report.clone()));
        report
    }

    /// A module's context on this host, or on the delegate's connection `on`.
    fn context_on<'t>(&'t self, on: Option<&'t Transport>, sudo: bool) -> Context<'t> {
        Context {
            transport: on.unwrap_or(self.transport),
            sudo,
            timeout: self.ctx.opts.task_timeout,
        }
    }

    async fn run_tasks(&mut self, tasks: &[&Task], handler: bool, facts: &mut Map<String, Value>) {
        let mut idx = 0;
        while idx < tasks.len() && !self.out.failed && self.out.unreachable.is_none() {
            // Prepare a window of tasks whose probes can run together.
            let mut window: Vec<Prepared> = Vec::new();
            let mut probes = 0;
            while idx < tasks.len() {
                let t = tasks[idx];
                let p = self.prepare(t);
                probes += p.units.len();
                window.push(p);
                idx += 1;
                if is_barrier(t) || probes >= MAX_BATCH {
                    break;
                }
            }
            let mut pos = 0;
            while pos < window.len() {
                let needs_probe = window[pos]
                    .units
                    .iter()
                    .any(|u| matches!(u.kind, UnitKind::Module { seen: None, .. }));
                if needs_probe {
                    if let Err(e) = self.probe(&mut window[pos..]).await {
                        self.out.unreachable = Some(e);
                        return;
                    }
                }
                let task = window[pos].task;
                let _ = self.ctx.events.send(Event::TaskStart {
                    host: self.host.name.clone(),
                    task: task.name.clone(),
                });
                let units = std::mem::take(&mut window[pos].units);
                let applied = self.run_task(task, units, handler, facts).await;
                if self.out.failed || self.out.unreachable.is_some() {
                    return;
                }
                if applied {
                    // What later tasks saw may no longer hold: probe them again.
                    for p in &mut window[pos + 1..] {
                        for u in &mut p.units {
                            if let UnitKind::Module { seen, .. } = &mut u.kind {
                                *seen = None;
                            }
                        }
                    }
                }
                pos += 1;
            }
        }
    }

    /// Runs one task's units; returns whether anything was applied to the host.
    async fn run_task(
        &mut self,
        task: &Task,
        units: Vec<Unit>,
        handler: bool,
        facts: &mut Map<String, Value>,
    ) -> bool {
        let mut applied_any = false;
        let mut results: Vec<Value> = Vec::new();
        let mut task_failed = false;
        let mut units: std::collections::VecDeque<Unit> = units.into();
        while let Some(unit) = units.pop_front() {
            if matches!(unit.kind, UnitKind::Module { seen: None, .. }) {
                let mut pending = vec![unit];
                pending.extend(units.drain(..));
                if let Err(e) = self.probe_units(pending.iter_mut().collect()).await {
                    self.out.unreachable = Some(e);
                    return applied_any;
                }
                units = pending.into();
                continue;
            }
            let started = Instant::now();
            let r = self.run_unit(task, unit).await;
            if r.applied {
                // A later item may look at what this one changed (same file, same unit).
                for u in units.iter_mut() {
                    if let UnitKind::Module { seen, .. } = &mut u.kind {
                        *seen = None;
                    }
                }
            }
            applied_any |= r.applied;
            if let Some(e) = r.unreachable {
                self.out.unreachable = Some(e);
                return applied_any;
            }
            if r.status == Status::Changed {
                for n in &task.notify {
                    if !self.notified.contains(n) {
                        self.notified.push(n.clone());
                    }
                }
            }
            let failed = r.status == Status::Failed;
            task_failed |= failed && !task.ignore_errors;
            results.push(r.result.clone());
            // What this task registers or sets under a secret name is masked from now on,
            // in this task's own report too.
            if let Some(name) = &task.register {
                self.redactor.add_var(name, &r.result);
            }
            for (k, v) in r.facts {
                self.redactor.add_var(&k, &v);
                self.vars.insert(k.clone(), v.clone());
                facts.insert(k, v);
            }
            let label = match &r.item {
                Some(i) => format!("{} ({})", task.name, short(i)),
                None => task.name.0.clone(),
            };
            let report = TaskReport {
                host: self.host.name.0.clone(),
                play: self.ctx.play.name.clone(),
                task: self.redactor.redact(&label),
                status: r.status,
                // A change names what it runs (a rendered command line): under no_log, only
                // that something changed is told.
                changes: if task.no_log {
                    r.changes
                        .iter()
                        .map(|_| "changed (details hidden: no_log)".to_string())
                        .collect()
                } else {
                    r.changes.iter().map(|c| self.redactor.redact(c)).collect()
                },
                diff: if task.no_log {
                    None
                } else {
                    r.diff.map(|d| self.redactor.redact_output(&d))
                },
                message: r.message.map(|m| {
                    if task.no_log {
                        "output hidden (no_log)".to_string()
                    } else {
                        self.redactor.redact_output(&m)
                    }
                }),
                error: r.error.map(|e| {
                    if task.no_log {
                        TaskError::Hidden
                    } else {
                        e.map_text(|t| self.redactor.redact_output(t))
                    }
                }),
                at: task.at.to_string(),
                handler,
                ignored: failed && task.ignore_errors,
                duration_ms: started.elapsed().as_millis() as u64,
            };
            let _ = self.ctx.events.send(Event::TaskDone(report.clone()));
            self.out.reports.push(report);
        }
        if let Some(name) = &task.register {
            let value = if task.loop_items.is_some() {
                let any = |k: &str| results.iter().any(|r| r.get(k) == Some(&Value::Bool(true)));
                json!({"results": results, "changed": any("changed"), "failed": any("failed"),
                       "skipped": results.iter().all(|r| r.get("skipped") == Some(&Value::Bool(true)))})
            } else {
                results.pop().unwrap_or(Value::Null)
            };
            self.vars.insert(name.clone(), value.clone());
            facts.insert(name.clone(), value);
        }
        if task_failed {
            self.out.failed = true;
        }
        applied_any
    }
}

#[cfg(test)]
mod tests;
