//! `minipaas code` on a copy of a small compose project in a temp dir: every command writes
//! the decided shapes, a second run changes nothing (same output files, byte for byte, and
//! `nothing to do`), re-running init keeps what was recorded, and the user's compose file is
//! never written.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::deploy::{env_with_unreachable_manager, in_env};
use crate::common::Mp;

const COMPOSE: &str = "\
# The user's file: comments and formatting must survive untouched.
services:
  web:
    build: ./web
    ports: [\"8080:80\"]
  api:
    build:
      context: ./api
      args:
        VERSION: ${MINIPAAS_DEPLOY_VERSION}
  worker:
    image: busybox:1.36
  migrate:
    image: busybox:1.36
  report:
    image: busybox:1.36
";

/// Every file under `dir`, relative path to bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Runs `minipaas code ARGS --env DIR` twice: the first run must print `changed` lines (or
/// `nothing to do` when empty), the second `nothing to do` with every file unchanged.
fn code_twice(dir: &Path, args: &[&str], changed: &[&str]) {
    let run = || {
        Mp::new()
            .arg("code")
            .args(args)
            .arg("--env")
            .arg(dir)
            .run()
            .stdout
    };
    let first = run();
    let lines: Vec<&str> = first.lines().collect();
    if changed.is_empty() {
        assert_eq!(lines, ["nothing to do"], "code {args:?}");
    } else {
        assert_eq!(lines, changed, "code {args:?}");
    }
    let before = snapshot(dir);
    assert_eq!(run(), "nothing to do\n", "code {args:?} second run");
    assert_eq!(
        snapshot(dir),
        before,
        "code {args:?} second run changed files"
    );
}

fn yaml(dir: &Path, file: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&fs::read_to_string(dir.join(file)).unwrap()).unwrap()
}

fn caddy_routes(dir: &Path) -> Vec<(serde_json::Value, String)> {
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("caddy.json")).unwrap()).unwrap();
    json["apps"]["http"]["servers"]["minipaas"]["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let up = &r["handle"][0]["dynamic_upstreams"];
            (
                r["match"].clone(),
                format!(
                    "{}:{}",
                    up["name"].as_str().unwrap().trim_start_matches("tasks."),
                    up["port"].as_str().unwrap()
                ),
            )
        })
        .collect()
}

/// Caddy itself accepts the file (Debian's caddy, the version the runtime image carries).
fn caddy_validates(dir: &Path) {
    let out = std::process::Command::new("caddy")
        .args(["validate", "--adapter", "", "--config"])
        .arg(dir.join("caddy.json"))
        .output()
        .expect("caddy is installed by scripts/test");
    assert!(
        out.status.success(),
        "caddy validate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn code_commands_write_the_env_idempotently() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("compose.yaml"), COMPOSE).unwrap();

    code_twice(
        dir,
        &["init", "-c", "compose.yaml"],
        &[
            "created minipaas.yaml",
            "created compose.apps.yaml",
            "created runtime/common.yaml",
            "created runtime/caddy.yaml",
            "created runtime/postgres.yaml",
            "created caddy.json",
        ],
    );
    let apps = yaml(dir, "compose.apps.yaml");
    for svc in ["web", "api", "worker", "migrate", "report"] {
        assert_eq!(
            apps["services"][svc]["networks"][0], "minipaas_network",
            "{svc}"
        );
    }
    assert_eq!(
        apps["services"]["web"]["image"],
        "minipaas/web:${MINIPAAS_DEPLOY_VERSION}"
    );
    assert!(apps["services"]["worker"].get("image").is_none());
    let settings = yaml(dir, "minipaas.yaml");
    assert_eq!(settings["stack"], "minipaas");
    assert_eq!(settings["deploy"]["version"], "1");
    assert_eq!(settings["project"]["files"][0], "compose.yaml");
    assert!(!dir.join("runtime/registry.yaml").exists());

    // `/` first, then `/api`: the order in caddy.json is still most specific first.
    code_twice(
        dir,
        &["route", "/", "web"],
        &["updated compose.apps.yaml", "updated caddy.json"],
    );
    code_twice(
        dir,
        &["route", "http://api.example.com/api", "api:8000"],
        &["updated compose.apps.yaml", "updated caddy.json"],
    );
    let routes = caddy_routes(dir);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(routes[0].1, "minipaas_api:8000");
    caddy_validates(dir);
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("caddy.json")).unwrap()).unwrap();
    let handler = &json["apps"]["http"]["servers"]["minipaas"]["routes"][0]["handle"][0];
    assert_eq!(handler["dynamic_upstreams"]["name"], "tasks.minipaas_api");
    assert_eq!(
        handler["load_balancing"]["retry_match"][0]["method"][0],
        "GET"
    );
    assert_eq!(
        routes[0].0,
        serde_json::json!([{"host": ["api.example.com"], "path": ["/api", "/api/*"]}])
    );
    assert_eq!(routes[1].1, "minipaas_web:80");
    assert_eq!(
        routes[1].0,
        serde_json::Value::Null,
        "`/` matches everything"
    );
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("caddy.json")).unwrap()).unwrap();
    let server = &json["apps"]["http"]["servers"]["minipaas"];
    assert_eq!(server["listen"], serde_json::json!([":8000"]));
    assert_eq!(
        server["automatic_https"]["skip"],
        serde_json::json!(["api.example.com"])
    );
    // Same host and path: replaced, not added.
    code_twice(
        dir,
        &["route", "http://api.example.com/api/", "api:9000"],
        &["updated compose.apps.yaml", "updated caddy.json"],
    );
    let routes = caddy_routes(dir);
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert_eq!(routes[0].1, "minipaas_api:9000");

    let apps = yaml(dir, "compose.apps.yaml");
    let web = &apps["services"]["api"];
    assert_eq!(web["deploy"]["replicas"], 2);
    assert_eq!(web["deploy"]["update_config"]["order"], "start-first");
    assert_eq!(web["deploy"]["update_config"]["failure_action"], "rollback");
    assert_eq!(web["deploy"]["rollback_config"]["order"], "start-first");
    let test = web["healthcheck"]["test"][1].as_str().unwrap();
    assert!(test.contains("http://127.0.0.1:9000/"), "{test}");

    code_twice(dir, &["worker", "worker"], &["updated compose.apps.yaml"]);
    code_twice(dir, &["job", "migrate"], &["updated compose.apps.yaml"]);
    code_twice(
        dir,
        &["cron", "report", "--cron", "*/5 * * * *"],
        &["updated compose.apps.yaml"],
    );
    let apps = yaml(dir, "compose.apps.yaml");
    let worker = &apps["services"]["worker"];
    assert_eq!(worker["deploy"]["replicas"], 1);
    assert_eq!(worker["deploy"]["update_config"]["order"], "start-first");
    assert!(worker.get("healthcheck").is_none());
    let job = &apps["services"]["migrate"]["deploy"];
    assert_eq!(job["mode"], "replicated-job");
    assert_eq!(job["restart_policy"]["condition"], "on-failure");
    assert_eq!(job["restart_policy"]["max_attempts"], 3);
    let cron = &apps["services"]["report"]["deploy"];
    assert_eq!(cron["mode"], "replicated");
    assert_eq!(cron["replicas"], 0);
    assert_eq!(cron["restart_policy"]["condition"], "none");
    assert_eq!(cron["labels"]["swarm.cronjob.enable"], "true");
    assert_eq!(cron["labels"]["swarm.cronjob.schedule"], "*/5 * * * *");
    assert_eq!(cron["labels"]["swarm.cronjob.skip-running"], "true");

    // Re-running init keeps everything recorded, byte for byte.
    let before = snapshot(dir);
    code_twice(dir, &["init", "-c", "compose.yaml"], &[]);
    assert_eq!(snapshot(dir), before);

    assert_eq!(
        fs::read_to_string(dir.join("compose.yaml")).unwrap(),
        COMPOSE
    );
}

#[test]
fn code_errors_name_the_file_or_service() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let fail = |args: &[&str]| {
        Mp::new()
            .arg("code")
            .args(args)
            .arg("--env")
            .arg(dir)
            .code(2)
            .run()
            .stderr
    };
    assert!(fail(&["worker", "x"]).contains("code init"));
    fs::write(dir.join("compose.yaml"), "services:\n  web: [oops\n").unwrap();
    let err = fail(&["init", "-c", "compose.yaml"]);
    assert!(
        err.contains("compose.yaml") && err.contains("line"),
        "{err}"
    );
    fs::write(dir.join("compose.yaml"), COMPOSE).unwrap();
    Mp::new()
        .args(["code", "init", "-c", "compose.yaml", "--env"])
        .arg(dir)
        .run();
    assert!(fail(&["worker", "nope"]).contains("`nope`"));
    assert!(fail(&["route", "/", "web:http"]).contains("web:http"));
    assert!(fail(&["cron", "report", "--cron", "daily"]).contains("daily"));
    let settings = fs::read_to_string(dir.join("minipaas.yaml")).unwrap();
    fs::write(dir.join("minipaas.yaml"), settings + "stak: typo\n").unwrap();
    let err = fail(&["worker", "worker"]);
    assert!(
        err.contains("minipaas.yaml") && err.contains("stak"),
        "{err}"
    );
}

/// Exit codes: 2 is input the user can fix before anything ran; a manager that cannot be
/// reached is a failure while acting (1), as a host failure is in `provision`.
#[test]
fn deploy_status_exits_1_when_the_manager_cannot_be_reached() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("compose.yaml"), COMPOSE).unwrap();
    env_with_unreachable_manager(dir);
    let stderr = in_env(dir).args(["deploy", "status"]).code(1).run().stderr;
    assert!(
        stderr.contains("host `manager1`: cannot connect to `127.0.0.1:1`")
            && !stderr.contains("host `manager1`: host"),
        "{stderr}"
    );
    // Bad input still exits 2: an inventory that is not there.
    in_env(dir)
        .args(["deploy", "status", "-i", "nope.yaml"])
        .code(2)
        .run();
}
