//! Releases on the site lab's swarm: zero-downtime rollouts through Caddy, the automatic rollback
//! of an image whose healthcheck never passes, the history kept on the cluster, and a canary
//! promoted and aborted. A client sends requests through Caddy in a loop the whole time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::common::deploy::{
    deployed_example, get, in_env, mp, mp_json, mp_run, remove_stack, set_version, Example, STACK,
};
use crate::common::site::provisioned;
use crate::common::wait_for;
use crate::common::Lab;

/// What a client saw: response bodies by count, and every failure.
#[derive(Default)]
struct Seen {
    ok: Vec<String>,
    failed: Vec<String>,
}

/// One `GET /` through Caddy on node1, by hand: status line and body.
fn request(addr: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(5))
        .map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)
        .map_err(|e| format!("read: {e}"))?;
    let status = buf.lines().next().unwrap_or_default().to_string();
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
    if status.contains(" 200 ") {
        Ok(body.to_string())
    } else {
        Err(format!("{status}: {body}"))
    }
}

/// A client sending `GET /` in a loop until dropped.
struct Client {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(lab: &Lab) -> Client {
        let addr = format!("{}:8000", lab.node("node1").private_address);
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (s, v) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let r = request(&addr);
                let mut v = v.lock().unwrap();
                match r {
                    Ok(body) => v.ok.push(body),
                    Err(e) => v.failed.push(e),
                }
                drop(v);
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Client {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

fn hello(version: &str) -> String {
    format!("hello from minipaas example (version {version})")
}

/// `minipaas ARGS` in `dir`, whatever its exit: (exit code, stdout + stderr).
fn mp_any(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = mp_run(dir, args);
    (out.code, out.text())
}

fn history(env: &Path) -> Vec<Value> {
    let doc = in_env(env)
        .args(["deploy", "history", "--format", "json"])
        .run()
        .json();
    serde_json::from_value(doc).unwrap()
}

/// (action, version, result) of each record.
fn steps(records: &[Value]) -> Vec<(String, String, String)> {
    records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_string(),
                r["version"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn step(action: &str, version: &str, result: &str) -> (String, String, String) {
    (action.into(), version.into(), result.into())
}

/// The example app at version 1 on a stack without history, as a user sets it up.
fn deployed_app(lab: &Lab) -> Example {
    remove_stack(lab);
    let ex = deployed_example(lab);
    wait_for("version 1 through Caddy", Duration::from_secs(90), || {
        get(lab, "/").filter(|b| *b == hello("1"))
    });
    ex
}

/// The image of every running task of `service`, once as many run as it wants replicas (for
/// at most a minute): Swarm replaces a task that failed to start (dockerd in the lab nodes
/// sometimes loses a fresh container), and for a moment the old and the new one both want to run.
fn running_images(lab: &Lab, service: &str) -> Vec<String> {
    let settled = wait_for(
        &format!("`{service}` to run its replicas"),
        Duration::from_secs(60),
        || {
            let out = lab.ssh_ok(
            "node1",
            &format!(
                "docker service inspect {STACK}_{service} --format 'want {{{{.Spec.Mode.Replicated.Replicas}}}}' 2>/dev/null; \
                 docker service ps {STACK}_{service} --filter desired-state=running --format '{{{{.Image}}}} {{{{.CurrentState}}}}' 2>/dev/null; true"
            ),
        );
            let want: Option<usize> = out
                .lines()
                .find_map(|l| l.strip_prefix("want "))
                .and_then(|n| n.trim().parse().ok());
            let tasks: Vec<&str> = out.lines().filter(|l| !l.starts_with("want ")).collect();
            (want == Some(tasks.len()) && tasks.iter().all(|t| t.contains(" Running ")))
                .then(|| tasks.join("\n"))
        },
    );
    settled
        .lines()
        .map(|t| t.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

fn has_service(lab: &Lab, service: &str) -> bool {
    !lab.ssh_ok(
        "node1",
        &format!("docker service ls -q --filter name={STACK}_{service}"),
    )
    .is_empty()
}

#[test]
fn lab_release_zero_downtime_rollback_history_and_canary() {
    let (_guard, _, lab) = provisioned();
    let ex = deployed_app(&lab);
    let env = ex.env.clone();
    let app = env.parent().unwrap().to_path_buf();
    assert_eq!(
        steps(&history(&env)),
        vec![step("rollout", "1", "succeeded")]
    );

    // Zero downtime: version 2 rolls out start-first while a client keeps asking.
    set_version(&env, "2");
    mp(&env, &["deploy", "build"]);
    let client = Client::start(&lab);
    std::thread::sleep(Duration::from_secs(2));
    mp(&env, &["deploy", "rollout", "--timeout", "300"]);
    std::thread::sleep(Duration::from_secs(3));
    let seen = client.finish();
    assert!(
        seen.failed.is_empty(),
        "{} failed requests during the rollout (of {}): {:?}",
        seen.failed.len(),
        seen.failed.len() + seen.ok.len(),
        &seen.failed[..seen.failed.len().min(10)]
    );
    assert!(seen.ok.len() > 50, "only {} requests", seen.ok.len());
    assert!(
        seen.ok.contains(&hello("1")),
        "the old version answered first"
    );
    assert_eq!(seen.ok.last().unwrap(), &hello("2"));
    assert_eq!(
        running_images(&lab, "web"),
        ["example-app:2", "example-app:2"]
    );

    // An image whose healthcheck never passes: the rollout fails, the stack goes back to
    // version 2 by itself, and the route answers version 2 throughout.
    let dockerfile = app.join("Dockerfile");
    let good = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{good}\nENV APP_UNHEALTHY=1\n")).unwrap();
    set_version(&env, "3");
    mp(&env, &["deploy", "build"]);
    let client = Client::start(&lab);
    let (code, out) = mp_any(&env, &["deploy", "rollout", "--timeout", "300"]);
    std::thread::sleep(Duration::from_secs(3));
    let seen = client.finish();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("rolling back to version 2"), "{out}");
    assert!(
        out.contains("service `minipaas_web`"),
        "the failing service is named: {out}"
    );
    assert!(seen.failed.is_empty(), "{:?}", seen.failed);
    assert!(
        seen.ok.iter().all(|b| *b == hello("2")),
        "{:?}",
        seen.ok
            .iter()
            .filter(|b| **b != hello("2"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        running_images(&lab, "web"),
        ["example-app:2", "example-app:2"]
    );
    assert_eq!(
        steps(&history(&env)),
        vec![
            step("rollout", "1", "succeeded"),
            step("rollout", "2", "succeeded"),
            step("rollout", "3", "failed"),
            step("rollback", "2", "succeeded"),
        ]
    );
    let records = history(&env);
    assert!(records[3]["detail"]
        .as_str()
        .unwrap()
        .contains("after the failed rollout of version 3"));
    assert!(records[2]["by"].as_str().unwrap().contains('@'));
    // Read from the cluster, not from here: another checkout sees the same history.
    let configs = lab.ssh_ok(
        "node1",
        &format!(
            "docker config ls --filter label=minipaas.history={STACK} --format '{{{{.Name}}}}'"
        ),
    );
    assert_eq!(configs.lines().count(), 4, "{configs}");

    // A canary of version 4 next to version 2: both answer on the route; abort leaves none.
    std::fs::write(&dockerfile, &good).unwrap();
    set_version(&env, "4");
    mp(&env, &["deploy", "build"]);
    mp(&env, &["deploy", "canary", "web", "--replicas", "1"]);
    assert_eq!(
        running_images(&lab, "web"),
        ["example-app:2", "example-app:2"]
    );
    assert_eq!(running_images(&lab, "web-canary"), ["example-app:4"]);
    let both = wait_for(
        "both versions on the route",
        Duration::from_secs(90),
        || {
            let mut versions: Vec<String> = (0..30).filter_map(|_| get(&lab, "/")).collect();
            versions.sort();
            versions.dedup();
            (versions == [hello("2"), hello("4")]).then(|| versions.join(", "))
        },
    );
    assert!(both.contains("version 4"), "{both}");
    let client = Client::start(&lab);
    mp(&env, &["deploy", "canary", "abort"]);
    std::thread::sleep(Duration::from_secs(3));
    let seen = client.finish();
    assert!(seen.failed.is_empty(), "{:?}", seen.failed);
    assert!(!has_service(&lab, "web-canary"));
    for _ in 0..10 {
        assert_eq!(get(&lab, "/").unwrap(), hello("2"));
    }
    let (code, out) = mp_any(&env, &["deploy", "canary", "abort"]);
    assert_eq!(code, Some(2), "no canary left to abort: {out}");
    assert!(out.contains("runs no canary"), "{out}");

    // Canary again, then promote: every replica on version 4, no canary left.
    mp(&env, &["deploy", "canary", "web", "--replicas", "1"]);
    assert_eq!(running_images(&lab, "web-canary"), ["example-app:4"]);
    let client = Client::start(&lab);
    mp(&env, &["deploy", "canary", "promote"]);
    std::thread::sleep(Duration::from_secs(3));
    let seen = client.finish();
    assert!(seen.failed.is_empty(), "{:?}", seen.failed);
    assert!(!has_service(&lab, "web-canary"));
    assert_eq!(
        running_images(&lab, "web"),
        ["example-app:4", "example-app:4"]
    );
    for _ in 0..10 {
        assert_eq!(get(&lab, "/").unwrap(), hello("4"));
    }

    // Back to the previous version by hand, then to a named one.
    mp(&env, &["deploy", "rollback"]);
    assert_eq!(
        running_images(&lab, "web"),
        ["example-app:2", "example-app:2"]
    );
    mp(&env, &["deploy", "rollback", "--to", "4"]);
    assert_eq!(
        running_images(&lab, "web"),
        ["example-app:4", "example-app:4"]
    );
    let (code, out) = mp_any(&env, &["deploy", "rollback", "--to", "3"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no successful deploy of version `3`"), "{out}");
    let all = steps(&history(&env));
    assert_eq!(
        all[4..].to_vec(),
        vec![
            step("canary", "2", "succeeded"),
            step("abort", "2", "succeeded"),
            step("canary", "2", "succeeded"),
            step("promote", "4", "succeeded"),
            step("rollback", "2", "succeeded"),
            step("rollback", "4", "succeeded"),
        ]
    );

    // Nothing new to deploy: no step is recorded, nothing changes.
    let before = history(&env).len();
    assert!(mp_json(&env, &["deploy", "rollout"]).is_empty());
    assert!(mp_json(&env, &["deploy", "rollout", "--check"]).is_empty());
    assert_eq!(history(&env).len(), before);
}
