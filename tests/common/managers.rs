//! The three-manager lab (`mproll`, or `MINIPAAS_TEST_ROLL_LAB`): node1-node3 managers, node4 a
//! worker, provisioned by playbooks/site.yaml. Its tests run one at a time ([`lab`] holds a
//! lock); the last of them to pass removes it ([`passed`]): four nodes running Docker slow the
//! rest of the suite. A failed test keeps it to look at.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use super::{failures, site, Lab, Mp};

/// How many tests use the lab: [`passed`] removes it when all of them passed.
const TESTS: usize = 2;
static PASSED: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn lab() -> (MutexGuard<'static, ()>, Lab) {
    static M: Mutex<()> = Mutex::new(());
    let guard = M.lock().unwrap_or_else(|e| e.into_inner());
    (guard, up())
}

/// [`lab`], provisioned with `facility` as Docker's syslog facility, and the busybox image
/// the tests' services run on every node (no registry).
pub(crate) fn provisioned(facility: &str) -> (MutexGuard<'static, ()>, Lab) {
    let (guard, lab) = lab();
    provision(&lab, facility, &[]);
    for n in &lab.nodes {
        site::busybox_image(&lab, &n.name);
    }
    (guard, lab)
}

/// `lab up` of the lab: it starts what is stopped and writes the inventory again (a node
/// container started again publishes its SSH port on a new loopback port).
pub(crate) fn up() -> Lab {
    let name = std::env::var("MINIPAAS_TEST_ROLL_LAB").unwrap_or_else(|_| "mproll".into());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("roll-work");
    super::lab_up(&name, 4, 3, &dir)
}

/// Called at the end of each of the lab's tests.
pub(crate) fn passed(lab: &Lab) {
    if PASSED.fetch_add(1, Ordering::SeqCst) + 1 == TESTS {
        lab.down();
    }
}

/// playbooks/site.yaml on the lab with `facility` as Docker's syslog facility (swarm-cronjob,
/// which needs a release mirror, is left out: these tests are about the swarm), with `flags`;
/// must succeed. The JSON recap.
pub(crate) fn provision(lab: &Lab, facility: &str, flags: &[&str]) -> serde_json::Value {
    provision_with(lab, &lab.inventory, facility, flags)
}

/// [`provision`] with another inventory of the lab's nodes.
pub(crate) fn provision_with(
    lab: &Lab,
    inventory: &Path,
    facility: &str,
    flags: &[&str],
) -> serde_json::Value {
    let root = site::root();
    let ran = Mp::new()
        .dir(&lab.dir)
        .arg("provision")
        .arg("-i")
        .arg(inventory)
        .arg(root.join("playbooks/site.yaml"))
        .arg("--templates")
        .arg(root.join("templates"))
        .args(["--skip-tags", "swarm-cronjob", "--format", "json"])
        .args([
            "-e",
            &format!("docker_log_options={{syslog-facility: {facility}}}"),
        ])
        .args(flags)
        .any_code()
        .run();
    let recap = ran.json();
    assert_eq!(ran.code, Some(0), "{:#?}\n{}", failures(&recap), ran.stderr);
    recap
}

/// A copy of the lab's inventory beside it (`NAME-SUFFIX.yaml`, so its relative key paths
/// hold) with each `(host, var, value)` added to the host's `vars`; its path.
pub(crate) fn inventory_with(
    lab: &Lab,
    suffix: &str,
    vars: &[(&str, &str, serde_yaml::Value)],
) -> std::path::PathBuf {
    let mut inv: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&lab.inventory).unwrap()).unwrap();
    for (host, k, v) in vars {
        for group in ["managers", "workers"] {
            if let Some(h) = inv["groups"][group]["hosts"].get_mut(*host) {
                h["vars"][*k] = v.clone();
            }
        }
    }
    let stem = lab.inventory.file_stem().unwrap().to_str().unwrap();
    let path = lab
        .inventory
        .with_file_name(format!("{stem}-{suffix}.yaml"));
    std::fs::write(&path, serde_yaml::to_string(&inv).unwrap()).unwrap();
    path
}
