//! Data stays data and secrets stay secret, end to end on the site lab's swarm: values a user
//! hands to minipaas (secrets, configs, compose files) reach the running containers
//! byte-for-byte, never evaluated as templates; and nothing minipaas prints, records on the
//! swarm or leaves on a host shows a secret value.

use std::time::Duration;

use base64::Engine as _;

use crate::common::deploy::{deployed_example, mp, small_stack, stack_gone};
use crate::common::site::{provisioned, site_command};
use crate::common::wait_for;
use crate::common::{Lab, Mp, Ran};

/// What a user may well write in a value, and what a template engine would evaluate.
const TEMPLATE_LIKE: &str =
    "{{ 1 }} {% raw %} {{ get_env(name=\"HOME\") }} {{.Task.Name}} {{ 1 + 1 }}";
/// Only what renders: a value minipaas evaluated would come out as `v 2 /root`.
const RENDERABLE: &str = "v {{ 1 + 1 }} {{ get_env(name=\"HOME\") }}";

/// Runs `script` (sh) in the running task of `service` (`<stack>_<name>`) and returns what it
/// printed, base64-decoded: the script prints base64 so that every byte is compared.
fn in_task(lab: &Lab, service: &str, script: &str) -> Vec<u8> {
    let b64 = wait_for(
        &format!("a running task of `{service}`"),
        Duration::from_secs(120),
        || {
            let node = lab.ssh_ok(
            "node1",
            &format!(
                "docker service ps {service} --filter desired-state=running --format '{{{{.Node}}}} {{{{.CurrentState}}}}' \
                 | awk '$2 == \"Running\" {{print $1; exit}}'"
            ),
        );
            if node.is_empty() {
                return None;
            }
            let out = lab.ssh(
            &node,
            &format!(
                "c=$(docker ps -q --filter label=com.docker.swarm.service.name={service} | head -n 1); \
                 [ -n \"$c\" ] && docker exec \"$c\" sh -c {} | base64 -w0",
                shell_quote(script)
            ),
        );
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        },
    );
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A secret, a config and a compose file holding template-like text arrive in the running
/// container exactly as given: minipaas evaluates none of it (`{{ get_env(...) }}` would copy
/// the controller's environment into the cluster), and Swarm's own `{{.Task.Name}}` still
/// reaches Swarm, which expands it.
#[test]
fn lab_data_reaches_running_containers_byte_for_byte() {
    let (_guard, _, lab) = provisioned();
    // The example's image on every node.
    let _ex = deployed_example(&lab);
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path();
    let stack = "mpdata";
    let compose = format!(
        "services:\n  reader:\n    image: example-app:1\n    command: [\"sleep\", \"infinity\"]\n    \
         hostname: \"{{{{.Task.Name}}}}\"\n    labels:\n      \
         minipaas.test.all: {all}\n      minipaas.test.renderable: {renderable}\n",
        all = serde_json::to_string(TEMPLATE_LIKE).unwrap(),
        renderable = serde_json::to_string(RENDERABLE).unwrap(),
    );
    small_stack(&lab, env, stack, &compose, &["reader"]);
    let values = [
        ("secret", "data_all", TEMPLATE_LIKE.to_string() + "\n"),
        ("secret", "data_renderable", RENDERABLE.to_string()),
        ("config", "conf_all", TEMPLATE_LIKE.to_string()),
        ("config", "conf_renderable", RENDERABLE.to_string() + "\n"),
    ];
    for (kind, name, value) in &values {
        let file = dir.path().join(name);
        std::fs::write(&file, value).unwrap();
        mp(
            env,
            &[
                kind,
                "create",
                name,
                file.to_str().unwrap(),
                "--for",
                "reader",
            ],
        );
    }
    mp(env, &["deploy", "rollout", "--timeout", "180"]);
    let service = format!("{stack}_reader");
    for (kind, name, value) in &values {
        let path = match *kind {
            "secret" => format!("/run/secrets/{name}"),
            _ => format!("/{name}"),
        };
        let got = in_task(&lab, &service, &format!("cat {path}"));
        assert_eq!(
            String::from_utf8_lossy(&got),
            value.as_str(),
            "{kind} `{name}` in the container"
        );
    }
    let labels = in_task(&lab, &service, "hostname");
    let hostname = String::from_utf8_lossy(&labels).trim().to_string();
    assert!(
        hostname.starts_with(&format!("{service}.1.")),
        "Swarm expands its own template in the hostname: {hostname}"
    );
    let node = lab.ssh_ok(
        "node1",
        &format!("docker service ps {service} --filter desired-state=running --format '{{{{.Node}}}}' | head -n 1"),
    );
    let labels = lab.ssh_ok(
        &node,
        &format!(
            "docker inspect --format '{{{{json .Config.Labels}}}}' $(docker ps -q --filter label=com.docker.swarm.service.name={service} | head -n 1)"
        ),
    );
    let labels: serde_json::Value = serde_json::from_str(&labels).unwrap();
    assert_eq!(labels["minipaas.test.all"], TEMPLATE_LIKE, "{labels}");
    assert_eq!(labels["minipaas.test.renderable"], RENDERABLE, "{labels}");
    stack_gone(&lab, stack);
}

/// The forms a value takes in output: as is, JSON-escaped, shell-quoted, base64.
fn forms(value: &str) -> Vec<(&'static str, String)> {
    vec![
        ("plain", value.to_string()),
        (
            "json",
            serde_json::to_string(value)
                .unwrap()
                .trim_matches('"')
                .to_string(),
        ),
        ("quoted", shell_quote(value)),
        (
            "base64",
            base64::engine::general_purpose::STANDARD.encode(value),
        ),
    ]
}

/// Everything minipaas printed, and where it came from.
#[derive(Default)]
struct Transcript(Vec<(String, String)>);

impl Transcript {
    /// Runs minipaas, keeps its stdout and stderr under `what`; it must succeed.
    fn run(&mut self, what: &str, mp: Mp) -> Ran {
        let ran = mp.any_code().run();
        self.0.push((what.to_string(), ran.text()));
        assert_eq!(ran.code, Some(0), "{what}: {}", ran.text());
        ran
    }

    fn keep(&mut self, what: &str, content: String) {
        self.0.push((what.to_string(), content));
    }

    /// Every canary form found: (canary, form, where, the text around it).
    fn leaks(&self, canaries: &[(&str, String)]) -> Vec<String> {
        let mut found = Vec::new();
        for (name, value) in canaries {
            for (form, f) in forms(value) {
                for (what, content) in &self.0 {
                    if let Some(at) = content.find(&f) {
                        let start = content[..at]
                            .char_indices()
                            .rev()
                            .nth(80)
                            .map_or(0, |c| c.0);
                        let end = (at + f.len() + 40).min(content.len());
                        let end = (end..=content.len())
                            .find(|&e| content.is_char_boundary(e))
                            .unwrap_or(content.len());
                        found.push(format!(
                            "{name} ({form}) in {what}: …{}…",
                            &content[start..end]
                        ));
                    }
                }
            }
        }
        found
    }
}

/// No secret value minipaas handles shows anywhere a person or another program can read it:
/// not in the output of provisioning (human and JSON, `--diff`, `-v`, `--check`), of the deploy
/// commands, in the history and objects minipaas keeps on the swarm, nor in files it leaves in
/// /tmp on the hosts. Every kind of secret gets a distinctive canary: a Telegram token (set,
/// then rotated away: the old one is in the old files), a nested `db.password` play var, a
/// value registered from a host, a TLS private key, the swarm join tokens, a PostgreSQL
/// password and an app secret.
#[test]
fn lab_no_secret_value_leaks_in_output_on_the_swarm_or_on_hosts() {
    let (_guard, site, lab) = provisioned();
    // The example's image on every node.
    let _ex = deployed_example(&lab);
    let id = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 0xffff_ffff
    );
    let tg = format!("424242:CanaryTg{id}x");
    let nested = format!("canary-nested-{id}");
    let registered = format!("canary-registered-{id}");
    let pg = format!("canary-pg-{id}");
    let app = format!("canary-app-{id}'\"$x");
    let mut t = Transcript::default();
    let dir = tempfile::tempdir().unwrap();

    // The node role with a Telegram token, again with nothing to do, then back without one
    // (its old value is in the `-` lines of every diff of the files that held it).
    let node3 = lab.node("node3").private_address.clone();
    let telegram = [
        format!("monitoring_telegram_token={tg}"),
        "monitoring_telegram_chat_id=4242".to_string(),
        format!("monitoring_telegram_api_url=http://{node3}:8001"),
    ];
    for (what, flags) in [
        ("site with token", &["--diff", "-v"][..]),
        (
            "site with token, json",
            &["--diff", "-v", "--format", "json"][..],
        ),
    ] {
        let mut cmd = site_command(site, &lab).args(flags);
        for e in &telegram {
            cmd = cmd.args(["-e", e]);
        }
        t.run(what, cmd);
    }
    for (what, flags) in [
        (
            "site token removed, check",
            &["--check", "--diff", "-v"][..],
        ),
        ("site token removed", &["--diff", "-v"][..]),
    ] {
        t.run(what, site_command(site, &lab).args(flags));
    }

    // A plan of the user's: a nested secret var, a value registered from a host and used, a
    // TLS key, a command that fails printing a secret, a file with a secret removed.
    let key = dir.path().join("server-key.pem");
    crate::common::run_ok(
        std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "ed25519", "-out"])
            .arg(&key),
    );
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let key_body = key_pem
        .lines()
        .find(|l| !l.starts_with("-----"))
        .unwrap()
        .to_string();
    let base = "/opt/mpt-sweep";
    lab.ssh_ok(
        "node1",
        &format!(
            "rm -rf {base} && mkdir -p {base} && printf '%s\\n' {} > {base}/token && \
             printf 'password=%s\\n' {} > {base}/old.conf",
            shell_quote(&registered),
            shell_quote(&nested)
        ),
    );
    let plan = dir.path().join("sweep.yaml");
    std::fs::write(
        &plan,
        format!(
            "- name: sweep\n  hosts: node1\n  vars:\n    db: {{host: db.internal, password: {nested}}}\n  tasks:\n\
             \x20   - name: app config\n      copy: {{content: \"url=postgres://app:{{{{ db.password }}}}@db/app\\n\", dest: {base}/app.conf}}\n\
             \x20   - name: read the api token\n      command: cat {base}/token\n      register: api_token\n      changed_when: false\n\
             \x20   - name: token file\n      copy: {{content: \"{{{{ api_token.stdout }}}}\\n\", dest: {base}/token.conf}}\n\
             \x20   - name: tls key\n      copy: {{src: {key}, dest: {base}/server-key.pem, mode: \"0600\"}}\n\
             \x20   - name: a failing command that prints the token\n      command: \"sh -c 'echo {{{{ api_token.stdout }}}}; echo {{{{ db.password }}}} >&2; exit 3'\"\n      ignore_errors: true\n\
             \x20   - name: a secret command line\n      command: {{cmd: \"sh -c 'echo {{{{ db.password }}}} > {base}/nolog'\", creates: {base}/nolog}}\n      no_log: true\n\
             \x20   - name: old config gone\n      file: {{path: {base}/old.conf, state: absent}}\n",
            key = key.display(),
        ),
    )
    .unwrap();
    for (what, flags) in [
        ("plan, check", &["--check", "--diff", "-v"][..]),
        ("plan", &["--diff", "-v"][..]),
        (
            "plan again, json",
            &["--diff", "-v", "--format", "json"][..],
        ),
    ] {
        // The failing command is ignored: every run converges.
        t.run(
            what,
            Mp::new()
                .arg("provision")
                .arg("-i")
                .arg(&lab.inventory)
                .arg(&plan)
                .args(flags),
        );
    }
    // The plan did run: the values are where they belong.
    assert_eq!(
        lab.ssh_ok("node1", &format!("cat {base}/token.conf {base}/nolog")),
        format!("{registered}\n{nested}")
    );

    // A stack with a PostgreSQL password and an app secret.
    let env = dir.path().join("env");
    std::fs::create_dir_all(&env).unwrap();
    let stack = "mpsweep";
    small_stack(
        &lab,
        &env,
        stack,
        "services:\n  reader:\n    image: example-app:1\n    command: [\"sleep\", \"infinity\"]\n",
        &["reader"],
    );
    for (name, value) in [("postgres_password", &pg), ("app_secret", &app)] {
        let file = dir.path().join(name);
        std::fs::write(&file, value).unwrap();
        for format in ["human", "json"] {
            t.run(
                &format!("secret create {name} ({format})"),
                Mp::new().dir(&env).args([
                    "secret",
                    "create",
                    name,
                    file.to_str().unwrap(),
                    "--for",
                    "reader",
                    "-v",
                    "--format",
                    format,
                ]),
            );
        }
    }
    for args in [
        &["deploy", "rollout", "-v", "--timeout", "180"][..],
        &["deploy", "rollout", "-v", "--format", "json"][..],
        &["deploy", "status"][..],
        &["deploy", "status", "--format", "json"][..],
        &["deploy", "history"][..],
    ] {
        t.run(&args.join(" "), Mp::new().dir(&env).args(args));
    }
    let secret = in_task(
        &lab,
        &format!("{stack}_reader"),
        "cat /run/secrets/app_secret",
    );
    assert_eq!(
        String::from_utf8_lossy(&secret),
        app,
        "the secret is in use"
    );

    // What minipaas keeps on the swarm (history, configs) and leaves in the hosts' /tmp.
    t.keep(
        "the swarm's configs",
        lab.ssh_ok(
            "node1",
            "for c in $(docker config ls -q); do docker config inspect --format '{{.Spec.Name}} {{printf \"%s\" .Spec.Data}}' \"$c\"; done",
        ),
    );
    t.keep(
        "the stack's services",
        lab.ssh_ok(
            "node1",
            &format!("docker service inspect $(docker stack services -q {stack})"),
        ),
    );
    for n in &lab.nodes {
        t.keep(
            &format!("{}:/tmp", n.name),
            lab.ssh_ok(
                &n.name,
                "find /tmp -xdev -type f -size -10M -exec cat {} + 2>/dev/null || true",
            ),
        );
    }

    let worker_token = lab.ssh_ok("node1", "docker swarm join-token -q worker");
    let manager_token = lab.ssh_ok("node1", "docker swarm join-token -q manager");
    let canaries = [
        ("telegram token", tg),
        ("nested db.password", nested),
        ("registered value", registered),
        ("TLS key", key_body),
        ("swarm worker token", worker_token),
        ("swarm manager token", manager_token),
        ("PostgreSQL password", pg),
        ("app secret", app),
    ];
    let leaks = t.leaks(&canaries);
    let runs = t.0.len();
    assert!(
        leaks.is_empty(),
        "{} leak(s) in {runs} outputs:\n{}",
        leaks.len(),
        leaks.join("\n")
    );
    lab.ssh_ok("node1", &format!("rm -rf {base}"));
    stack_gone(&lab, stack);
}
