//! `minipaas code`, `secret`, `deploy` and `shell` end to end: the example app (examples/app)
//! onto the site lab's swarm (mpsite, provisioned by playbooks/site.yaml), images built here
//! and shipped over SSH, answered through Caddy.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::deploy::*;
use crate::common::images::BASE;
use crate::common::site::{provisioned, sha256_hex};
use crate::common::{self, wait_for};

#[test]
fn lab_deploy_example_app_through_caddy_with_versioned_secrets() {
    let (_guard, _, lab) = provisioned();
    remove_stack(&lab);

    let work = tempfile::tempdir().unwrap();
    let app = init_example(&lab, work.path());
    let user_file =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app/compose.yaml"))
            .unwrap();
    let env: PathBuf = app.join("deploy");

    let code_steps: [&[&str]; 5] = [
        &["code", "init"],
        &["code", "route", "http://localhost/", "web:8000"],
        &["code", "worker", "worker"],
        &["code", "job", "migrate"],
        &["code", "cron", "cleanup", "--cron", "*/5 * * * *"],
    ];
    for step in code_steps {
        mp(&env, step);
        let again = mp(&env, step);
        assert!(again.contains("nothing to do"), "{step:?} again: {again}");
    }
    let apps = std::fs::read_to_string(env.join("compose.apps.yaml")).unwrap();
    assert!(apps.contains("mode: replicated-job"), "{apps}");
    assert!(
        apps.contains("swarm.cronjob.schedule: '*/5 * * * *'"),
        "{apps}"
    );

    // Secrets: created on the manager, referenced from compose.apps.yaml only.
    let values = work.path().join("values");
    std::fs::create_dir_all(&values).unwrap();
    std::fs::write(values.join("pg"), "pg-password-1").unwrap();
    std::fs::write(values.join("app1"), "app-secret-one").unwrap();
    std::fs::write(values.join("app2"), "app-secret-two").unwrap();
    let pg = values.join("pg").display().to_string();
    let app1 = values.join("app1").display().to_string();
    let app2 = values.join("app2").display().to_string();
    let pg_users = ["postgres", "web", "worker", "migrate", "cleanup"];
    let mut create_pg = vec!["secret", "create", "postgres_password", &pg, "--for"];
    create_pg.extend(pg_users);
    assert_eq!(mp_json(&env, &create_pg).len(), 1);
    assert!(mp_json(&env, &create_pg).is_empty());
    // That no secret value shows in any output is tests/secrets.rs's sweep.
    let create_app1 = ["secret", "create", "app_secret", &app1, "--for", "web"];
    assert_eq!(mp_json(&env, &create_app1).len(), 1);

    // Build here, ship over SSH: the example's four services share one image.
    let shipped = mp_json(&env, &["deploy", "build"]);
    assert!(!shipped.is_empty());
    assert!(mp_json(&env, &["deploy", "build"]).is_empty());

    let rolled = mp_json(&env, &["deploy", "rollout", "--timeout", "300"]);
    assert!(
        rolled.iter().any(|c| c.contains("docker stack deploy")),
        "{rolled:?}"
    );
    assert!(mp_json(&env, &["deploy", "rollout"]).is_empty());
    assert!(!mp_json(&env, &["deploy", "routing"]).is_empty());
    assert!(mp_json(&env, &["deploy", "routing"]).is_empty());

    // Through Caddy's published port, the app answers; the migration ran (visits counts).
    let hello = wait_for("the app through Caddy", Duration::from_secs(60), || {
        get(&lab, "/")
    });
    assert_eq!(hello, "hello from minipaas example (version 1)");
    let visits: u64 = wait_for("visits", Duration::from_secs(30), || get(&lab, "/visits"))
        .parse()
        .unwrap();
    assert!(visits >= 1, "{visits}");
    let jobs = lab.ssh_ok(
        "node1",
        &format!("docker service ls --filter name={STACK}_migrate --format '{{{{.Replicas}}}}'"),
    );
    assert!(jobs.contains("(1/1 completed)"), "{jobs}");
    assert_eq!(
        get(&lab, "/secret-digest").unwrap(),
        sha12("app-secret-one")
    );

    // Queues and streams installed into the cluster's PostgreSQL, over SSH, twice.
    let sql = ["sql", "--env", "deploy", "--database", "app"];
    let first = mp(&app, &[&sql[..], &["migrate"]].concat());
    assert!(first.contains("2 migration(s) applied"), "{first}");
    let again = mp(&app, &[&sql[..], &["migrate"]].concat());
    assert!(again.contains("0 migration(s) applied"), "{again}");
    let status = mp(&app, &[&sql[..], &["status"]].concat());
    assert!(status.contains("schema version: 2"), "{status}");

    // The worker runs on a worker node, with the image shipped over SSH (same id as here).
    let worker_node = lab.ssh_ok(
        "node1",
        &format!(
            "docker service ps {STACK}_worker --filter desired-state=running --format '{{{{.Node}}}}'"
        ),
    );
    assert!(
        ["node2", "node3"].contains(&worker_node.as_str()),
        "{worker_node}"
    );
    let local_id = String::from_utf8_lossy(
        &common::docker(&["image", "inspect", "--format", "{{.Id}}", "example-app:1"]).stdout,
    )
    .trim()
    .to_string();
    assert_eq!(
        lab.ssh_ok(
            &worker_node,
            "docker image inspect --format '{{.Id}}' example-app:1"
        ),
        local_id
    );

    // A new value: one reference, the new value in the service, the old version pruned.
    let create_app2 = ["secret", "create", "app_secret", &app2, "--for", "web"];
    assert_eq!(mp_json(&env, &create_app2).len(), 1);
    let apps = std::fs::read_to_string(env.join("compose.apps.yaml")).unwrap();
    assert_eq!(apps.matches("target: app_secret").count(), 1, "{apps}");
    mp_json(&env, &["deploy", "rollout", "--timeout", "300"]);
    assert_eq!(
        get(&lab, "/secret-digest").unwrap(),
        sha12("app-secret-two")
    );
    let refs = lab.ssh_ok(
        "node1",
        &format!(
            "docker service inspect {STACK}_web --format '{{{{range .Spec.TaskTemplate.ContainerSpec.Secrets}}}}{{{{.File.Name}}}} {{{{end}}}}'"
        ),
    );
    assert_eq!(refs.matches("app_secret").count(), 1, "{refs}");
    let old = format!("app_secret.{}", &sha256_hex(b"app-secret-one")[..8]);
    assert!(lab
        .ssh_ok("node1", "docker secret ls --format '{{.Name}}'")
        .contains(&old));
    assert_eq!(mp_json(&env, &["secret", "prune"]).len(), 1);
    let left = lab.ssh_ok("node1", "docker secret ls --format '{{.Name}}'");
    assert!(!left.contains(&old), "{left}");
    assert!(left.contains("app_secret."), "{left}");
    assert!(mp_json(&env, &["secret", "prune"]).is_empty());

    // Configs work the same way; `delete` drops the reference and the unused versions.
    std::fs::write(values.join("conf"), "greeting = hello\n").unwrap();
    let conf = values.join("conf").display().to_string();
    assert_eq!(
        mp_json(
            &env,
            &["config", "create", "app_config", &conf, "--for", "web"]
        )
        .len(),
        1
    );
    let configs = || lab.ssh_ok("node1", "docker config ls --format '{{.Name}}'");
    assert!(configs().contains("app_config."), "{}", configs());
    assert!(std::fs::read_to_string(env.join("compose.apps.yaml"))
        .unwrap()
        .contains("target: app_config"));
    assert_eq!(mp_json(&env, &["config", "delete", "app_config"]).len(), 1);
    assert!(!configs().contains("app_config."), "{}", configs());
    assert!(!std::fs::read_to_string(env.join("compose.apps.yaml"))
        .unwrap()
        .contains("app_config"));

    // A shell whose docker talks to the manager over SSH, strictly checked.
    let nodes = mp(
        &env,
        &[
            "shell",
            "--",
            "docker",
            "node",
            "ls",
            "--format",
            "{{.Hostname}}",
        ],
    );
    for n in ["node1", "node2", "node3"] {
        assert!(nodes.contains(n), "{nodes}");
    }

    // The user's compose file was never touched.
    assert_eq!(std::fs::read(app.join("compose.yaml")).unwrap(), user_file);

    // A job that fails: the rollout waits for its last attempt, fails and says why.
    let job = work.path().join("job");
    std::fs::create_dir_all(&job).unwrap();
    small_stack(
        &lab,
        &job,
        "mpjob",
        "services:\n  fail:\n    image: example-app:1\n    command: [\"sh\", \"-c\", \"echo failing on purpose; exit 3\"]\n",
        &[],
    );
    mp(&job, &["code", "job", "fail"]);
    let out = mp_run(&job, &["deploy", "rollout", "--timeout", "180"]);
    lab.ssh_ok("node1", "docker stack rm mpjob >/dev/null");
    assert_eq!(out.code, Some(1), "{}", out.text());
    let stderr = out.stderr;
    assert!(stderr.contains("job failed (exit 3)"), "{stderr}");
    assert!(stderr.contains("failing on purpose"), "{stderr}");

    // An image no node has fails the rollout at once, not at the timeout.
    std::fs::write(
        job.join("compose.yaml"),
        "services:\n  ghost:\n    image: minipaas-missing:1\n",
    )
    .unwrap();
    mp(&job, &["code", "init", "--stack", "mpghost"]);
    let started = Instant::now();
    let out = mp_run(&job, &["deploy", "rollout", "--timeout", "600"]);
    lab.ssh_ok("node1", "docker stack rm mpghost >/dev/null");
    assert_eq!(out.code, Some(1), "{}", out.text());
    let stderr = out.stderr;
    assert!(stderr.contains("its image is not on the node"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn lab_deploy_build_failure_names_the_service_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    mp(dir.path(), &["lab", "base-image"]);
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {BASE}\nRUN echo broken-step-output && exit 7\n"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  bad:\n    build: .\n",
    )
    .unwrap();
    // Never contacted: the build fails first.
    env_with_unreachable_manager(dir.path());
    let stderr = in_env(dir.path())
        .args(["deploy", "build"])
        .code(1)
        .run()
        .stderr;
    assert!(
        stderr.contains("the image build of service `bad` failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exit code: 7") || stderr.contains("broken-step-output"),
        "{stderr}"
    );
}
