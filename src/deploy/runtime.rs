//! `ENV/runtime/*.yaml`: the services minipaas runs beside the user's (Caddy, PostgreSQL, an
//! optional registry) and the overlay networks they share. Rendered from the settings alone, so
//! `code init` rewrites them freely; secrets reach them through compose.apps.yaml like any
//! service's.

use std::collections::{BTreeMap, BTreeSet};

use super::settings::{EndpointMode, RuntimeSettings};
use super::DeployError;
use crate::inventory::Inventory;

/// Runtime service names; the user's files may not declare these while they are enabled.
pub(crate) const CADDY: &str = "caddy";
pub(crate) const POSTGRES: &str = "postgres";
pub(crate) const REGISTRY: &str = "registry";

/// The network every service joins; `internal`: no route out of the cluster.
pub(crate) const NETWORK: &str = "minipaas_network";
/// The network with a way out, for Caddy and the registry.
pub(crate) const PUBLIC_NETWORK: &str = "minipaas_public";

/// The registry's port, published through the ingress mesh so every node's Docker engine can
/// pull from `127.0.0.1:5000`, which it trusts without TLS (a service name would not resolve
/// on the host, where the engine runs).
pub(crate) const REGISTRY_ADDR: &str = "127.0.0.1:5000";

/// One runtime file: its name under `runtime/` and its content, or `None` when disabled (and
/// to be removed if present).
pub(crate) struct RuntimeFile {
    pub name: &'static str,
    pub content: Option<String>,
}

/// A JSON string is a valid YAML double-quoted scalar: quoting without a YAML writer.
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

fn header(what: &str, version: Option<&str>) -> String {
    let mut out = format!(
        "# Written by `minipaas code init` from minipaas.yaml (runtime): {what}.\n\
         # Rewritten on every init; change minipaas.yaml instead.\n"
    );
    if let Some(v) = version {
        out.push_str(&format!("version: {}\n", q(v)));
    }
    out
}

const MANAGER: &str = "      placement:\n        constraints: [\"node.role == manager\"]\n";

/// Runtime services that keep their data in volumes on their node. Each runs where the
/// inventory pins it (host var `minipaas_stateful: [postgres, caddy]`, a node label set by
/// provision), or else on any manager.
pub(crate) const STATEFUL: [&str; 3] = [CADDY, POSTGRES, REGISTRY];

/// The host var that pins stateful services to a host.
pub(crate) const STATEFUL_VAR: &str = "minipaas_stateful";

/// The stateful services the inventory pins, with the host each is pinned to: at most one
/// host per service.
pub(crate) fn pins(inv: &Inventory) -> Result<BTreeMap<String, String>, DeployError> {
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    for h in &inv.hosts {
        let Some(v) = h.vars.get(STATEFUL_VAR) else {
            continue;
        };
        let bad = |problem: String| DeployError::BadPin {
            inventory: inv.path.clone(),
            host: h.name.0.clone(),
            problem,
        };
        let names = v
            .as_array()
            .ok_or_else(|| bad(format!("`{STATEFUL_VAR}` must be a list, not {v}")))?;
        for n in names {
            let name = n.as_str().filter(|n| STATEFUL.contains(n)).ok_or_else(|| {
                bad(format!(
                    "`{STATEFUL_VAR}`: {n} is not one of {}",
                    STATEFUL.join(", ")
                ))
            })?;
            if let Some(other) = pins.insert(name.to_string(), h.name.0.clone()) {
                if other != h.name.0 {
                    return Err(bad(format!(
                        "`{name}` is pinned to host `{other}` too: one host keeps its data"
                    )));
                }
            }
        }
    }
    Ok(pins)
}

/// What to tell the user about the stateful services `rt` runs that `pins` leaves free to
/// move, on an inventory with `managers` managers (with one, they cannot move).
pub(crate) fn unpinned_warning(
    rt: &RuntimeSettings,
    pins: &BTreeMap<String, String>,
    managers: usize,
) -> Option<String> {
    let free: Vec<&str> = services(rt)
        .into_iter()
        .filter(|s| STATEFUL.contains(s) && !pins.contains_key(*s))
        .collect();
    (managers > 1 && !free.is_empty()).then(|| {
        format!(
            "warning: {} may start on any of the {managers} managers, where its volume is \
             empty: pin it to one host with `{STATEFUL_VAR}: [{}]` in the inventory, provision, \
             and run `minipaas code init` again",
            free.join(", "),
            free.join(", ")
        )
    })
}

/// The placement of stateful `service`: its pinned node, or any manager.
fn placement(service: &str, pinned: &BTreeSet<String>) -> String {
    if pinned.contains(service) {
        format!(
            "      placement:\n        constraints: [\"node.labels.minipaas.stateful.{service} == true\"]\n"
        )
    } else {
        MANAGER.to_string()
    }
}

/// The runtime files in `docker stack deploy -c` order; `version` repeats the user's format
/// version.
pub(crate) fn files(
    rt: &RuntimeSettings,
    version: Option<&str>,
    pinned: &BTreeSet<String>,
) -> Vec<RuntimeFile> {
    let common = format!(
        "{}networks:\n  {NETWORK}:\n    driver: overlay\n    internal: true\n    attachable: true\n  \
         {PUBLIC_NETWORK}:\n    driver: overlay\n    attachable: true\n",
        header("the stack's overlay networks", version)
    );
    let port = rt.http_port;
    let dnsrr = if rt.endpoint_mode == EndpointMode::Dnsrr {
        "      endpoint_mode: dnsrr\n"
    } else {
        ""
    };
    let caddy_placement = format!("{dnsrr}{}", placement(CADDY, pinned));
    let pg_placement = format!("{dnsrr}{}", placement(POSTGRES, pinned));
    let caddy = format!(
        "{}services:\n  {CADDY}:\n    image: {}\n    command: [\"caddy\", \"run\", \"--resume\"]\n    \
         networks: [{NETWORK}, {PUBLIC_NETWORK}]\n    ports:\n      - target: {port}\n        \
         published: {port}\n        protocol: tcp\n        mode: host\n    volumes:\n      \
         - caddy_data:/data\n      - caddy_config:/config\n    deploy:\n      replicas: 1\n{caddy_placement}\
         volumes:\n  caddy_data: {{}}\n  caddy_config: {{}}\n",
        header(
            "Caddy, admin API on :2019 inside the network, config from caddy.json",
            version
        ),
        q(&rt.caddy_image),
    );
    let postgres = format!(
        "{}services:\n  {POSTGRES}:\n    image: {}\n    environment:\n      \
         POSTGRES_PASSWORD_FILE: /run/secrets/postgres_password\n    networks: [{NETWORK}]\n    \
         volumes:\n      - postgres_data:/var/lib/postgresql/data\n    deploy:\n      replicas: 1\n{pg_placement}\
         volumes:\n  postgres_data: {{}}\n",
        header(
            "PostgreSQL; its secret `postgres_password` is referenced from compose.apps.yaml",
            version
        ),
        q(&rt.postgres_image),
    );
    let registry = format!(
        "{}services:\n  {REGISTRY}:\n    image: \"registry:2\"\n    networks: [{PUBLIC_NETWORK}]\n    \
         ports:\n      - \"5000:5000\"\n    volumes:\n      - registry_data:/var/lib/registry\n    \
         deploy:\n      replicas: 1\n{}volumes:\n  registry_data: {{}}\n",
        header(
            "an image registry, pulled from as 127.0.0.1:5000 on every node",
            version
        ),
        placement(REGISTRY, pinned),
    );
    vec![
        RuntimeFile {
            name: "common.yaml",
            content: Some(common),
        },
        RuntimeFile {
            name: "caddy.yaml",
            content: rt.caddy.then_some(caddy),
        },
        RuntimeFile {
            name: "postgres.yaml",
            content: rt.postgres.then_some(postgres),
        },
        RuntimeFile {
            name: "registry.yaml",
            content: rt.registry.then_some(registry),
        },
    ]
}

/// The runtime services enabled by `rt`.
pub(crate) fn services(rt: &RuntimeSettings) -> Vec<&'static str> {
    [
        (rt.caddy, CADDY),
        (rt.postgres, POSTGRES),
        (rt.registry, REGISTRY),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_valid_yaml_with_the_decided_shape() {
        let rt = RuntimeSettings {
            registry: true,
            ..RuntimeSettings::default()
        };
        for f in files(&rt, Some("3.8"), &BTreeSet::new()) {
            let text = f.content.unwrap();
            let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            assert_eq!(v["version"], "3.8", "{}", f.name);
            match f.name {
                "common.yaml" => assert_eq!(v["networks"][NETWORK]["internal"], true),
                "caddy.yaml" => {
                    let s = &v["services"]["caddy"];
                    assert_eq!(s["image"], "caddy:2.9.1-alpine");
                    assert_eq!(s["ports"][0]["mode"], "host");
                    assert_eq!(s["ports"][0]["published"], 8000);
                    assert_eq!(
                        s["deploy"]["placement"]["constraints"][0],
                        "node.role == manager"
                    );
                }
                "postgres.yaml" => assert_eq!(
                    v["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"],
                    "/run/secrets/postgres_password"
                ),
                "registry.yaml" => assert_eq!(v["services"]["registry"]["image"], "registry:2"),
                other => panic!("unexpected {other}"),
            }
        }
        assert!(
            files(&RuntimeSettings::default(), None, &BTreeSet::new())[3]
                .content
                .is_none()
        );
    }

    #[test]
    fn a_pinned_stateful_service_runs_only_on_its_labelled_node() {
        let rt = RuntimeSettings {
            registry: true,
            ..RuntimeSettings::default()
        };
        let pinned: BTreeSet<String> = ["postgres".to_string()].into();
        for f in files(&rt, None, &pinned) {
            let v: serde_yaml::Value = serde_yaml::from_str(&f.content.unwrap()).unwrap();
            let want = match f.name {
                "postgres.yaml" => "node.labels.minipaas.stateful.postgres == true",
                "caddy.yaml" | "registry.yaml" => "node.role == manager",
                _ => continue,
            };
            let name = f.name.trim_end_matches(".yaml");
            assert_eq!(
                v["services"][name]["deploy"]["placement"]["constraints"],
                serde_yaml::Value::Sequence(vec![want.into()]),
                "{}",
                f.name
            );
        }
    }

    fn inventory(text: &str) -> Inventory {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.yaml");
        std::fs::write(&path, text).unwrap();
        Inventory::load(&path).unwrap()
    }

    #[test]
    fn one_host_per_stateful_service_and_only_runtime_names() {
        let three = "groups:\n  managers:\n    hosts:\n      m1: {address: 127.0.0.1, vars: {minipaas_stateful: [postgres, caddy]}}\n      m2: {address: 127.0.0.1}\n      m3: {address: 127.0.0.1}\n";
        let p = pins(&inventory(three)).unwrap();
        assert_eq!(p["postgres"], "m1");
        assert_eq!(p["caddy"], "m1");
        let rt = RuntimeSettings::default();
        assert!(unpinned_warning(&rt, &p, 3).is_none());
        let w = unpinned_warning(&rt, &BTreeMap::new(), 3).unwrap();
        assert!(
            w.contains("caddy, postgres") && w.contains("3 managers"),
            "{w}"
        );
        assert!(unpinned_warning(&rt, &BTreeMap::new(), 1).is_none());

        let twice = three.replace(
            "m2: {address: 127.0.0.1}",
            "m2: {address: 127.0.0.1, vars: {minipaas_stateful: [postgres]}}",
        );
        let e = pins(&inventory(&twice)).unwrap_err().to_string();
        assert!(e.contains("`m2`") && e.contains("`m1`"), "{e}");
        let unknown = three.replace("[postgres, caddy]", "[redis]");
        let e = pins(&inventory(&unknown)).unwrap_err().to_string();
        assert!(e.contains("`m1`") && e.contains("redis"), "{e}");
    }
}
