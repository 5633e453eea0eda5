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
    assert_eq!(p.plays.len(), 7);
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
