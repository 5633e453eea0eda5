//! Plans loaded from text and files: every key checked, imports resolved.

use super::*;

fn plan(text: &str) -> Result<Plan, PlanError> {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("site.yaml");
    std::fs::write(&p, text).unwrap();
    std::fs::write(
        d.path().join("more.yaml"),
        "- name: imported\n  command: echo hi\n",
    )
    .unwrap();
    Plan::load(&[p], Path::new("/nonexistent"))
}

#[test]
fn parses_plays_tasks_and_lines() {
    let p = plan(
        "- hosts: all\n  vars: {a: 1}\n  tasks:\n    - name: first\n      file: {path: /tmp/x, state: directory}\n      tags: [fs]\n\n    - name: second\n      command: echo hi\n      when: a == 1\n      notify: restart\n    - import_tasks: more.yaml\n      tags: imp\n  handlers:\n    - name: restart\n      systemd: {name: x, state: restarted}\n",
    )
    .unwrap();
    let play = &p.plays[0];
    assert_eq!(play.tasks.len(), 3);
    assert_eq!(play.tasks[0].at.line, 4);
    assert_eq!(play.tasks[1].at.line, 8);
    assert_eq!(play.tasks[1].notify, ["restart"]);
    assert_eq!(play.tasks[2].name.0, "imported");
    assert_eq!(play.tasks[2].tags, ["imp"]);
    assert!(play.tasks[2].at.file.path().ends_with("more.yaml"));
    assert_eq!(play.handlers[0].at.line, 15);
}

/// The built-in role loads as a checkout's does, and its tasks are located in their built-in
/// files, so a failure on a host names `playbooks/tasks/facts.yaml (built in) line 7`.
#[test]
fn built_in_site_plan_loads_and_names_its_files() {
    let site = SourcePath::built_in("playbooks/site.yaml");
    let p = Plan::load_sources(&[site], &[SourcePath::built_in("templates")]).unwrap();
    assert_eq!(p.plays.len(), 9);
    assert_eq!(
        p.plays[0].tasks[0].at.to_string(),
        "playbooks/tasks/facts.yaml (built in) line 7"
    );
    assert_eq!(
        p.plays[0].at.to_string(),
        "playbooks/site.yaml (built in) line 11"
    );
    let e = Plan::load_sources(&[SourcePath::built_in("playbooks/nope.yaml")], &[])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "cannot read plan `playbooks/nope.yaml (built in)`");
}

#[test]
fn typos_are_errors_with_lines() {
    let e = plan("- hosts: all\n  taks: []\n").unwrap_err().to_string();
    assert!(e.contains("line") && e.contains("taks"), "{e}");
    let e = plan("- hosts: all\n  tasks:\n    - name: a\n      copyy: {dest: /x}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("copyy"), "{e}");
    let e = plan("- hosts: all\n  tasks:\n    - name: a\n      copy: {dest: /x, bogus: 1}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
    let e = plan("- hosts: all\n  tasks: [\n").unwrap_err().to_string();
    assert!(e.contains("site.yaml"), "{e}");
}

#[test]
fn serial_takes_counts_percentages_and_growing_lists() {
    let p = plan(
        "- hosts: all\n  serial: [1, \"50%\", 3]\n  max_fail_percentage: 20\n  any_errors_fatal: true\n  tasks: []\n- hosts: all\n  serial: 2\n  tasks: []\n",
    )
    .unwrap();
    let play = &p.plays[0];
    assert_eq!(
        play.serial,
        [
            BatchSize::Hosts(1),
            BatchSize::Percent(50),
            BatchSize::Hosts(3)
        ]
    );
    assert_eq!(play.max_fail_percentage, Some(20));
    assert!(play.any_errors_fatal);
    let hosts: Vec<u32> = (1..=10).collect();
    // 1, then 50% of 10, then 3 repeated until every host ran.
    assert_eq!(
        batches(&hosts, &play.serial),
        vec![vec![1], vec![2, 3, 4, 5, 6], vec![7, 8, 9], vec![10]]
    );
    assert_eq!(batches(&hosts[..3], &p.plays[1].serial).len(), 2);
    assert_eq!(batches(&hosts[..3], &[]), vec![vec![1, 2, 3]]);
    // A percentage too small for one host still makes batches of one.
    assert_eq!(batches(&hosts[..3], &[BatchSize::Percent(10)]).len(), 3);
}

#[test]
fn bad_serial_values_name_the_line() {
    for bad in ["0", "\"0%\"", "\"150%\"", "[]", "{a: 1}", "\"a few\""] {
        let e = plan(&format!("- hosts: all\n  serial: {bad}\n  tasks: []\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("serial"), "{bad}: {e}");
    }
    let e = plan("- hosts: all\n  max_fail_percentage: 101\n  tasks: []\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_fail_percentage"), "{e}");
    let e = plan("- hosts: all\n  tasks:\n    - command: 'true'\n      delegate_to: [a, b]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("delegate_to"), "{e}");
}
