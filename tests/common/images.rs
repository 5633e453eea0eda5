//! Images the lab tests run, built on this machine's engine from a local Debian base (no
//! registry answers here).

use std::path::Path;
use std::time::Instant;

use super::docker;

pub(crate) const BASE: &str = "minipaas-base:trixie";
pub(crate) const POSTGRES_IMAGE: &str = "minipaas/postgres:17";
pub(crate) const CADDY_IMAGE: &str = "minipaas/caddy:2.6";

/// `docker ARGS...`, panicking with the engine's words unless it succeeded; returns stdout.
pub(crate) fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds `dir` (relative to the repository) as `tag` on the local base; returns the seconds taken.
pub(crate) fn build(tag: &str, dir: &str) -> f64 {
    let context = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let started = Instant::now();
    let context = context.to_str().unwrap();
    docker_ok(&[
        "build",
        "--quiet",
        "--build-arg",
        &format!("BASE={BASE}"),
        "--tag",
        tag,
        context,
    ]);
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("built `{tag}` from {dir} in {seconds:.1} s");
    seconds
}
