//! `ENV/runtime/*.yaml`: the services minipaas runs beside the user's (Caddy, PostgreSQL, an
//! optional registry) and the overlay networks they share. Rendered from the settings alone, so
//! `code init` rewrites them freely; secrets reach them through compose.apps.yaml like any
//! service's.

use super::settings::{EndpointMode, RuntimeSettings};

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

/// The runtime files in `docker stack deploy -c` order; `version` repeats the user's format
/// version.
pub(crate) fn files(rt: &RuntimeSettings, version: Option<&str>) -> Vec<RuntimeFile> {
    let common = format!(
        "{}networks:\n  {NETWORK}:\n    driver: overlay\n    internal: true\n    attachable: true\n  \
         {PUBLIC_NETWORK}:\n    driver: overlay\n    attachable: true\n",
        header("the stack's overlay networks", version)
    );
    let port = rt.http_port;
    let manager = if rt.endpoint_mode == EndpointMode::Dnsrr {
        format!("      endpoint_mode: dnsrr\n{MANAGER}")
    } else {
        MANAGER.to_string()
    };
    let caddy = format!(
        "{}services:\n  {CADDY}:\n    image: {}\n    command: [\"caddy\", \"run\", \"--resume\"]\n    \
         networks: [{NETWORK}, {PUBLIC_NETWORK}]\n    ports:\n      - target: {port}\n        \
         published: {port}\n        protocol: tcp\n        mode: host\n    volumes:\n      \
         - caddy_data:/data\n      - caddy_config:/config\n    deploy:\n      replicas: 1\n{manager}\
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
         volumes:\n      - postgres_data:/var/lib/postgresql/data\n    deploy:\n      replicas: 1\n{manager}\
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
         deploy:\n      replicas: 1\n{MANAGER}volumes:\n  registry_data: {{}}\n",
        header(
            "an image registry, pulled from as 127.0.0.1:5000 on every node",
            version
        ),
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
        for f in files(&rt, Some("3.8")) {
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
        assert!(files(&RuntimeSettings::default(), None)[3]
            .content
            .is_none());
    }
}
