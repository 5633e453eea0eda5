//! The site lab (`mpsite`: node1 manager, node2/node3 workers), converged by
//! playbooks/site.yaml, which the site, firewall, deploy, release, day-2 and secrets tests run
//! on: not the shared lab, since these tests change firewalls and restart nodes. One test at a
//! time holds it ([`provisioned`]). The first provisioning installs Docker, syslog-ng and friends
//! from Debian's mirror on every node (several minutes); later runs reuse the converged lab.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::{Lab, Mp};
use crate::common;

/// The stand-in swarm-cronjob release: a script that sleeps, in the release's tar layout
/// (`./swarm-cronjob` beside `./LICENSE`).
pub(crate) const STANDIN: &str =
    "#!/bin/sh\n# stand-in for swarm-cronjob in minipaas tests\nexec sleep infinity\n";
/// What a tampered mirror serves instead.
pub(crate) const TAMPERED: &str = "#!/bin/sh\n# tampered swarm-cronjob\nexec sleep infinity\n";
/// Where node3 serves the mirror; also the extra port the firewall must open.
pub(crate) const SERVE_PORT: u16 = 8000;
/// The release's file name for the lab's nodes (amd64).
pub(crate) const TARBALL: &str = "swarm-cronjob_1.14.0_linux_amd64.tar.gz";

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lab's name: `mpsite`, or MINIPAAS_TEST_SITE_LAB so two checkouts on one machine
/// can each have their own.
pub(crate) fn name() -> String {
    std::env::var("MINIPAAS_TEST_SITE_LAB").unwrap_or_else(|_| "mpsite".into())
}

/// One test at a time on this lab: they change its firewall and restart its nodes.
pub(crate) fn serial() -> std::sync::MutexGuard<'static, ()> {
    static M: Mutex<()> = Mutex::new(());
    M.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Site {
    pub(crate) sha256: String,
}

/// The lab as it is now: `lab up` is idempotent and rewrites the inventory, whose SSH
/// ports change when a node container restarts.
pub(crate) fn lab() -> Lab {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("site-work");
    common::lab_up(&name(), 3, 1, &dir)
}

/// A release tarball as swarm-cronjob's release builds it (`tar -czf ... .`), holding
/// `script` as the binary; returns its bytes.
pub(crate) fn release_tarball(script: &str) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let content = tmp.path().join("content");
    std::fs::create_dir(&content).unwrap();
    std::fs::write(content.join("swarm-cronjob"), script).unwrap();
    std::fs::write(content.join("LICENSE"), "MIT\n").unwrap();
    common::run_ok(
        std::process::Command::new("tar")
            .args([
                "--owner=0",
                "--group=0",
                "--mode=0755",
                "--mtime=2020-01-01",
                "--sort=name",
            ])
            .arg("-czf")
            .arg(tmp.path().join("release.tar.gz"))
            .arg("-C")
            .arg(&content)
            .arg("."),
    );
    std::fs::read(tmp.path().join("release.tar.gz")).unwrap()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// The lab with a mirror of stand-in releases served over HTTP from node3 (a systemd unit,
/// so it comes back after a restart), each directory a release as GitHub serves it: the
/// tarball and `checksums.txt` (`sha256sum -b`, as swarm-cronjob's release writes it).
/// `v1.14.0/`: the stand-in and its sum. `tampered/`: another binary under the stand-in's
/// name, with the stand-in's sum. `unlisted/`: the stand-in, its checksums file listing
/// only other files.
pub(crate) fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let lab = lab();
        let tarball = release_tarball(STANDIN);
        let sha256 = sha256_hex(&tarball);
        let other = "swarm-cronjob_1.14.0_linux_arm64.tar.gz";
        let listed = format!("{} *{other}\n{sha256} *{TARBALL}\n", "1".repeat(64));
        let mirror = tempfile::tempdir().unwrap();
        for (dir, bytes, sums) in [
            ("v1.14.0", tarball.clone(), listed.clone()),
            ("tampered", release_tarball(TAMPERED), listed),
            (
                "unlisted",
                tarball,
                format!("{} *{other}\n", "1".repeat(64)),
            ),
        ] {
            let d = mirror.path().join(dir);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join(TARBALL), bytes).unwrap();
            std::fs::write(d.join("checksums.txt"), sums).unwrap();
        }
        serve_mirror(&lab, "node3", mirror.path());
        Site { sha256 }
    })
}

/// Serves the files of `mirror` over HTTP from `node` of `lab` (/srv/standin, port
/// [`SERVE_PORT`]; a systemd unit, so it comes back after a restart).
pub(crate) fn serve_mirror(lab: &Lab, node: &str, mirror: &Path) {
    let container = lab.node(node).container.clone();
    let st = common::docker(&["exec", &container, "mkdir", "-p", "/srv/standin"]);
    assert!(st.status.success(), "{}", common::text(&st));
    let cp = common::docker(&[
        "cp",
        &format!("{}/.", mirror.display()),
        &format!("{container}:/srv/standin/"),
    ]);
    assert!(cp.status.success(), "{}", common::text(&cp));
    lab.ssh_ok(
        node,
        &format!(
            "systemctl is-active --quiet minipaas-test-http || \
             systemd-run --unit minipaas-test-http -p Restart=always \
             python3 -m http.server {SERVE_PORT} --directory /srv/standin"
        ),
    );
}

/// The URL of the stand-in tarball in `dir` of the mirror.
pub(crate) fn mirror_url(lab: &Lab, dir: &str) -> String {
    format!(
        "http://{}:{SERVE_PORT}/{dir}/{TARBALL}",
        lab.node("node3").private_address
    )
}

/// The site lab converged by site.yaml, held for the caller alone (every test here starts
/// from it; tests of other features, such as deploy, run on the cluster it builds).
pub(crate) fn provisioned() -> (std::sync::MutexGuard<'static, ()>, &'static Site, Lab) {
    let guard = serial();
    let site = site();
    let lab = lab();
    converge(site, &lab, &[]);
    (guard, site, lab)
}

/// `minipaas provision` of playbooks/site.yaml on the site lab with the lab's usual -e
/// values; the caller adds its flags and values (later `-e` values win).
/// swarm-cronjob comes from the mirror's `v1.14.0/`, verified by its checksums file (no
/// `swarm_cronjob_sha256_*`: the default path).
pub(crate) fn site_command(_site: &Site, lab: &Lab) -> Mp {
    let url = format!("swarm_cronjob_url={}", mirror_url(lab, "v1.14.0"));
    Mp::new()
        .dir(&lab.dir)
        .arg("provision")
        .arg("-i")
        .arg(&lab.inventory)
        .arg(root().join("playbooks/site.yaml"))
        .arg("--templates")
        .arg(root().join("templates"))
        .args(["-e", &url])
        .args(["-e", &format!("minipaas_extra_ports=[{SERVE_PORT}]")])
}

/// `minipaas provision` of playbooks/site.yaml on the site lab with `extra` -e values;
/// returns the exit code and the JSON recap.
pub(crate) fn provision(site: &Site, lab: &Lab, flags: &[&str], extra: &[String]) -> (i32, Value) {
    let mut cmd = site_command(site, lab)
        .args(["--format", "json"])
        .args(flags)
        .any_code();
    for e in extra {
        cmd = cmd.args(["-e", e]);
    }
    let ran = cmd.run();
    (ran.code.unwrap_or(-1), ran.json())
}

pub(crate) use super::{changed, failures};

/// Converged: a run that succeeds. Returns the recap.
pub(crate) fn converge(site: &Site, lab: &Lab, flags: &[&str]) -> Value {
    let (code, recap) = provision(site, lab, flags, &[]);
    assert_eq!(
        code,
        0,
        "provision failed: {:#?}\n{recap:#}",
        failures(&recap)
    );
    recap
}

/// A one-binary image on `node`: busybox-static from Debian's mirror (no image can be
/// pulled), with a page to serve.
pub(crate) fn busybox_image(lab: &Lab, node: &str) {
    lab.ssh_ok(
        node,
        "docker image inspect minipaas-test-busybox >/dev/null 2>&1 || { \
         (dpkg -s busybox-static >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q busybox-static >/dev/null) && \
         d=$(mktemp -d) && mkdir -p $d/bin $d/www && cp /bin/busybox $d/bin/ && echo hello > $d/www/index.html && \
         tar -C $d -c . | docker import - minipaas-test-busybox >/dev/null; }",
    );
}
