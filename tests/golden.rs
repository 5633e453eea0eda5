//! Golden files for every template under templates/: each is rendered through
//! `minipaas::template::Templates` with the role defaults of playbooks/tasks/defaults.yaml plus
//! a few representative hosts, and compared byte for byte with tests/golden/. Rendered configs
//! are also handed to the real tools that will read them on a node: `nft -c -f` for the
//! firewall, `syslog-ng --syntax-only` for logging, `caddy validate` for the Caddyfile,
//! `fail2ban-client --test` for the jails, `sh -n` for the monitor script.
//!
//! `MINIPAAS_BLESS=1 cargo test golden` rewrites the golden files on purpose; review the diff.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use minipaas::template::{render_value, Templates};
use serde_json::{json, Map, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn templates() -> Templates {
    Templates::load(&[root().join("templates").into()]).expect("templates load")
}

/// What the engine derives from the inventory for a host.
fn host(name: &str, manager: bool, main: bool) -> Map<String, Value> {
    let v = json!({
        "inventory_hostname": name,
        "ansible_host": "127.0.0.1",
        "private_address": "10.0.0.11",
        "group_names": [if manager { "managers" } else { "workers" }],
        "is_manager": manager,
        "is_main_manager": main,
        "is_worker": !manager,
        "main_manager": "manager1",
        "main_manager_address": "10.0.0.11",
        "os_id": "debian",
        "os_codename": "bookworm",
        "os_version": "12",
        "dpkg_arch": "amd64",
        "groups": {
            "all": ["manager1", "worker1", "worker2"],
            "managers": ["manager1"],
            "workers": ["worker1", "worker2"],
        },
        "hostvars": {
            "manager1": {"private_address": "10.0.0.11"},
            "worker1": {"private_address": "10.0.0.12"},
            "worker2": {"private_address": "2001:db8::12"},
        },
    });
    v.as_object().cloned().unwrap_or_default()
}

/// Applies the `set_fact` tasks of playbooks/tasks/defaults.yaml in order, as the engine does:
/// the plan's real defaults, so a template that needs a variable the defaults lack fails here.
fn with_defaults(mut vars: Map<String, Value>) -> Value {
    let text = std::fs::read_to_string(root().join("playbooks/tasks/defaults.yaml")).unwrap();
    let tasks: Vec<Map<String, Value>> = serde_yaml::from_str(&text).unwrap();
    for task in tasks {
        let Some(Value::Object(facts)) = task.get("set_fact") else {
            continue;
        };
        let when = task.get("when").and_then(Value::as_str);
        let snapshot = Value::Object(vars.clone());
        if let Some(w) = when {
            if !minipaas::template::eval_bool(&json!(w), &snapshot).unwrap() {
                continue;
            }
        }
        for (k, v) in facts {
            let r = render_value(v, &snapshot).unwrap_or_else(|e| panic!("default `{k}`: {e}"));
            vars.insert(k.clone(), r);
        }
    }
    Value::Object(vars)
}

fn worker() -> Value {
    with_defaults(host("worker1", false, false))
}

/// The main manager with everything on: TLS API, Telegram, extra ports, the runtime.
fn main_manager() -> Value {
    let mut v = host("manager1", true, true);
    let extra = json!({
        "docker_tls_dir": "/home/ops/certs/manager1",
        "minipaas_extra_ports": [5432, "8000-8100/tcp", "53/udp"],
        "firewall_allowed_tcp_ports": [9100],
        "firewall_allowed_udp_ports": [51820],
        "firewall_extra_rules": ["ip saddr 192.0.2.0/24 drop"],
        "firewall_ssh_sources": ["192.0.2.0/24", "2001:db8::/32"],
        "monitoring_telegram_token": "123456:test-token",
        "monitoring_telegram_chat_id": "-1001234",
        "monitoring_telegram_api_url": "http://127.0.0.1:8081",
        "deploy_runtime_stack": true,
        "caddy_email": "ops@example.org",
        "fail2ban_ignoreip": ["10.0.0.0/8"],
        "docker_source": "docker-ce",
        "syslog_ng_config_version": "3.38",
    });
    v.extend(extra.as_object().cloned().unwrap_or_default());
    with_defaults(v)
}

fn plain(v: Value) -> Value {
    let mut v = v;
    v["syslog_ng_config_version"] = json!("3.38");
    // Debian 12's default is docker-ce: the distro's Docker is asked for.
    v["docker_source"] = json!("distro");
    v
}

/// (template, case, vars): every template, with the cases that change what it renders.
fn cases() -> Vec<(&'static str, &'static str, Value)> {
    let w = plain(worker());
    let m = main_manager();
    vec![
        ("firewall/minipaas.nft", "worker", w.clone()),
        ("firewall/minipaas.nft", "main-manager", m.clone()),
        ("firewall/nftables.conf", "any", w.clone()),
        ("firewall/nftables-service.conf", "any", w.clone()),
        ("syslog/syslog-ng.conf", "no-telegram", w.clone()),
        ("syslog/syslog-ng.conf", "telegram", m.clone()),
        ("docker/daemon.json", "worker", w.clone()),
        ("docker/daemon.json", "tls", m.clone()),
        ("docker/docker.service.conf", "distro", w.clone()),
        ("docker/docker.service.conf", "docker-ce", m.clone()),
        ("docker/docker.list", "docker-ce", m.clone()),
        ("fail2ban/minipaas.local", "defaults", w.clone()),
        ("fail2ban/minipaas.local", "ignoreip", m.clone()),
        ("monitoring/minipaas-monitor", "worker", w.clone()),
        ("monitoring/minipaas-monitor", "manager", m.clone()),
        ("monitoring/telegram.secrets", "telegram", m.clone()),
        ("monitoring/minipaas-monitor.service", "any", w.clone()),
        ("monitoring/minipaas-monitor.timer", "any", w.clone()),
        ("caddy/Caddyfile", "no-email", w.clone()),
        ("caddy/Caddyfile", "email", m.clone()),
        ("swarm-cronjob/swarm-cronjob.service", "main-manager", m),
    ]
}

fn golden_path(template: &str, case: &str) -> PathBuf {
    root()
        .join("tests/golden")
        .join(format!("{}.{case}", template.replace('/', "__")))
}

fn render(template: &str, vars: &Value) -> String {
    templates()
        .render(template, vars)
        .unwrap_or_else(|e| panic!("{template}: {e}"))
}

#[test]
fn every_template_matches_its_golden_file() {
    let bless = std::env::var("MINIPAAS_BLESS").is_ok_and(|v| v == "1");
    let mut mismatches = Vec::new();
    for (template, case, vars) in cases() {
        let got = render(template, &vars);
        let path = golden_path(template, case);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
            panic!(
                "golden file `{}` missing: run `MINIPAAS_BLESS=1 cargo test golden`",
                path.display()
            )
        });
        if got != want {
            mismatches.push(format!(
                "{template} ({case}) differs from {}:\n{}",
                path.display(),
                similar::TextDiff::from_lines(&want, &got)
                    .unified_diff()
                    .header("golden", "rendered")
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\nif the change is intended: MINIPAAS_BLESS=1 cargo test golden",
        mismatches.join("\n")
    );
}

#[test]
fn every_template_has_a_golden_case() {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let dir = root().join("templates");
    let mut all = BTreeSet::new();
    walk(&dir, &dir, &mut all);
    let covered: BTreeSet<String> = cases().iter().map(|(t, _, _)| t.to_string()).collect();
    let missing: Vec<&String> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "templates without golden cases: {missing:?}"
    );
}

#[test]
fn docker_log_tag_is_literal_and_json_is_valid() {
    for vars in [plain(worker()), main_manager()] {
        let text = render("docker/daemon.json", &vars);
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
        assert_eq!(v["log-opts"]["tag"], "minipaas-{{.Name}}");
        assert_eq!(v["log-opts"]["syslog-address"], "udp://127.0.0.1:514");
        assert_eq!(v["insecure-registries"], json!(["registry:5000"]));
    }
    // More log options join minipaas's own, as strings (daemon.json takes no other kind),
    // each key and value JSON-quoted.
    let mut more = plain(worker());
    more["docker_log_options"] = json!({"syslog-facility": "local0", "a\"b": 5});
    let text = render("docker/daemon.json", &more);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
    assert_eq!(v["log-opts"]["syslog-facility"], "local0");
    assert_eq!(v["log-opts"]["a\"b"], "5");
    assert_eq!(v["log-opts"]["tag"], "minipaas-{{.Name}}");
    let tls: Value = serde_json::from_str(&render("docker/daemon.json", &main_manager())).unwrap();
    assert_eq!(
        tls["hosts"],
        json!(["tcp://0.0.0.0:2376", "unix:///var/run/docker.sock"])
    );
    assert_eq!(tls["tlsverify"], true);
    let dropin = render("docker/docker.service.conf", &plain(worker()));
    let exec: Vec<&str> = dropin
        .lines()
        .filter(|l| l.starts_with("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 2, "{dropin}");
    assert_eq!(exec[0], "ExecStart=", "the packaged ExecStart is reset");
    assert!(!exec[1].contains(" -H"), "{dropin}");
}

/// Runs `tool args...` (with `{}` replaced by `file`), failing with what to install when the
/// tool is missing.
fn run_tool(tool: &str, args: &[&str], file: &Path, install: &str) -> std::process::Output {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("{}", &file.to_string_lossy()))
        .collect();
    Command::new(tool)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{tool}` ({e}): install it with `{install}`"))
}

fn assert_tool_accepts(tool: &str, args: &[&str], text: &str, install: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config");
    std::fs::write(&file, text).unwrap();
    let out = run_tool(tool, args, &file, install);
    assert!(
        out.status.success(),
        "`{tool} {args:?}` rejected:\n{text}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nft_accepts_the_firewall() {
    let dir = tempfile::tempdir().unwrap();
    for vars in [plain(worker()), main_manager()] {
        let rules = render("firewall/minipaas.nft", &vars);
        assert!(!rules.lines().any(|l| l.trim_start().starts_with("flush")));
        assert_tool_accepts(
            "nft",
            &["-c", "-f", "{}"],
            &rules,
            "apt-get install nftables",
        );
        // nftables.conf includes the confirmed ruleset: check it with the include resolved.
        let confirmed = dir.path().join("confirmed.nft");
        std::fs::write(&confirmed, &rules).unwrap();
        let conf = render("firewall/nftables.conf", &vars).replace(
            "/etc/minipaas/firewall/confirmed.nft",
            &confirmed.to_string_lossy(),
        );
        assert!(!conf.lines().any(|l| l.trim_start().starts_with("flush")));
        assert_tool_accepts(
            "nft",
            &["-c", "-f", "{}"],
            &conf,
            "apt-get install nftables",
        );
    }
    // The checker is not a rubber stamp: a typo in an extra rule is refused.
    let mut bad = plain(worker());
    bad["firewall_extra_rules"] = json!(["tcp dprot 22 drop"]);
    let dir2 = tempfile::tempdir().unwrap();
    let file = dir2.path().join("bad.nft");
    std::fs::write(&file, render("firewall/minipaas.nft", &bad)).unwrap();
    let out = run_tool(
        "nft",
        &["-c", "-f", "{}"],
        &file,
        "apt-get install nftables",
    );
    assert!(!out.status.success(), "nft accepted a broken rule");
}

#[test]
fn syslog_ng_accepts_its_config() {
    for vars in [plain(worker()), main_manager()] {
        let conf = render("syslog/syslog-ng.conf", &vars);
        assert_tool_accepts(
            "syslog-ng",
            &["--syntax-only", "-f", "{}"],
            &conf,
            "apt-get install syslog-ng-core syslog-ng-scl syslog-ng-mod-http",
        );
    }
    let with = render("syslog/syslog-ng.conf", &main_manager());
    assert!(with.contains("d_telegram") && with.contains("throttle(1)"));
    let without = render("syslog/syslog-ng.conf", &plain(worker()));
    assert!(!without.contains("d_telegram"), "{without}");
}

#[test]
fn caddy_accepts_the_caddyfile() {
    for vars in [plain(worker()), main_manager()] {
        let conf = render("caddy/Caddyfile", &vars);
        assert_tool_accepts(
            "caddy",
            &["validate", "--adapter", "caddyfile", "--config", "{}"],
            &conf,
            "apt-get install caddy",
        );
    }
}

#[test]
fn fail2ban_accepts_the_jails() {
    for vars in [plain(worker()), main_manager()] {
        let jail = render("fail2ban/minipaas.local", &vars);
        // A copy of the packaged configuration with our jail file added, tested as a whole.
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("fail2ban");
        let st = Command::new("cp")
            .args(["-a", "/etc/fail2ban"])
            .arg(&conf)
            .status()
            .unwrap();
        assert!(st.success(), "install fail2ban: `apt-get install fail2ban`");
        std::fs::write(conf.join("jail.d/minipaas.local"), &jail).unwrap();
        let out = Command::new("fail2ban-client")
            .arg("-c")
            .arg(&conf)
            .arg("--test")
            .output()
            .expect("fail2ban-client: `apt-get install fail2ban python3-systemd`");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "fail2ban refused:\n{jail}\n{all}");
        // The dump of the effective configuration has the sshd jail on the journal.
        let dump = Command::new("fail2ban-client")
            .arg("-c")
            .arg(&conf)
            .arg("-d")
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout);
        assert!(dump.contains("['add', 'sshd', 'systemd']"), "{dump}");
    }
}

#[test]
fn monitor_script_parses_in_sh() {
    for vars in [plain(worker()), main_manager()] {
        let script = render("monitoring/minipaas-monitor", &vars);
        assert_tool_accepts("sh", &["-n", "{}"], &script, "dash");
        assert!(script.contains("CPU_MAX=80") && script.contains("RAM_MAX=70"));
        assert!(script.contains("DISK_MAX=90"));
    }
}

#[test]
fn telegram_secrets_are_shell_quoted() {
    let mut v = main_manager();
    v["monitoring_telegram_token"] = json!("12:ab'c; rm -rf /");
    let text = render("monitoring/telegram.secrets", &v);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {}; printf %s \"$TELEGRAM_TOKEN\"",
            file.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "12:ab'c; rm -rf /");
}
