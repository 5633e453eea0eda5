//! The deploy side on the site lab: `minipaas` run in an env dir, the example app deployed
//! through Caddy, small stacks of the tests' own, and their removal.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::images::{self, BASE, CADDY_IMAGE, POSTGRES_IMAGE};
use super::site::sha256_hex;
use super::{wait_for, Lab, Mp, Ran};

pub(crate) const STACK: &str = "minipaas";

/// minipaas in `dir` (an env dir, or where its work goes), its images built from the local
/// Debian base.
pub(crate) fn in_env(dir: &Path) -> Mp {
    Mp::new().dir(dir).env("MINIPAAS_BASE_IMAGE", BASE)
}

/// Runs minipaas in `dir`, whatever its exit.
pub(crate) fn mp_run(dir: &Path, args: &[&str]) -> Ran {
    in_env(dir).args(args).any_code().run()
}

/// Runs minipaas in `dir`; must succeed. Returns stdout + stderr.
pub(crate) fn mp(dir: &Path, args: &[&str]) -> String {
    in_env(dir).args(args).run().all()
}

/// An env in `dir` made by `code init` from `dir/compose.yaml` (written by the caller), whose
/// manager is port 1 of loopback: nothing listens there, so a connection is refused at once.
pub(crate) fn env_with_unreachable_manager(dir: &Path) {
    std::fs::write(
        dir.join("inventory.yaml"),
        "groups:\n  managers:\n    hosts:\n      manager1: {address: 127.0.0.1, port: 1}\n",
    )
    .unwrap();
    mp(
        dir,
        &[
            "code",
            "init",
            "-c",
            "compose.yaml",
            "--inventory",
            "inventory.yaml",
        ],
    );
}

/// Runs an engine-backed command with `--format json`; must succeed. Returns the changed tasks.
pub(crate) fn mp_json(dir: &Path, args: &[&str]) -> Vec<String> {
    let recap = in_env(dir)
        .args(args)
        .args(["--format", "json"])
        .run()
        .json();
    super::changed(&recap)
}

/// An HTTP GET through Caddy on node1's published port, with the route's host.
pub(crate) fn get(lab: &Lab, path: &str) -> Option<String> {
    let addr = format!("{}:8000", lab.node("node1").private_address);
    let out = Command::new("curl")
        .args(["-fsS", "-m", "5", "-H", "Host: localhost"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn sha12(value: &str) -> String {
    sha256_hex(value.as_bytes())[..12].to_string()
}

/// The stack and its secrets from an earlier run gone, so this run proves a first deploy.
pub(crate) fn remove_stack(lab: &Lab) {
    stack_gone(lab, STACK);
    lab.ssh_ok(
        "node1",
        &format!(
            "docker secret ls -q --filter label=minipaas.stack={STACK} | xargs -r docker secret rm >/dev/null; \
             docker config ls -q --filter label=minipaas.history={STACK} | xargs -r docker config rm >/dev/null; \
             docker config ls -q --filter label=minipaas.deployed={STACK} | xargs -r docker config rm >/dev/null; \
             rm -rf /var/lib/minipaas/stacks/{STACK}"
        ),
    );
    // And its volumes (PostgreSQL keeps the password of its first start; Caddy's config
    // volume keeps the routes it resumes with), and the app's image, so that shipping it is
    // proven. A Docker restart can leave exited task containers that the swarm no longer
    // tracks and never removes; they hold the volumes, so they go first.
    for n in &lab.nodes {
        lab.ssh_ok(
            &n.name,
            &format!(
                "docker ps -aq --filter label=com.docker.stack.namespace={STACK} | xargs -r docker rm -f >/dev/null; \
                 docker volume ls -q --filter label=com.docker.stack.namespace={STACK} | xargs -r docker volume rm >/dev/null; \
                 left=$(docker volume ls -q --filter label=com.docker.stack.namespace={STACK}); \
                 [ -z \"$left\" ] || {{ echo \"volumes left: $left\" >&2; exit 1; }}; \
                 docker image rm -f example-app:1 >/dev/null 2>&1; true"
            ),
        );
    }
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "__pycache__" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// Removes `stack` from the swarm and waits until its network is gone and none of its
/// containers runs on node1 (a deploy while they go fails).
pub(crate) fn stack_gone(lab: &Lab, stack: &str) {
    lab.ssh_ok(
        "node1",
        &format!(
            "docker stack rm {stack} >/dev/null 2>&1; \
             for i in $(seq 60); do [ -z \"$(docker network ls -q --filter label=com.docker.stack.namespace={stack})\" ] \
               && [ -z \"$(docker ps -q --filter label=com.docker.stack.namespace={stack})\" ] && break; sleep 1; done; true"
        ),
    );
}

/// A stack of its own in `env` (no Caddy, no PostgreSQL) from `compose`, `services` made
/// workers (the caller gives the others their roles).
pub(crate) fn small_stack(lab: &Lab, env: &Path, stack: &str, compose: &str, services: &[&str]) {
    stack_gone(lab, stack);
    std::fs::write(env.join("compose.yaml"), compose).unwrap();
    let inventory = lab.inventory.display().to_string();
    mp(
        env,
        &[
            "code",
            "init",
            "-c",
            "compose.yaml",
            "--stack",
            stack,
            "--inventory",
            &inventory,
            "--endpoint-mode",
            "dnsrr",
        ],
    );
    let path = env.join("minipaas.yaml");
    let mut settings: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    settings["runtime"]["caddy"] = false.into();
    settings["runtime"]["postgres"] = false.into();
    std::fs::write(&path, serde_yaml::to_string(&settings).unwrap()).unwrap();
    mp(env, &["code", "init"]);
    if !services.is_empty() {
        let mut worker = vec!["code", "worker"];
        worker.extend(services);
        mp(env, &worker);
    }
}

/// The example app copied into `work/app` with its env `work/app/deploy` made by `code init`
/// for `lab`, and the images it needs on this machine (no registry: a local Debian base and
/// the runtime's images). Returns the app's directory.
pub(crate) fn init_example(lab: &Lab, work: &Path) -> PathBuf {
    mp(Path::new("."), &["lab", "base-image"]);
    images::build(POSTGRES_IMAGE, "runtime/postgres");
    images::build(CADDY_IMAGE, "runtime/caddy");
    let app = work.join("app");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/app"),
        &app,
    );
    // The demo's env, when scripts/demo ran here, is not part of the example.
    let _ = std::fs::remove_dir_all(app.join("demo"));
    let inventory = lab.inventory.display().to_string();
    mp(
        &app,
        &[
            "code",
            "init",
            "--env",
            "deploy",
            "-c",
            "../compose.yaml",
            "--inventory",
            &inventory,
            "--endpoint-mode",
            "dnsrr",
            "--caddy-image",
            CADDY_IMAGE,
            "--postgres-image",
            POSTGRES_IMAGE,
        ],
    );
    app
}

/// The example app as the deploy test sets it up (web, worker, migrate job, cleanup cron; the
/// runtime's Caddy and PostgreSQL; its secrets), built, rolled out and routed, in a fresh
/// temporary directory. Over a stack that runs already this changes little.
pub(crate) struct Example {
    pub(crate) _work: tempfile::TempDir,
    /// The env directory.
    pub(crate) env: PathBuf,
}

pub(crate) fn deployed_example(lab: &Lab) -> Example {
    let work = tempfile::tempdir().unwrap();
    let env = init_example(lab, work.path()).join("deploy");
    mp(&env, &["code", "route", "http://localhost/", "web:8000"]);
    mp(&env, &["code", "worker", "worker"]);
    mp(&env, &["code", "job", "migrate"]);
    // Daily, so that no run starts while a test counts tasks.
    mp(&env, &["code", "cron", "cleanup", "--cron", "0 3 * * *"]);
    let values = work.path().join("values");
    std::fs::create_dir_all(&values).unwrap();
    std::fs::write(values.join("pg"), "pg-password-1").unwrap();
    std::fs::write(values.join("app"), "app-secret-one").unwrap();
    let (pg, app_secret) = (values.join("pg"), values.join("app"));
    let (pg, app_secret) = (pg.to_str().unwrap(), app_secret.to_str().unwrap());
    let mut create_pg = vec!["secret", "create", "postgres_password", pg, "--for"];
    create_pg.extend(["postgres", "web", "worker", "migrate", "cleanup"]);
    // PostgreSQL keeps the password of its volume's first start: a stack left with another
    // password goes first.
    let mut check_pg = create_pg.clone();
    check_pg.push("--check");
    if !mp_json(&env, &check_pg).is_empty() {
        remove_stack(lab);
    }
    mp(&env, &create_pg);
    mp(
        &env,
        &["secret", "create", "app_secret", app_secret, "--for", "web"],
    );
    mp(&env, &["deploy", "build"]);
    mp(&env, &["deploy", "rollout", "--timeout", "300"]);
    mp(&env, &["deploy", "routing"]);
    wait_for("the app through Caddy", Duration::from_secs(60), || {
        get(lab, "/")
    });
    Example { _work: work, env }
}

/// `deploy.version` of the env in `env` set to `version` (what a new release changes).
pub(crate) fn set_version(env: &Path, version: &str) {
    let path = env.join("minipaas.yaml");
    let mut settings: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    settings["deploy"]["version"] = version.into();
    std::fs::write(&path, serde_yaml::to_string(&settings).unwrap()).unwrap();
}
