//! Preparing a host's tasks: each task's units (one per loop item) built from its rendered
//! arguments, and the probes of a window of tasks batched into one command.

use serde_json::{Map, Value};

use crate::modules::{BuildCtx, Module, ModuleKind, Seen};
use crate::plan::Task;
use crate::template::{self, Templates};

use crate::engine::probe::Batch;

use super::HostRun;

pub(super) enum UnitKind {
    Skip(String),
    Local,
    Module {
        module: Box<Module>,
        sudo: bool,
        seen: Option<Box<Seen>>,
        /// The inventory host the module runs on instead (`delegate_to`).
        delegate: Option<String>,
    },
    Broken(String),
}

pub(super) struct Unit {
    pub(super) item: Option<Value>,
    pub(super) kind: UnitKind,
    /// The variables the unit was prepared with (task vars and loop item included), for
    /// local modules and `changed_when`/`failed_when`; `Null` when nothing reads them again.
    pub(super) vars: Value,
}

pub(super) struct Prepared<'a> {
    pub(super) task: &'a Task,
    pub(super) units: Vec<Unit>,
}

/// A window stops after a task whose results later tasks may read, and after a task that may
/// stop the host (`assert`, `fail`): probes of later tasks (an `unless` is a command) must not
/// run before the guard held, since the guard may be what keeps a bad value out of them.
pub(super) fn is_barrier(t: &Task) -> bool {
    t.register.is_some()
        || matches!(
            t.module,
            ModuleKind::SetFact | ModuleKind::Assert | ModuleKind::Fail
        )
}

/// Probes more than this in one script gain nothing and make one failure cost more.
pub(super) const MAX_BATCH: usize = 64;

impl HostRun<'_> {
    pub(super) fn prepare<'t>(&self, task: &'t Task) -> Prepared<'t> {
        let units = match self.prepare_units(task) {
            Ok(u) => u,
            Err(e) => vec![Unit {
                item: None,
                kind: UnitKind::Broken(e),
                vars: Value::Null,
            }],
        };
        Prepared { task, units }
    }

    fn prepare_units(&self, task: &Task) -> Result<Vec<Unit>, String> {
        let err = |e: &dyn std::error::Error| crate::error::chain(e);
        let base = self.vars.clone();
        // Task vars may use the loop item, and `loop` may use task vars that do not: the list
        // is rendered with the task vars that render without an item, then each item's vars
        // with the item.
        let render_vars = |scope: &Map<String, Value>, lenient: bool| {
            let snapshot = Value::Object(scope.clone());
            let mut out = scope.clone();
            for (k, v) in &task.vars {
                match template::render_value(v, &snapshot) {
                    Ok(r) => {
                        out.insert(k.clone(), r);
                    }
                    Err(_) if lenient => {}
                    Err(e) => return Err(err(&e)),
                }
            }
            Ok(out)
        };
        let items: Vec<Option<Value>> = match &task.loop_items {
            None => vec![None],
            Some(l) => match template::render_value(l, &Value::Object(render_vars(&base, true)?))
                .map_err(|e| err(&e))?
            {
                Value::Array(a) => a.into_iter().map(Some).collect(),
                other => return Err(format!("`loop` must give a list, gave `{other}`")),
            },
        };
        let templates = self.ctx.templates.get(&task.template_dirs);
        let mut units = Vec::new();
        for item in items {
            let mut v = base.clone();
            if let Some(i) = &item {
                v.insert(task.loop_var.clone(), i.clone());
            }
            if !task.vars.is_empty() {
                v = render_vars(&v, false)?;
            }
            let v = Value::Object(v);
            let mut skip = None;
            for w in &task.when {
                if !template::eval_bool(w, &v).map_err(|e| err(&e))? {
                    skip = Some(format!(
                        "condition `{}` is false",
                        w.as_str().unwrap_or("?")
                    ));
                    break;
                }
            }
            let kind = if let Some(reason) = skip {
                UnitKind::Skip(reason)
            } else if task.module.is_local() {
                UnitKind::Local
            } else {
                let args = template::render_value(&task.args, &v).map_err(|e| err(&e))?;
                let empty;
                let templates = match &templates {
                    Some(t) => t.as_ref(),
                    None => {
                        empty = Templates::load(&[]).map_err(|e| err(&e))?;
                        &empty
                    }
                };
                let bctx = BuildCtx {
                    templates,
                    vars: &v,
                    file_dirs: &task.file_dirs,
                };
                let module = Module::build(task.module, &args, &bctx).map_err(|e| err(&e))?;
                let delegate = self.delegate(task, &v)?;
                let user = match &delegate {
                    Some(d) => self.ctx.peers.host(d).map_or("root", |h| h.user.as_str()),
                    None => self.host.user.as_str(),
                };
                UnitKind::Module {
                    module: Box::new(module),
                    sudo: task.become_.unwrap_or(self.ctx.play.become_) && user != "root",
                    seen: None,
                    delegate,
                }
            };
            // Every host keeps its prepared units until they run, and the variables hold
            // `hostvars` of every host: kept only where they are read again, they would
            // otherwise grow memory with the square of the host count.
            let keep =
                task.module.is_local() || task.changed_when.is_some() || task.failed_when.is_some();
            units.push(Unit {
                item,
                kind,
                vars: if keep { v } else { Value::Null },
            });
        }
        Ok(units)
    }

    /// The host `task` is delegated to, rendered with the unit's variables; none when it names
    /// this host.
    fn delegate(&self, task: &Task, vars: &Value) -> Result<Option<String>, String> {
        let Some(d) = &task.delegate_to else {
            return Ok(None);
        };
        let name = match template::render_value(d, vars).map_err(|e| crate::error::chain(&e))? {
            Value::String(s) => s.trim().to_string(),
            other => {
                return Err(format!(
                    "`delegate_to` must give a host name, gave `{other}`"
                ))
            }
        };
        if name == self.host.name.0 {
            return Ok(None);
        }
        if self.ctx.peers.host(&name).is_none() {
            return Err(format!(
                "`delegate_to` gave `{name}`, which is no host of the inventory"
            ));
        }
        Ok(Some(name))
    }

    /// The delegate's connection, opened on first use; none for this host's own.
    pub(super) async fn peer(
        &self,
        delegate: Option<&str>,
    ) -> Result<Option<std::sync::Arc<crate::transport::Transport>>, String> {
        match delegate {
            None => Ok(None),
            Some(d) => self.ctx.peers.get(d).await.map(Some),
        }
    }

    /// Runs the probes of every unit in `window` that has none yet.
    pub(super) async fn probe(&self, window: &mut [Prepared<'_>]) -> Result<(), String> {
        self.probe_units(window.iter_mut().flat_map(|p| p.units.iter_mut()).collect())
            .await
    }

    /// Runs the probes of `units` that have none yet, one script per host and privilege. A
    /// delegate that cannot be reached fails its units, not this host.
    pub(super) async fn probe_units(&self, mut units: Vec<&mut Unit>) -> Result<(), String> {
        let mut keys: Vec<(Option<String>, bool)> = Vec::new();
        for u in &units {
            if let UnitKind::Module {
                sudo,
                seen: None,
                delegate,
                ..
            } = &u.kind
            {
                let key = (delegate.clone(), *sudo);
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        for (delegate, sudo) in keys {
            let mut batch = Batch::new();
            let mut slots: Vec<usize> = Vec::new();
            for (i, u) in units.iter().enumerate() {
                if let UnitKind::Module {
                    module,
                    sudo: s,
                    seen: None,
                    delegate: d,
                } = &u.kind
                {
                    if *s == sudo && *d == delegate {
                        batch.push(module.probe());
                        slots.push(i);
                    }
                }
            }
            let peer = match self.peer(delegate.as_deref()).await {
                Ok(p) => p,
                Err(why) => {
                    for i in slots {
                        units[i].kind = UnitKind::Broken(why.clone());
                    }
                    continue;
                }
            };
            let ctx = self.context_on(peer.as_deref(), sudo);
            let out = ctx
                .run(&batch.script(), None)
                .await
                .map_err(|e| crate::error::chain(&e));
            let out = match (out, &delegate) {
                (Ok(out), _) => out,
                (Err(e), None) => return Err(e),
                (Err(e), Some(d)) => {
                    for i in slots {
                        units[i].kind = UnitKind::Broken(format!("delegate `{d}`: {e}"));
                    }
                    continue;
                }
            };
            let parts = batch.split(&out.stdout_str());
            for (i, seen) in slots.into_iter().zip(parts) {
                let seen = seen.ok_or_else(|| {
                    format!(
                        "the probe script stopped early: {}",
                        self.redactor.redact(out.stderr_str().trim())
                    )
                })?;
                if let UnitKind::Module { seen: s, .. } = &mut units[i].kind {
                    *s = Some(Box::new(seen));
                }
            }
        }
        Ok(())
    }
}
