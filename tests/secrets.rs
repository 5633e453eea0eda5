//! Data stays data and secrets stay secret, end to end on the site lab's swarm: values a user
//! hands to minipaas (secrets, configs, compose files) reach the running containers
//! byte-for-byte, never evaluated as templates; and nothing minipaas prints, records on the
//! swarm or leaves on a host shows a secret value.

use std::path::Path;
use std::process::Output;

use base64::Engine as _;

use crate::common::{minipaas, Lab};
use crate::deploy::{deployed_example, mp, text, wait_for};
use crate::site::lab::provisioned;

/// What a user may well write in a value, and what a template engine would evaluate.
const TEMPLATE_LIKE: &str =
    "{{ 1 }} {% raw %} {{ get_env(name=\"HOME\") }} {{.Task.Name}} {{ 1 + 1 }}";
/// Only what renders: a value minipaas evaluated would come out as `v 2 /root`.
const RENDERABLE: &str = "v {{ 1 + 1 }} {{ get_env(name=\"HOME\") }}";

/// Removes `stack` from the swarm and waits until its network and containers are gone (a
/// deploy while they go fails).
fn remove_stack(lab: &Lab, stack: &str) {
    lab.ssh_ok(
        "node1",
        &format!(
            "docker stack rm {stack} >/dev/null 2>&1; \
             for i in $(seq 60); do [ -z \"$(docker network ls -q --filter label=com.docker.stack.namespace={stack})\" ] \
               && [ -z \"$(docker ps -aq --filter label=com.docker.stack.namespace={stack})\" ] && break; sleep 1; done; true"
        ),
    );
}

/// A stack of its own in `env` (no Caddy, no PostgreSQL) from `compose`, its services workers.
fn small_stack(lab: &Lab, env: &Path, stack: &str, compose: &str, services: &[&str]) {
    remove_stack(lab, stack);
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
    let mut worker = vec!["code", "worker"];
    worker.extend(services);
    mp(env, &worker);
}

/// Runs `script` (sh) in the running task of `service` (`<stack>_<name>`) and returns what it
/// printed, base64-decoded: the script prints base64 so that every byte is compared.
fn in_task(lab: &Lab, service: &str, script: &str) -> Vec<u8> {
    let b64 = wait_for(&format!("a running task of `{service}`"), 120, || {
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
    });
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
            &[kind, "create", name, file.to_str().unwrap(), "--for", "reader"],
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
    remove_stack(&lab, stack);
}

/// Every way minipaas output reaches a person: stdout and stderr of each run.
fn all_output(out: &Output) -> String {
    text(out)
}

#[allow(dead_code)]
fn run_in(dir: &Path, args: &[&str]) -> Output {
    minipaas().current_dir(dir).args(args).output().unwrap()
}
