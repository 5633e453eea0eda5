//! From an installed binary to a real server: the node role (playbooks/site.yaml, its task files
//! and templates) is built into the binary, so `minipaas init` and
//! `minipaas provision -i inventory.yaml` work in any directory, and a user's own plans and
//! templates override the built-in ones in the documented order: a plan named on the command
//! line; `playbooks/site.yaml` and `templates/` beside the inventory; the built-in ones.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::common::{self, Mp, Ran};

/// An inventory whose one host refuses connections: plans and templates load (and fail, exit
/// 2) before any connection, so exit 1 (unreachable) says they loaded.
fn unreachable_inventory(dir: &Path) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("inventory.yaml"),
        format!(
            "groups:\n  managers:\n    hosts:\n      gone: {{address: 127.0.0.1, port: {port}}}\n"
        ),
    )
    .unwrap();
}

fn provision_in(dir: &Path, args: &[&str]) -> Ran {
    Mp::new()
        .dir(dir)
        .args([
            "provision",
            "-i",
            "inventory.yaml",
            "--connect-timeout",
            "2",
        ])
        .args(args)
        .any_code()
        .run()
}

/// Exit 1 and the host unreachable: everything loaded, then the connection failed.
fn loaded_then_unreachable(out: &Ran) {
    assert_eq!(out.code, Some(1), "{}", out.text());
}

#[test]
fn install_provision_loads_the_built_in_role_outside_a_checkout() {
    let d = tempfile::tempdir().unwrap();
    unreachable_inventory(d.path());
    loaded_then_unreachable(&provision_in(d.path(), &[]));
}

#[test]
fn install_override_order_plan_argument_then_beside_the_inventory_then_built_in() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    unreachable_inventory(dir);

    // templates/ beside the inventory wins over the built-in ones, name by name: a broken
    // firewall template of the user's own is what loads (and fails, naming it).
    std::fs::create_dir_all(dir.join("templates/firewall")).unwrap();
    std::fs::write(
        dir.join("templates/firewall/nftables.conf"),
        "ok\n{% if %}\n",
    )
    .unwrap();
    let out = provision_in(dir, &[]);
    let err = &out.stderr;
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(
        err.contains("template `firewall/nftables.conf` line 2"),
        "{err}"
    );
    std::fs::remove_dir_all(dir.join("templates")).unwrap();

    // playbooks/site.yaml beside the inventory wins over the built-in one; its imports are read
    // beside it (not from the built-in role): errors name the user's file and line.
    std::fs::create_dir_all(dir.join("playbooks/tasks")).unwrap();
    std::fs::write(
        dir.join("playbooks/site.yaml"),
        "- hosts: all\n  tasks:\n    - import_tasks: facts.yaml\n",
    )
    .unwrap();
    let out = provision_in(dir, &[]);
    let err = &out.stderr;
    assert_eq!(out.code, Some(2), "{}", out.text());
    assert!(
        err.contains("playbooks/site.yaml` line 3") && err.contains("`facts.yaml` not found"),
        "{err}"
    );
    std::fs::write(
        dir.join("playbooks/tasks/facts.yaml"),
        "- name: mine\n  debugg: {msg: hi}\n",
    )
    .unwrap();
    let out = provision_in(dir, &[]);
    let err = &out.stderr;
    assert!(
        err.contains("playbooks/tasks/facts.yaml` line 1") && err.contains("debugg"),
        "{err}"
    );

    // A plan named on the command line wins over both.
    std::fs::write(dir.join("mine.yaml"), "- hosts: all\n  tasks: []\n").unwrap();
    loaded_then_unreachable(&provision_in(dir, &["mine.yaml"]));

    // Without the user's site.yaml, the built-in one again.
    std::fs::remove_file(dir.join("playbooks/site.yaml")).unwrap();
    loaded_then_unreachable(&provision_in(dir, &[]));
}

#[test]
fn install_init_writes_starters_then_skips_what_exists() {
    let d = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| Mp::new().dir(d.path()).arg("init").args(args).run().stdout;
    let first = run(&["cluster"]);
    assert!(first.contains("created cluster/inventory.yaml"), "{first}");
    assert!(
        first.contains("created cluster/group_vars/all.yaml"),
        "{first}"
    );
    let cluster = d.path().join("cluster");
    let all = std::fs::read_to_string(cluster.join("group_vars/all.yaml")).unwrap();
    assert!(all.contains("# docker_source: \"distro\"\n"), "{all}");

    let second = run(&["cluster", "--playbooks"]);
    assert!(
        second.contains("skipped cluster/inventory.yaml (exists")
            && second.contains("skipped cluster/group_vars/all.yaml (exists"),
        "{second}"
    );
    assert!(
        second.contains("created cluster/playbooks/site.yaml")
            && second.contains("created cluster/templates/firewall/nftables.conf"),
        "{second}"
    );
    // The written role is the built-in one, byte for byte; provision now reads it from there.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        std::fs::read(cluster.join("playbooks/tasks/firewall.yaml")).unwrap(),
        std::fs::read(root.join("playbooks/tasks/firewall.yaml")).unwrap()
    );
    std::fs::write(
        cluster.join("playbooks/site.yaml"),
        "- hosts: all\n  taks: []\n",
    )
    .unwrap();
    unreachable_inventory(&cluster);
    let out = provision_in(&cluster, &[]);
    assert!(out.stderr.contains("taks"), "{}", out.text());
}

pub(crate) mod lab {
    //! The proof: the built binary, copied alone into an empty directory outside the checkout,
    //! provisions a lab of its own (node1 manager, node2 worker) with `minipaas provision -i
    //! inventory.yaml` and no other argument, twice, the second run changing nothing.

    use super::*;
    use crate::common::with_status;

    use crate::common::site::{
        release_tarball, serve_mirror, sha256_hex, SERVE_PORT, STANDIN, TARBALL,
    };

    /// `mpinstall`, or `MINIPAAS_TEST_LAB` with `-install`, so two checkouts test side by side.
    fn name() -> String {
        match std::env::var("MINIPAAS_TEST_LAB") {
            Ok(shared) => format!("{shared}-install"),
            Err(_) => "mpinstall".into(),
        }
    }

    /// Takes the lab down when the test ends, passed or not, unless
    /// `MINIPAAS_TEST_KEEP_INSTALL_LAB` is set (to look at the nodes after a failure).
    struct Down(common::Lab);

    impl Drop for Down {
        fn drop(&mut self) {
            if std::env::var_os("MINIPAAS_TEST_KEEP_INSTALL_LAB").is_none() {
                self.0.down();
            }
        }
    }

    #[test]
    fn lab_install_binary_alone_provisions_from_an_empty_directory() {
        let started = Instant::now();
        let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("install-work");
        let lab = Down(common::lab_up(&name(), 2, 1, &work));
        let lab = &lab.0;
        let up = started.elapsed();

        // The mirror: a stand-in release (tarball and checksums.txt) over HTTP from node2.
        let mirror = tempfile::tempdir().unwrap();
        let tarball = release_tarball(STANDIN);
        std::fs::create_dir(mirror.path().join("v1.14.0")).unwrap();
        std::fs::write(
            mirror.path().join("v1.14.0/checksums.txt"),
            format!("{} *{TARBALL}\n", sha256_hex(&tarball)),
        )
        .unwrap();
        std::fs::write(mirror.path().join("v1.14.0").join(TARBALL), tarball).unwrap();
        serve_mirror(lab, "node2", mirror.path());
        let node2 = lab.node("node2");

        // The user's directory: the binary, an inventory and group_vars, nothing else.
        let home = tempfile::tempdir().unwrap();
        let home = home.path();
        assert!(
            !home.starts_with(env!("CARGO_MANIFEST_DIR")),
            "{} is inside the checkout",
            home.display()
        );
        let bin = home.join("minipaas");
        std::fs::copy(env!("CARGO_BIN_EXE_minipaas"), &bin).unwrap();
        let mut inventory: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&lab.inventory).unwrap()).unwrap();
        inventory["all"]["key"] = lab.key.display().to_string().into();
        inventory["all"]["known_hosts"] = lab.known_hosts.display().to_string().into();
        std::fs::write(
            home.join("inventory.yaml"),
            serde_yaml::to_string(&inventory).unwrap(),
        )
        .unwrap();
        std::fs::create_dir_all(home.join("group_vars")).unwrap();
        std::fs::write(
            home.join("group_vars/all.yaml"),
            format!(
                "swarm_cronjob_url: http://{}:{SERVE_PORT}/v1.14.0/{TARBALL}\n\
                 minipaas_extra_ports: [{SERVE_PORT}]\n",
                node2.private_address
            ),
        )
        .unwrap();
        let provision = || {
            let t = Instant::now();
            let out = Mp::program(&bin)
                .dir(home)
                .args(["provision", "-i", "inventory.yaml", "--format", "json"])
                .any_code()
                .run();
            (out, t.elapsed())
        };

        let (first, first_took) = provision();
        let first_recap = first.json();
        assert_eq!(
            first.code,
            Some(0),
            "{:#?}\n{}",
            with_status(&first_recap, "failed"),
            first.stderr
        );
        // Every task came from the built-in role, named as such.
        let tasks = first_recap["tasks"].as_array().unwrap();
        assert!(
            tasks
                .iter()
                .filter(|t| t["handler"] != true)
                .all(|t| t["at"].as_str().unwrap_or("").contains(" (built in) line ")),
            "{tasks:#?}"
        );
        let (second, second_took) = provision();
        let second_recap = second.json();
        assert_eq!(second.code, Some(0), "{}", second.text());
        let changed = with_status(&second_recap, "changed");
        assert!(changed.is_empty(), "second run changed: {changed:#?}");

        // A swarm of two, and swarm-cronjob from the mirror on the manager.
        let ready = lab.ssh_ok("node1", "docker node ls --format '{{.Status}}'");
        assert_eq!(ready, "Ready\nReady");
        lab.ssh_ok(
            "node1",
            "systemctl is-active swarm-cronjob && grep -q stand-in /usr/local/bin/swarm-cronjob",
        );
        eprintln!(
            "lab_install: lab up {up:.1?}, first provision {first_took:.1?}, second \
             {second_took:.1?}, total {:.1?}",
            started.elapsed()
        );
    }
}
