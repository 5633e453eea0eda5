//! The variables a task sees on a host, lowest precedence first: inventory (all, group_vars,
//! group, host, host_vars), play vars, what earlier tasks registered or set, extra vars (`-e`).
//! Plus names derived from the inventory, as the original role had them.

use serde_json::{json, Map, Value};

use crate::inventory::{Host, Inventory};
use crate::plan::Play;
use crate::template;

/// `groups`: group name -> member host names.
pub fn groups_value(inv: &Inventory) -> Value {
    Value::Object(
        inv.groups
            .iter()
            .map(|(g, hosts)| {
                (
                    g.clone(),
                    Value::Array(hosts.iter().map(|h| Value::String(h.0.clone())).collect()),
                )
            })
            .collect(),
    )
}

/// `hostvars`: per host its addresses, groups and facts (registered results, `set_fact`s),
/// so a play can read what an earlier one found on another host (the Swarm join token).
pub fn hostvars<'a>(hosts: impl Iterator<Item = (&'a Host, &'a Map<String, Value>)>) -> Value {
    let mut out = Map::new();
    for (h, facts) in hosts {
        let mut m = facts.clone();
        m.insert("inventory_hostname".into(), json!(h.name.0));
        m.insert("address".into(), json!(h.address));
        m.insert("private_address".into(), json!(h.private_address));
        m.insert("group_names".into(), json!(h.groups));
        out.insert(h.name.0.clone(), Value::Object(m));
    }
    Value::Object(out)
}

/// The variables of one play on one host. Only the inventory's and the play's own values,
/// which a person wrote as templates, have their references resolved; what earlier tasks
/// registered (a host's output), `set_fact`s (already rendered), extra vars (`-e`, and every
/// value the deploy side hands to its plans: secrets, compose files, routes) and `hostvars` are
/// data and stay byte-for-byte, whatever `{{` they contain.
pub fn build(
    host: &Host,
    play: &Play,
    extra: &Map<String, Value>,
    facts: &Map<String, Value>,
    groups: &Value,
    hostvars: &Value,
) -> Map<String, Value> {
    let mut v = host.vars.clone();
    v.extend(play.vars.clone());
    // What the inventory and the play wrote; a later layer (derived names, facts, extra vars)
    // that replaced a value took it out of what renders.
    let written = v.clone();
    let managers: Vec<&str> = groups
        .get("managers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let main = managers.first().copied();
    let is_manager = host.groups.iter().any(|g| g == "managers");
    v.insert("inventory_hostname".into(), json!(host.name.0));
    v.insert("ansible_host".into(), json!(host.address));
    v.insert("private_address".into(), json!(host.private_address));
    v.insert("group_names".into(), json!(host.groups));
    v.insert("groups".into(), groups.clone());
    v.insert("hostvars".into(), hostvars.clone());
    v.insert("is_manager".into(), json!(is_manager));
    v.insert(
        "is_main_manager".into(),
        json!(main == Some(host.name.0.as_str())),
    );
    v.insert(
        "is_worker".into(),
        json!(host.groups.iter().any(|g| g == "workers")),
    );
    v.insert("main_manager".into(), json!(main));
    let main_addr = main
        .and_then(|m| hostvars.get(m))
        .and_then(|h| h.get("private_address"))
        .cloned()
        .unwrap_or(Value::Null);
    v.insert("main_manager_address".into(), main_addr);
    v.extend(facts.clone());
    v.extend(extra.clone());
    let templates: Vec<String> = written
        .into_iter()
        .filter(|(k, x)| v.get(k) == Some(x))
        .map(|(k, _)| k)
        .collect();
    resolve_references(&mut v, &templates);
    v
}

/// Variables may refer to other variables (`docker_api_tls_dir: "{{ docker_tls_dir }}"`):
/// render the values of `names` that hold templates against all the rest, a few passes deep so
/// chains resolve. Every pass renders the text as written, never a previous pass's result, so a
/// value brought in by a reference (data) is not evaluated in turn. A value that cannot be
/// rendered is left as written; using it reports the error with the task.
fn resolve_references(v: &mut Map<String, Value>, names: &[String]) {
    let written: Vec<(String, Value)> = names
        .iter()
        .filter_map(|k| {
            v.get(k)
                .filter(|x| has_template(x))
                .map(|x| (k.clone(), x.clone()))
        })
        .collect();
    for _ in 0..4 {
        let snapshot = Value::Object(v.clone());
        let mut progressed = false;
        for (k, text) in &written {
            if let Ok(r) = template::render_value(text, &snapshot) {
                if v.get(k) != Some(&r) {
                    progressed = true;
                    v.insert(k.clone(), r);
                }
            }
        }
        if !progressed {
            return;
        }
    }
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("{{") || s.contains("{%"),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(o) => o.values().any(has_template),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{Connection, HostName};
    use crate::plan::Location;

    /// Only what a person wrote as a template renders: inventory and play vars. Extra vars
    /// (the deploy side's secrets, configs and compose files), registered output and hostvars
    /// reach the tasks byte-for-byte.
    #[test]
    fn data_is_never_rendered_as_a_template() {
        let hostile = [
            "{{ 1 }}",
            "value {{ 1 + 1 }} end",
            "{% raw %}x{% endraw %}",
            "{{ get_env(name=\"HOME\") }}",
            "{{.Task.Name}}",
        ];
        let data = |s: &str| json!(s);
        let host = Host {
            name: HostName("node1".into()),
            address: "127.0.0.1".into(),
            private_address: "10.0.0.1".into(),
            port: 22,
            user: "root".into(),
            key: None,
            connection: Connection::Ssh,
            groups: vec!["managers".into()],
            vars: json!({"docker_tls_dir": "/etc/docker/tls",
                         "docker_api_tls_dir": "{{ docker_tls_dir }}/api",
                         "uses_extra": "{{ secret_value }}"})
            .as_object()
            .unwrap()
            .clone(),
        };
        let play = Play {
            name: "p".into(),
            hosts: "all".into(),
            vars: json!({"from_play": "{{ 1 + 1 }}"})
                .as_object()
                .unwrap()
                .clone(),
            tasks: Vec::new(),
            handlers: Vec::new(),
            become_: false,
            reset_connection: false,
            serial: Vec::new(),
            max_fail_percentage: None,
            any_errors_fatal: false,
            at: Location {
                file: crate::source::SourcePath::disk("plan.yaml"),
                line: 1,
            },
        };
        for value in hostile {
            let extra = json!({"secret_value": data(value),
                               "stack_contents": {"compose.yaml": data(value)}});
            let facts = json!({"swarm_node_id": {"stdout": data(value)}});
            let hostvars = json!({"node2": {"swarm_node_id": {"stdout": data(value)}}});
            let v = build(
                &host,
                &play,
                extra.as_object().unwrap(),
                facts.as_object().unwrap(),
                &json!({"managers": ["node1"]}),
                &hostvars,
            );
            assert_eq!(v["secret_value"], data(value));
            assert_eq!(v["stack_contents"]["compose.yaml"], data(value));
            assert_eq!(v["swarm_node_id"]["stdout"], data(value));
            assert_eq!(
                v["hostvars"]["node2"]["swarm_node_id"]["stdout"],
                data(value)
            );
            // An inventory value that refers to data gets the data, not its evaluation.
            assert_eq!(v["uses_extra"], data(value));
            assert_eq!(v["docker_api_tls_dir"], "/etc/docker/tls/api");
            assert_eq!(v["from_play"], 2);
        }
    }
}
