//! Shared test helpers: the `minipaas` command builder and the shared lab fixture.
//!
//! [`lab()`] brings up ONE lab named `mptest` (3 nodes, `node1` a manager, `node2`/`node3`
//! workers; `MINIPAAS_TEST_LAB` names it otherwise, so two checkouts can test side by side) once
//! per test process, in a stable directory under `target/tmp/lab-work`, and
//! leaves it running at the end so the next run reuses it (`lab up` is idempotent). Tests that
//! use it are named `lab_*` and fail, never skip, when no Docker engine answers. Each test owns
//! the files and services it creates on the nodes and must not break the nodes for others
//! (no reboots, no sshd or firewall changes that lock out 127.0.0.1).
//!
//! Tear the shared lab down by hand with
//! `cd target/tmp/lab-work && minipaas lab down --name mptest`, or call [`Lab::down`].

// Helpers for every feature's tests; each test module uses only some of them.
#![allow(dead_code)]

pub(crate) mod deploy;
pub(crate) mod images;
pub(crate) mod managers;
pub(crate) mod pg;
pub(crate) mod site;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The shared lab's name: `mptest`, or `MINIPAAS_TEST_LAB`.
pub fn shared_lab_name() -> String {
    std::env::var("MINIPAAS_TEST_LAB").unwrap_or_else(|_| "mptest".into())
}

/// One run of the minipaas under test, built and then run, as casey/just's tests build a
/// `Test`: `Mp::new().dir(env).args(["deploy", "status"]).code(1).run()`. Every test runs
/// minipaas through it. `run` insists on the exit code (0 unless [`Mp::code`] or
/// [`Mp::any_code`] says otherwise), naming the command and its output when it differs.
pub struct Mp {
    cmd: Command,
    code: Option<i32>,
}

impl Default for Mp {
    fn default() -> Self {
        Mp::new()
    }
}

impl Mp {
    /// The binary under test, stdin closed, in the test's working directory.
    pub fn new() -> Mp {
        Mp::program(env!("CARGO_BIN_EXE_minipaas"))
    }

    /// A copy of the binary elsewhere (the install test runs one outside the checkout).
    pub fn program(path: impl AsRef<OsStr>) -> Mp {
        let mut cmd = Command::new(path);
        cmd.stdin(Stdio::null());
        Mp { cmd, code: Some(0) }
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Mp {
        self.cmd.current_dir(dir);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Mp {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Mp
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Mp {
        self.cmd.env(key, value);
        self
    }

    /// The exit code the run must end with.
    pub fn code(mut self, code: i32) -> Mp {
        self.code = Some(code);
        self
    }

    /// Any exit code will do: the caller looks at [`Ran::code`] itself.
    pub fn any_code(mut self) -> Mp {
        self.code = None;
        self
    }

    /// The command itself, for a test that spawns it (and kills or streams it).
    pub fn command(self) -> Command {
        self.cmd
    }

    pub fn run(mut self) -> Ran {
        let output = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", self.cmd));
        let ran = Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        if let Some(want) = self.code {
            assert_eq!(
                ran.code,
                Some(want),
                "{:?} exited {:?}, not {want}:\n{}",
                self.cmd,
                ran.code,
                ran.text()
            );
        }
        ran
    }
}

/// What one run of minipaas printed, and its exit code.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// stdout then stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The exit code and both streams, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// stdout as JSON (`--format json`).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.text()))
    }
}

/// Runs `cmd` (another program than minipaas, which runs through [`Mp`]), panics with its
/// output unless it succeeded, returns its stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's exit code, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The tasks of a JSON recap (`--format json`) with `status` (`changed`, `failed`, ...).
pub fn with_status<'a>(recap: &'a serde_json::Value, status: &str) -> Vec<&'a serde_json::Value> {
    recap["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["status"] == status)
        .collect()
}

/// `host: task` of each changed task of a JSON recap.
pub fn changed(recap: &serde_json::Value) -> Vec<String> {
    with_status(recap, "changed")
        .iter()
        .map(|t| format!("{}: {}", t["host"], t["task"]))
        .collect()
}

/// `host: task: message` of each failed task of a JSON recap.
pub fn failures(recap: &serde_json::Value) -> Vec<String> {
    with_status(recap, "failed")
        .iter()
        .map(|t| format!("{}: {}: {}", t["host"], t["task"], t["message"]))
        .collect()
}

/// `docker ARGS...`; panics when the docker command cannot run at all.
pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `docker` ({e}): install it with `apt-get install docker.io`")
        })
}

/// One node of a lab, read back from the inventory `lab up` wrote.
#[derive(Debug, Clone)]
pub struct LabNode {
    /// `node1`, `node2`, ...: the inventory host name and the node's hostname.
    pub name: String,
    /// The container: `mptest-node1`.
    pub container: String,
    /// The SSH port published on 127.0.0.1.
    pub ssh_port: u16,
    /// The node's address on the lab network.
    pub private_address: String,
    /// `managers` or `workers`.
    pub group: String,
}

/// A lab that is up, with absolute paths to its files.
#[derive(Debug, Clone)]
pub struct Lab {
    pub name: String,
    /// The directory `lab up` ran in (holds `inventories/` and `.minipaas/`).
    pub dir: PathBuf,
    /// `DIR/inventories/NAME.yaml`
    pub inventory: PathBuf,
    /// `DIR/.minipaas/lab/NAME/id_ed25519`
    pub key: PathBuf,
    /// `DIR/.minipaas/lab/NAME/known_hosts`
    pub known_hosts: PathBuf,
    /// In node order: `node1` first.
    pub nodes: Vec<LabNode>,
    /// What `lab up` printed.
    pub up_stdout: String,
}

/// The shared lab (3 nodes, 1 manager), brought up once per test process.
pub fn lab() -> &'static Lab {
    static SHARED: OnceLock<Lab> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lab-work");
        lab_up(&shared_lab_name(), 3, 1, &dir)
    })
}

/// Brings up lab `name` with `nodes` nodes (the first `managers` managers) from directory
/// `dir` (created when missing) and returns it; panics with minipaas's output on failure.
/// For tests that need their own nodes; they should [`Lab::down`] them when done.
pub fn lab_up(name: &str, nodes: usize, managers: usize, dir: &Path) -> Lab {
    std::fs::create_dir_all(dir).unwrap();
    let up_stdout = Mp::new()
        .dir(dir)
        .args(["lab", "up", "--name", name])
        .args(["--nodes", &nodes.to_string()])
        .args(["--managers", &managers.to_string()])
        .run()
        .stdout;
    let dir = dir.canonicalize().unwrap();
    let inventory = dir.join("inventories").join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&inventory)
        .unwrap_or_else(|e| panic!("no inventory at {}: {e}", inventory.display()));
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let relative = |key: &str| -> PathBuf {
        let p = yaml["all"][key].as_str().unwrap();
        inventory.parent().unwrap().join(p)
    };
    let (key, known_hosts) = (relative("key"), relative("known_hosts"));
    let mut found = Vec::new();
    for group in ["managers", "workers"] {
        if let Some(hosts) = yaml["groups"][group]["hosts"].as_mapping() {
            for (host, vars) in hosts {
                let host = host.as_str().unwrap().to_string();
                found.push(LabNode {
                    container: format!("{name}-{host}"),
                    ssh_port: vars["port"].as_u64().unwrap() as u16,
                    private_address: vars["private_address"].as_str().unwrap().to_string(),
                    group: group.to_string(),
                    name: host,
                });
            }
        }
    }
    found.sort_by_key(|n| n.name[4..].parse::<usize>().unwrap());
    assert_eq!(
        found.len(),
        nodes,
        "inventory {}:\n{text}",
        inventory.display()
    );
    Lab {
        name: name.to_string(),
        dir,
        inventory,
        key,
        known_hosts,
        nodes: found,
        up_stdout,
    }
}

impl Lab {
    /// The node called `name` (`node1`, ...); panics when there is none.
    pub fn node(&self, name: &str) -> &LabNode {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("lab `{}` has no node `{name}`", self.name))
    }

    /// The system `ssh` to root on `node` with the lab key and strict host-key checking
    /// against the lab's known_hosts only; append the remote command with `.arg(...)`.
    pub fn ssh_command(&self, node: &str) -> Command {
        let port = self.node(node).ssh_port;
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg("/dev/null")
            .arg("-i")
            .arg(&self.key)
            .args(["-p", &port.to_string()])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
            .arg("root@127.0.0.1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `command` (a shell command line) as root on `node` over strict SSH.
    pub fn ssh(&self, node: &str, command: &str) -> Output {
        self.ssh_command(node)
            .arg(command)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `ssh` ({e}): install it with `apt-get install openssh-client`")
            })
    }

    /// Copies the local file `from` to `to` on `node` (into its container, not over SSH: no
    /// firewall or sshd setting of a test can get in the way).
    pub fn copy_in(&self, node: &str, from: &Path, to: &str) {
        let dest = format!("{}:{to}", self.node(node).container);
        let cp = docker(&["cp", from.to_str().unwrap(), &dest]);
        assert!(cp.status.success(), "docker cp to {dest}: {}", text(&cp));
    }

    /// Writes `content` to `to` on `node`.
    pub fn put(&self, node: &str, content: &[u8], to: &str) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), content).unwrap();
        self.copy_in(node, file.path(), to);
    }

    /// Like [`Lab::ssh`], but panics with the output unless the command succeeded; returns its
    /// stdout trimmed.
    pub fn ssh_ok(&self, node: &str, command: &str) -> String {
        let out = self.ssh(node, command);
        assert!(
            out.status.success(),
            "`{command}` on `{node}` of lab `{}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `minipaas lab down --name NAME` from the lab's directory; returns what it printed.
    pub fn down(&self) -> String {
        Mp::new()
            .dir(&self.dir)
            .args(["lab", "down", "--name", &self.name])
            .run()
            .stdout
    }
}

/// Polls `f` every 2 s until it gives a value, for at most `timeout`; returns the value.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} ({} s)",
            timeout.as_secs()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// [`wait_for`] a condition.
pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    wait_for(what, timeout, || ok().then_some(()))
}
