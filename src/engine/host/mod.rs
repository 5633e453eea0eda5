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
mod tests {
    use std::path::PathBuf;

    use crate::engine::{run, Options};
    use crate::inventory::Inventory;
    use crate::plan::Plan;

    /// Several loop items editing one file each see the file as the previous item left it, so
    /// one run converges and the next changes nothing.
    #[tokio::test]
    async fn loop_items_on_one_file_converge_in_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("limits.conf");
        let inv = dir.path().join("inventory.yaml");
        std::fs::write(
            &inv,
            "all: {connection: local}\ngroups:\n  g:\n    hosts:\n      here: {}\n",
        )
        .unwrap();
        let plan = dir.path().join("plan.yaml");
        std::fs::write(
            &plan,
            format!(
                "- hosts: all\n  tasks:\n    - name: lines\n      lineinfile: {{path: {}, line: \"{{{{ item }}}}\", create: true}}\n      loop: [a=1, b=2, c=3]\n",
                target.display()
            ),
        )
        .unwrap();
        let inventory = Inventory::load(&inv).unwrap();
        let plan = Plan::load(&[plan], &PathBuf::from("templates")).unwrap();
        let changed = |r: &crate::engine::Recap| r.changed();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let first = run(&inventory, &plan, &Options::default(), tx.clone())
            .await
            .unwrap();
        assert_eq!(changed(&first), 3);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "a=1\nb=2\nc=3\n");
        let second = run(&inventory, &plan, &Options::default(), tx)
            .await
            .unwrap();
        assert_eq!(changed(&second), 0);
    }

    fn local_inventory(dir: &std::path::Path, hosts: &str) -> Inventory {
        let inv = dir.join("inventory.yaml");
        std::fs::write(
            &inv,
            format!("all: {{connection: local}}\ngroups:\n{hosts}"),
        )
        .unwrap();
        Inventory::load(&inv).unwrap()
    }

    async fn run_plan(
        inventory: &Inventory,
        plan: &std::path::Path,
        mode: crate::engine::Mode,
    ) -> crate::engine::Recap {
        let plan = Plan::load(&[plan.to_path_buf()], &PathBuf::from("templates")).unwrap();
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = Options {
            mode,
            ..Options::default()
        };
        run(inventory, &plan, &opts, tx).await.unwrap()
    }

    /// A later task's `unless` is a command: it must not run in the probe script of an earlier
    /// task before an `assert` between them held.
    #[tokio::test]
    async fn no_probe_of_a_later_task_runs_before_an_assert_fails() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("probed");
        let inventory = local_inventory(dir.path(), "  g:\n    hosts:\n      here: {}\n");
        let plan = dir.path().join("plan.yaml");
        std::fs::write(
            &plan,
            format!(
                "- hosts: all\n  tasks:\n    - name: before\n      command: {{cmd: 'true', unless: 'false'}}\n\
                 \x20   - name: guard\n      assert: {{that: 1 == 2, fail_msg: guarded}}\n\
                 \x20   - name: after\n      command: {{cmd: 'true', unless: 'touch {}'}}\n",
                marker.display()
            ),
        )
        .unwrap();
        for mode in [crate::engine::Mode::Check, crate::engine::Mode::Apply] {
            let recap = run_plan(&inventory, &plan, mode).await;
            assert!(!recap.success());
            assert!(!marker.exists(), "the probe of `after` ran in {mode:?}");
        }
    }

    /// The real playbooks/tasks/swarm_labels.yaml on a main manager, with a worker that printed
    /// a shell injection as its Swarm node id: the main manager fails naming that host, in check
    /// mode and in apply mode, and runs nothing of it.
    #[tokio::test]
    async fn swarm_labels_refuses_a_node_id_that_is_not_a_swarm_id() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let inventory = local_inventory(
            dir.path(),
            &format!(
                "  managers:\n    hosts:\n      m1: {{vars: {{printed: ''}}}}\n\
                 \x20 workers:\n    hosts:\n      w1:\n        vars:\n          swarm_node_labels: {{zone: a}}\n          printed: \"abc$(touch {m})`touch {m}`;touch {m}\"\n",
                m = marker.display()
            ),
        );
        let labels =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("playbooks/tasks/swarm_labels.yaml");
        let plan = dir.path().join("plan.yaml");
        std::fs::write(
            &plan,
            format!(
                "- hosts: all\n  tasks:\n    - name: read this node's Swarm id\n      command: printf '%s\\n' {{{{ printed | quote }}}}\n      changed_when: false\n      register: swarm_node_id\n\
                 \x20   - set_fact: {{swarm_node_labels: \"{{{{ swarm_node_labels }}}}\"}}\n      when: swarm_node_labels is defined\n\
                 - hosts: all\n  tasks:\n    - import_tasks: {}\n",
                labels.display()
            ),
        )
        .unwrap();
        for mode in [crate::engine::Mode::Check, crate::engine::Mode::Apply] {
            let recap = run_plan(&inventory, &plan, mode).await;
            assert!(
                !marker.exists(),
                "the main manager ran the node id in {mode:?}"
            );
            let failed: Vec<_> = recap
                .tasks
                .iter()
                .filter(|t| t.status == crate::engine::Status::Failed)
                .collect();
            assert_eq!(failed.len(), 1, "{:#?}", recap.tasks);
            assert_eq!(failed[0].host, "m1");
            let msg = failed[0]
                .error
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(
                msg.contains("`w1`") && msg.contains("Swarm node id"),
                "{msg}"
            );
            assert!(failed[0].task.contains("Swarm ids"), "{}", failed[0].task);
        }
    }

    /// Three local hosts; the plan touches a marker per host, and fails on the hosts named in
    /// `fail_on`.
    fn serial_plan(dir: &std::path::Path, play_keys: &str, fail_on: &str) -> PathBuf {
        let plan = dir.join("plan.yaml");
        std::fs::write(
            &plan,
            format!(
                "- hosts: all\n{play_keys}  tasks:\n    - fail: {{msg: planned}}\n      when: inventory_hostname in {fail_on}\n\
                 \x20   - command: {{cmd: 'touch {d}/{{{{ inventory_hostname }}}}', creates: '{d}/{{{{ inventory_hostname }}}}'}}\n\
                 - hosts: all\n  tasks:\n    - command: {{cmd: 'touch {d}/{{{{ inventory_hostname }}}}.later', creates: '{d}/{{{{ inventory_hostname }}}}.later'}}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        plan
    }

    fn three_hosts(dir: &std::path::Path) -> Inventory {
        local_inventory(
            dir,
            "  g:\n    hosts:\n      h1: {}\n      h2: {}\n      h3: {}\n",
        )
    }

    /// `serial: 1` with a failing second host: the first host ran the whole plan, the third
    /// never started, and the recap says so; a retry would run the second and third.
    #[tokio::test]
    async fn a_failed_batch_stops_the_run_before_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let inventory = three_hosts(dir.path());
        let plan = serial_plan(dir.path(), "  serial: 1\n", "['h2']");
        let recap = run_plan(&inventory, &plan, crate::engine::Mode::Apply).await;
        assert!(!recap.success());
        let why = recap.stopped.as_deref().unwrap();
        assert!(why.contains("batch 2 of 3") && why.contains("h2"), "{why}");
        assert!(dir.path().join("h1").exists() && !dir.path().join("h1.later").exists());
        assert!(!dir.path().join("h3").exists(), "h3 was started");
        assert!(recap.hosts["h3"].not_started && !recap.hosts["h1"].not_started);
        assert!(
            recap.hosts["h1"].unfinished,
            "h1 did not run the second play"
        );
        assert_eq!(recap.unconverged(), ["h1", "h2", "h3"]);
        let table = crate::progress::recap_table(&recap);
        assert!(table.contains("never started: h3"), "{table}");
    }

    /// Without `serial` a failed host does not stop the others' later plays (Ansible's way);
    /// `any_errors_fatal` does, once the play ends.
    #[tokio::test]
    async fn any_errors_fatal_stops_the_run_after_the_play() {
        for (keys, stops) in [("", false), ("  any_errors_fatal: true\n", true)] {
            let dir = tempfile::tempdir().unwrap();
            let inventory = three_hosts(dir.path());
            let plan = serial_plan(dir.path(), keys, "['h1']");
            let recap = run_plan(&inventory, &plan, crate::engine::Mode::Apply).await;
            assert_eq!(
                recap.stopped.is_some(),
                stops,
                "{keys}: {:?}",
                recap.stopped
            );
            assert!(
                dir.path().join("h3").exists(),
                "{keys}: h3 is in the same batch"
            );
            assert_eq!(dir.path().join("h3.later").exists(), !stops, "{keys}");
            assert_eq!(recap.hosts["h3"].unfinished, stops);
        }
    }

    /// `max_fail_percentage` is a strict bound over each batch: one of two failed is 50%,
    /// which a budget of 50 allows and a budget of 49 does not.
    #[tokio::test]
    async fn max_fail_percentage_is_the_budget_of_each_batch() {
        for (max, stops) in [(50, false), (49, true)] {
            let dir = tempfile::tempdir().unwrap();
            let inventory = local_inventory(
                dir.path(),
                "  g:\n    hosts:\n      h1: {}\n      h2: {}\n      h3: {}\n      h4: {}\n",
            );
            let keys = format!("  serial: 2\n  max_fail_percentage: {max}\n");
            let plan = serial_plan(dir.path(), &keys, "['h1']");
            let recap = run_plan(&inventory, &plan, crate::engine::Mode::Apply).await;
            assert_eq!(recap.stopped.is_some(), stops, "{max}: {:?}", recap.stopped);
            assert_eq!(dir.path().join("h4").exists(), !stops, "{max}");
            assert_eq!(recap.hosts["h4"].not_started, stops);
        }
    }

    /// A delegated task runs where it is told, with the delegating host's variables; one that
    /// names no inventory host, or an unreachable one, fails that task naming the delegate, and
    /// the host is not counted unreachable.
    #[tokio::test]
    async fn delegate_to_runs_on_an_inventory_host_or_fails_the_task() {
        let dir = tempfile::tempdir().unwrap();
        let inventory = local_inventory(
            dir.path(),
            "  g:\n    hosts:\n      h1: {vars: {tag: one}}\n      gone: {connection: ssh, address: 127.0.0.1, port: 1}\n",
        );
        let plan = dir.path().join("plan.yaml");
        std::fs::write(
            &plan,
            format!(
                "- hosts: h1\n  tasks:\n    - command: {{cmd: 'touch {d}/{{{{ tag }}}}', creates: '{d}/{{{{ tag }}}}'}}\n      delegate_to: h1\n\
                 \x20   - command: 'true'\n      delegate_to: \"{{{{ target }}}}\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let plan = Plan::load(&[plan], &PathBuf::from("templates")).unwrap();
        for (target, why) in [
            ("nowhere", "no host of the inventory"),
            ("gone", "`gone` is unreachable"),
        ] {
            let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
            let mut opts = Options::default();
            opts.extra_vars.insert("target".into(), target.into());
            opts.connect_timeout = std::time::Duration::from_secs(2);
            let recap = run(&inventory, &plan, &opts, tx).await.unwrap();
            assert!(dir.path().join("one").exists());
            let failed: Vec<_> = recap
                .tasks
                .iter()
                .filter(|t| t.status == crate::engine::Status::Failed)
                .collect();
            assert_eq!(failed.len(), 1, "{target}: {:#?}", recap.tasks);
            let msg = failed[0].error.as_ref().unwrap().to_string();
            assert!(msg.contains(why), "{target}: {msg}");
            assert!(!recap.hosts["h1"].unreachable);
        }
    }
}
