//! One play on local hosts: probes, loops, batches and delegation.

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
        "  g:\n    hosts:\n      h1: {vars: {tag: one}}\n      h2: {vars: {tag: two}}\n      gone: {connection: ssh, address: 127.0.0.1, port: 1}\n",
    );
    let plan = dir.path().join("plan.yaml");
    std::fs::write(
        &plan,
        format!(
            "- hosts: h1\n  tasks:\n    - command: {{cmd: 'touch {d}/{{{{ tag }}}}', creates: '{d}/{{{{ tag }}}}'}}\n      delegate_to: h2\n\
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
        let _ = std::fs::remove_file(dir.path().join("one"));
        let recap = run(&inventory, &plan, &opts, tx).await.unwrap();
        // h1's variables, on h2's connection (both local here: the report says where).
        assert!(dir.path().join("one").exists() && !dir.path().join("two").exists());
        let delegated = &recap.tasks[0];
        assert!(
            delegated.changes.iter().all(|c| c.starts_with("on h2: "))
                && !delegated.changes.is_empty(),
            "{delegated:?}"
        );
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
