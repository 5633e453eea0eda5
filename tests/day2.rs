//! `minipaas deploy status|logs|scale|restart|remove` end to end, on the site lab's swarm with
//! the example app deployed as tests/deploy.rs deploys it. Each test leaves the example stack as
//! it found it (other tests run on this lab after these); whole-stack removal and failing
//! services use a small stack of their own.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::deploy::{deployed_example, get, mp, mp_json, mp_run, small_stack, STACK};
use crate::common::site::provisioned;
use crate::common::wait_for;
use crate::common::{Lab, Mp};

/// `deploy status --format json`: the exit code and the document.
fn status(dir: &Path) -> (Option<i32>, Value) {
    let out = mp_run(dir, &["deploy", "status", "--format", "json"]);
    let doc = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON status ({e}): {}", out.text()));
    (out.code, doc)
}

fn service<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("no service `{name}` in {doc:#}"))
}

/// `docker service ls`'s REPLICAS of `service` on node1, for checks that do not trust our own
/// status.
fn replicas(lab: &Lab, service: &str) -> String {
    lab.ssh_ok(
        "node1",
        &format!("docker service ls --filter name={service} --format '{{{{.Name}}}} {{{{.Replicas}}}}' | awk '$1 == \"{service}\" {{print $2}}'"),
    )
}

fn running_task_ids(lab: &Lab, service: &str) -> Vec<String> {
    let out = lab.ssh_ok(
        "node1",
        &format!("docker service ps {service} --filter desired-state=running -q"),
    );
    let mut ids: Vec<String> = out.lines().map(str::to_string).collect();
    ids.sort();
    ids
}

fn recorded_replicas(env: &Path, service: &str) -> Option<u64> {
    let apps: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(env.join("compose.apps.yaml")).unwrap())
            .unwrap();
    apps["services"][service]["deploy"]["replicas"].as_u64()
}

#[test]
fn lab_day2_status_and_logs_of_the_example_app() {
    let (_guard, _, lab) = provisioned();
    let ex = deployed_example(&lab);
    let env = ex.env.as_path();

    // Every service, with replicas, health, version and placement.
    let (code, doc) = wait_until_running(env);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_eq!(doc["stack"], STACK);
    assert_eq!(doc["manager"], "node1");
    assert_eq!(doc["health"], "running");
    let web = service(&doc, "web");
    assert_eq!(
        (&web["kind"], &web["desired"], &web["running"]),
        (&"replicated".into(), &2.into(), &2.into()),
        "{web:#}"
    );
    assert_eq!(web["version"], "1", "{web:#}");
    assert_eq!(web["image"], "example-app:1", "{web:#}");
    assert!(!web["nodes"].as_array().unwrap().is_empty(), "{web:#}");
    let worker = service(&doc, "worker");
    assert_eq!(
        (&worker["desired"], &worker["running"]),
        (&1.into(), &1.into())
    );
    let worker_nodes = worker["nodes"].as_array().unwrap();
    assert!(
        worker_nodes == &["node2"] || worker_nodes == &["node3"],
        "{worker:#}"
    );
    for s in ["caddy", "postgres"] {
        assert_eq!(service(&doc, s)["health"], "running", "{doc:#}");
        assert!(service(&doc, s)["version"].is_null(), "{doc:#}");
    }
    let migrate = service(&doc, "migrate");
    assert_eq!(
        (&migrate["kind"], &migrate["completed"], &migrate["health"]),
        (&"job".into(), &1.into(), &"running".into()),
        "{migrate:#}"
    );
    let cleanup = service(&doc, "cleanup");
    assert_eq!(
        (&cleanup["kind"], &cleanup["desired"], &cleanup["health"]),
        (&"cron".into(), &0.into(), &"running".into()),
        "{cleanup:#}"
    );

    // The human table.
    let table = mp(env, &["deploy", "status"]);
    assert!(table.starts_with("SERVICE "), "{table}");
    let web_line = table.lines().find(|l| l.starts_with("web ")).unwrap();
    for word in ["replicated", "2/2", "running", "example-app:1"] {
        assert!(web_line.contains(word), "{table}");
    }
    assert!(table.contains("1/1 completed"), "{table}");
    assert!(
        table.contains("stack `minipaas` on `node1`: running"),
        "{table}"
    );

    // Logs of every web task, each line under its task's name.
    let logs = mp(env, &["deploy", "logs", "web"]);
    assert!(
        logs.contains("web: listening on :8000 (version 1)"),
        "{logs}"
    );
    let tasks: std::collections::BTreeSet<&str> = logs
        .lines()
        .filter(|l| l.contains("web: listening"))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(tasks.len() >= 2, "{logs}");
    assert!(
        tasks.iter().all(|t| t.starts_with("minipaas_web.")),
        "{logs}"
    );
    let future = mp(
        env,
        &["deploy", "logs", "web", "--since", "2099-01-01T00:00:00"],
    );
    assert!(!future.contains("web:"), "{future}");
    let out = mp_run(env, &["deploy", "logs", "nope"]);
    assert_eq!(out.code, Some(2), "{}", out.text());
    let stderr = out.stderr.as_str();
    assert!(
        stderr.contains("stack `minipaas` on host `node1` has no service `nope`")
            && stderr.contains("caddy, cleanup, migrate, postgres, web, worker"),
        "{stderr}"
    );

    // --follow streams: a request made after it started shows up while it runs, and Ctrl-C
    // ends it at once, and the remote `docker service logs` with it.
    let mut child = Mp::new()
        .dir(env)
        .args(["deploy", "logs", "web", "--follow", "--tail", "0"])
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    let marker = format!("day2-follow-{}", std::process::id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    'found: loop {
        assert!(
            Instant::now() < deadline,
            "`{marker}` never arrived: {seen:#?}"
        );
        let _ = get(&lab, &format!("/{marker}"));
        let until = Instant::now() + Duration::from_secs(3);
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(l) if l.contains(&marker) => break 'found,
                Ok(l) => seen.push(l),
                Err(_) => break,
            }
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "--follow ended by itself"
    );
    let stopped = Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "still following 10 s after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    wait_for(
        "the remote `docker service logs` to end",
        Duration::from_secs(20),
        || {
            let out = lab.ssh("node1", "pgrep -af 'docker service logs --[f]ollow'");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .is_empty()
                .then_some(String::new())
        },
    );
}

/// Status, polled until every service runs (a rollout just before may still settle).
fn wait_until_running(env: &Path) -> (Option<i32>, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (code, doc) = status(env);
        if code == Some(0) || Instant::now() > deadline {
            return (code, doc);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

#[test]
fn lab_day2_scale_restart_and_remove_a_service() {
    let (_guard, _, lab) = provisioned();
    let ex = deployed_example(&lab);
    let env = ex.env.as_path();
    let web = format!("{STACK}_web");

    // Scale: on the swarm, recorded for the next rollout, then idempotent.
    let changed = mp_json(env, &["deploy", "scale", "web=3"]);
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(replicas(&lab, &web), "3/3");
    assert_eq!(recorded_replicas(env, "web"), Some(3));
    assert!(mp_json(env, &["deploy", "scale", "web=3"]).is_empty());
    assert!(mp_json(env, &["deploy", "scale", "web=3", "--check"]).is_empty());
    // --check says what would change and changes nothing, here or there.
    assert_eq!(
        mp_json(env, &["deploy", "scale", "web=2", "--check"]).len(),
        1
    );
    assert_eq!(replicas(&lab, &web), "3/3");
    assert_eq!(recorded_replicas(env, "web"), Some(3));
    // The recorded count survives a rollout.
    mp(env, &["deploy", "rollout"]);
    assert_eq!(replicas(&lab, &web), "3/3");
    for (arg, why) in [
        ("migrate=2", "is a swarm job"),
        ("cleanup=1", "is a cron service"),
        ("postgres=2", "belongs to the minipaas runtime"),
        ("ghost=1", "has no service `ghost`"),
    ] {
        let out = mp_run(env, &["deploy", "scale", arg]);
        assert_eq!(out.code, Some(2), "{arg}: {}", out.text());
        assert!(out.stderr.as_str().contains(why), "{arg}: {}", out.text());
    }
    assert_eq!(mp_json(env, &["deploy", "scale", "web=2"]).len(), 1);
    assert_eq!(replicas(&lab, &web), "2/2");
    assert_eq!(recorded_replicas(env, "web"), Some(2));

    // Restart: new tasks, the app answers, the recap says so.
    let before = running_task_ids(&lab, &web);
    assert_eq!(before.len(), 2);
    let changed = mp_json(env, &["deploy", "restart", "web"]);
    assert!(
        changed.iter().any(|c| c.contains("service restarted")),
        "{changed:?}"
    );
    let after = running_task_ids(&lab, &web);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "{before:?} {after:?}"
    );
    let hello = wait_for(
        "the app through Caddy after the restart",
        Duration::from_secs(30),
        || get(&lab, "/"),
    );
    assert!(hello.starts_with("hello from minipaas example"), "{hello}");

    // Remove one service: gone, again changes nothing, and a rollout brings it back.
    let worker = format!("{STACK}_worker");
    assert_eq!(mp_json(env, &["deploy", "remove", "worker"]).len(), 2);
    assert_eq!(
        lab.ssh_ok(
            "node1",
            &format!("docker service ls -q --filter name={worker}")
        ),
        ""
    );
    assert!(mp_json(env, &["deploy", "remove", "worker"]).is_empty());
    let (_, doc) = status(env);
    assert!(
        doc["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["service"] != "worker"),
        "{doc:#}"
    );
    let rolled = mp_json(env, &["deploy", "rollout"]);
    assert!(
        rolled.iter().any(|c| c.contains("docker stack deploy")),
        "{rolled:?}"
    );
    assert_eq!(replicas(&lab, &worker), "1/1");
    assert_eq!(wait_until_running(env).0, Some(0));
}

#[test]
fn lab_day2_status_exit_codes_and_whole_stack_remove_on_a_small_stack() {
    let (_guard, _, lab) = provisioned();
    // The example's image on every node.
    let _ex = deployed_example(&lab);
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path();
    let compose = String::from(
        "services:\n  sleeper:\n    image: example-app:1\n    command: [\"sleep\", \"infinity\"]\n  \
         crash:\n    image: example-app:1\n    command: [\"sh\", \"-c\", \"echo crashing on purpose; exit 1\"]\n  \
         stuck:\n    image: example-app:1\n    command: [\"sleep\", \"infinity\"]\n    deploy:\n      \
         placement:\n        constraints: [\"node.hostname == nowhere\"]\n",
    );
    let stack = "mpday2x";
    small_stack(&lab, env, stack, &compose, &["sleeper", "crash", "stuck"]);
    // Never converges: crash fails, stuck has no node.
    let out = mp_run(env, &["deploy", "rollout", "--timeout", "5"]);
    assert_eq!(out.code, Some(1), "{}", out.text());

    // A failed service: exit 4, with the reason.
    let doc = wait_for(
        "crash to read as failed, sleeper as running",
        Duration::from_secs(90),
        || {
            let (code, doc) = status(env);
            // The first attempts may fail attaching to the fresh overlay network instead, sleeper's
            // too: until its next task runs, sleeper reads failed, rightly.
            let crash = service(&doc, "crash");
            let crashed = crash["message"]
                .as_str()
                .is_some_and(|m| m.contains("non-zero exit (1)"));
            let sleeping = service(&doc, "sleeper")["health"] == "running";
            (crash["health"] == "failed" && crashed && sleeping).then(|| {
                assert_eq!(code, Some(4), "{doc:#}");
                doc.to_string()
            })
        },
    );
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["health"], "failed");
    let crash = service(&doc, "crash");
    assert_eq!(crash["running"], 0);
    assert!(
        crash["message"]
            .as_str()
            .unwrap()
            .contains("non-zero exit (1)"),
        "{crash:#}"
    );
    assert_eq!(service(&doc, "stuck")["health"], "pending");
    assert_eq!(service(&doc, "sleeper")["health"], "running");
    let out = mp_run(env, &["deploy", "status"]);
    assert_eq!(out.code, Some(4));
    let table = out.stdout.as_str();
    // Failed, or unhealthy when caught in the moment it runs between two failures.
    assert!(
        table.contains("crash: failed: task: non-zero exit (1)")
            || table.contains("crash: unhealthy: task: non-zero exit (1)"),
        "{table}"
    );

    // Only pending left: exit 3. All running: exit 0.
    mp(env, &["deploy", "remove", "crash"]);
    assert_eq!(status(env).0, Some(3));
    mp(env, &["deploy", "remove", "stuck"]);
    assert_eq!(status(env).0, Some(0));

    // The whole stack: only when asked by name; --check leaves it, then it goes with its
    // network, once.
    let out = mp_run(env, &["deploy", "remove"]);
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(out.stderr.as_str().contains("--all"), "{}", out.text());
    assert_eq!(
        mp_json(env, &["deploy", "remove", "--all", "--check"]).len(),
        1
    );
    assert_eq!(
        lab.ssh_ok(
            "node1",
            &format!("docker service ls -q --filter name={stack}_sleeper")
        )
        .lines()
        .count(),
        1
    );
    let removed = mp_json(env, &["deploy", "remove", "--all"]);
    assert!(
        removed.iter().any(|c| c.contains("stack removed")),
        "{removed:?}"
    );
    assert_eq!(
        lab.ssh_ok(
            "node1",
            &format!(
                "docker stack services -q {stack} 2>/dev/null; \
                 docker network ls -q --filter label=com.docker.stack.namespace={stack}"
            )
        ),
        ""
    );
    assert!(mp_json(env, &["deploy", "remove", "--all"]).is_empty());
    let out = mp_run(env, &["deploy", "status"]);
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(
        out.stderr
            .as_str()
            .contains("host `node1`: no stack `mpday2x` on the swarm"),
        "{}",
        out.text()
    );
}
