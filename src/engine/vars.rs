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
    resolve_references(&mut v);
    v
}

/// Variables may refer to other variables (`docker_api_tls_dir: "{{ docker_tls_dir }}"`):
/// render such values against the rest, a few passes deep. A value that cannot be rendered yet
/// is left as written; using it reports the error with the task.
fn resolve_references(v: &mut Map<String, Value>) {
    for _ in 0..4 {
        let keys: Vec<String> = v
            .iter()
            .filter(|(_, x)| has_template(x))
            .map(|(k, _)| k.clone())
            .collect();
        if keys.is_empty() {
            return;
        }
        let snapshot = Value::Object(v.clone());
        let mut progressed = false;
        for k in keys {
            if let Ok(r) = template::render_value(&v[&k], &snapshot) {
                if r != v[&k] {
                    progressed = true;
                }
                v.insert(k, r);
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
