//! The runtime images (`runtime/postgres`, `runtime/caddy`) and the example app
//! (`examples/app`), built on the local Docker engine from `minipaas lab base-image` and run as
//! real containers on a network of their own: PostgreSQL takes its password from a secret file,
//! the app migrates and serves, Caddy loads a route through its admin API from inside its
//! container and proxies to the app, and keeps that route across a restart.
//!
//! Everything this module creates is named `mpimg-*` (plus the image tags below) and is removed
//! at the end and at the start, in case an earlier run was interrupted. Traffic goes only to
//! 127.0.0.1 (ports published there) and between the test's own containers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::images::{build, docker_ok, BASE, CADDY_IMAGE, POSTGRES_IMAGE};
use crate::common::{docker, Mp};

const APP_IMAGE: &str = "minipaas/example-app:test";

const NETWORK: &str = "mpimg-net";
const POSTGRES: &str = "mpimg-postgres";
const WEB: &str = "mpimg-web";
const CADDY: &str = "mpimg-caddy";
const MIGRATE: &str = "mpimg-migrate";

/// Removes this module's containers (with their anonymous volumes) and network.
fn remove_all() {
    for c in [CADDY, WEB, MIGRATE, POSTGRES] {
        docker(&["rm", "--force", "--volumes", c]);
    }
    docker(&["network", "rm", NETWORK]);
}

/// Cleans up when the test ends, passed or panicked.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_all();
    }
}

/// The 127.0.0.1 port Docker published for `container`'s `port`.
fn published_port(container: &str, port: &str) -> u16 {
    let out = docker_ok(&["port", container, port]);
    let line = out
        .lines()
        .find(|l| l.starts_with("127.0.0.1:"))
        .unwrap_or_else(|| panic!("`{container}` publishes {port} on: {out}"));
    line.rsplit(':').next().unwrap().parse().unwrap()
}

/// A plain HTTP/1.1 GET to 127.0.0.1:`port`; returns status and body, or None when nothing
/// answers (yet).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Polls `GET path` until it answers 200 or `seconds` pass; panics with `container`'s log.
fn get_ok_within(port: u16, path: &str, seconds: u64, container: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut last = None;
    while Instant::now() < deadline {
        match get(port, path) {
            Some((200, body)) => return body,
            other => last = other,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs = docker(&["logs", "--tail", "30", container]);
    panic!(
        "GET 127.0.0.1:{port}{path} did not answer 200 within {seconds} s (last: {last:?}); \
         `{container}` logs:\n{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
}

fn visits(port: u16) -> u64 {
    let body = get_ok_within(port, "/visits", 10, WEB);
    body.trim()
        .parse()
        .unwrap_or_else(|_| panic!("/visits answered {body:?}"))
}

/// A file readable by the containers' unprivileged users (Swarm mounts secrets 0444 too).
fn secret_file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    path.to_str().unwrap().to_string()
}

/// Caddy's configuration for the test: port 80 reverse-proxied to the web container.
const CADDY_CONFIG: &str = r#"{
  "apps": {
    "http": {
      "servers": {
        "web": {
          "listen": [":80"],
          "automatic_https": { "disable": true },
          "routes": [
            { "handle": [ { "handler": "reverse_proxy", "upstreams": [ { "dial": "mpimg-web:8000" } ] } ] }
          ]
        }
      }
    }
  }
}"#;

/// `docker exec -i CADDY curl ... localhost:2019/load` with the config on stdin, as minipaas
/// does it; returns whether curl succeeded and what it printed.
fn load_caddy_config(config: &str) -> (bool, String) {
    let mut child = Command::new("docker")
        .args([
            "exec",
            "-i",
            CADDY,
            "curl",
            "-sS",
            "--fail-with-body",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
            "localhost:2019/load",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn lab_images_build_from_the_local_base_and_serve_the_example_app() {
    remove_all();
    let _cleanup = Cleanup;

    // The base image: built when missing, then a no-op.
    Mp::new().args(["lab", "base-image"]).run();
    let again = Mp::new()
        .args(["lab", "base-image", "--release", "trixie"])
        .run()
        .stdout;
    assert!(
        again.contains("nothing to do"),
        "second run printed: {again}"
    );
    assert_eq!(
        docker_ok(&["image", "inspect", "--format", "{{json .Config.Cmd}}", BASE]),
        r#"["bash"]"#
    );

    let took: f64 = [
        build(POSTGRES_IMAGE, "runtime/postgres"),
        build(CADDY_IMAGE, "runtime/caddy"),
        build(APP_IMAGE, "examples/app"),
    ]
    .iter()
    .sum();
    eprintln!("image builds took {took:.1} s in all");

    let secrets = tempfile::tempdir().unwrap();
    let password = format!("pw-{}-{}", std::process::id(), rand_suffix());
    let pw_file = secret_file(secrets.path(), "postgres_password", &password);
    let app_secret = format!("app-secret-{}", rand_suffix());
    let app_secret_file = secret_file(secrets.path(), "app_secret", &app_secret);
    let pw_mount = format!("{pw_file}:/run/secrets/postgres_password:ro");
    let app_secret_mount = format!("{app_secret_file}:/run/secrets/app_secret:ro");

    docker_ok(&["network", "create", NETWORK]);
    docker_ok(&[
        "run",
        "--detach",
        "--name",
        POSTGRES,
        "--network",
        NETWORK,
        "--network-alias",
        "postgres",
        "--volume",
        &pw_mount,
        "--env",
        "POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password",
        POSTGRES_IMAGE,
    ]);

    // migrate waits for PostgreSQL itself (initdb takes a few seconds), then exits 0.
    let migrated = docker(&[
        "run",
        "--name",
        MIGRATE,
        "--network",
        NETWORK,
        "--volume",
        &pw_mount,
        APP_IMAGE,
        "python3",
        "/app/app.py",
        "migrate",
    ]);
    let migrate_log = format!(
        "{}{}",
        String::from_utf8_lossy(&migrated.stdout),
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(migrated.status.success(), "migrate failed:\n{migrate_log}");
    assert!(
        migrate_log.lines().any(|l| l == "migrated"),
        "{migrate_log}"
    );
    let postgres_log = docker(&["logs", POSTGRES]);
    assert!(
        !String::from_utf8_lossy(&postgres_log.stdout).contains(&password)
            && !String::from_utf8_lossy(&postgres_log.stderr).contains(&password),
        "the postgres log shows the password"
    );

    docker_ok(&[
        "run",
        "--detach",
        "--name",
        WEB,
        "--network",
        NETWORK,
        "--volume",
        &pw_mount,
        "--volume",
        &app_secret_mount,
        "--env",
        "MINIPAAS_DEPLOY_VERSION=v-test-7",
        "--publish",
        "127.0.0.1::8000",
        APP_IMAGE,
    ]);
    let web_port = published_port(WEB, "8000");
    let hello = "hello from minipaas example (version v-test-7)\n";
    assert_eq!(get_ok_within(web_port, "/", 60, WEB), hello);
    assert_eq!(get_ok_within(web_port, "/healthz", 5, WEB), "ok");
    let digest = hex::encode(Sha256::digest(app_secret.as_bytes()));
    assert_eq!(
        get_ok_within(web_port, "/secret-digest", 5, WEB),
        format!("{}\n", &digest[..12])
    );
    let before = visits(web_port);
    assert!(before >= 1, "the first GET / was not counted");
    get_ok_within(web_port, "/", 5, WEB);
    get_ok_within(web_port, "/", 5, WEB);
    assert_eq!(visits(web_port), before + 2);

    docker_ok(&[
        "run",
        "--detach",
        "--name",
        CADDY,
        "--network",
        NETWORK,
        "--publish",
        "127.0.0.1::80",
        CADDY_IMAGE,
    ]);
    let caddy_port = published_port(CADDY, "80");
    // The admin API comes up a moment after the container starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = load_caddy_config(CADDY_CONFIG);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "caddy's admin API refused the config: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(get_ok_within(caddy_port, "/", 30, CADDY), hello);

    // --resume: a restarted Caddy serves the autosaved route without a new load.
    docker_ok(&["restart", CADDY]);
    let caddy_port = published_port(CADDY, "80");
    assert_eq!(get_ok_within(caddy_port, "/", 30, CADDY), hello);

    // Docker's stop signal (SIGINT, fast shutdown) stops PostgreSQL cleanly.
    docker_ok(&["stop", POSTGRES]);
    assert_eq!(
        docker_ok(&["inspect", "--format", "{{.State.ExitCode}}", POSTGRES]),
        "0"
    );
    let log = docker(&["logs", "--tail", "5", POSTGRES]);
    assert!(
        String::from_utf8_lossy(&log.stderr).contains("database system is shut down"),
        "{}",
        String::from_utf8_lossy(&log.stderr)
    );
    // The app still answers `/` while the database is away.
    assert_eq!(get_ok_within(web_port, "/", 30, WEB), hello);
}

/// A few characters that differ between runs, so a leaked secret cannot match by accident.
fn rand_suffix() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}
