//! The canary's compose file: the new definition of one service (from the env's files merged by
//! `docker stack config`), renamed `<service>-canary`, with its own replica count and the network
//! alias `<stack>_<service>` on each of its networks. Caddy routes to `tasks.<stack>_<service>`,
//! which lists the tasks of every service carrying that alias, so the canary's tasks join the
//! route and traffic splits by replica count.

use serde_yaml::{Mapping, Value};

use super::DeployError;

/// The label on a canary service; its value is the service it tries a new version of.
pub const LABEL: &str = "minipaas.canary";

/// The name of the canary of `service`.
pub fn name(service: &str) -> String {
    format!("{service}-canary")
}

/// The compose file that adds the canary of `service` (`replicas` tasks) to `stack`, from
/// `merged`, the output of `docker stack config` for the new version. Top-level networks,
/// secrets, configs and volumes the service uses come along: a new secret version exists only
/// in the new files.
pub fn file(
    merged: &str,
    stack: &str,
    service: &str,
    replicas: u32,
) -> Result<String, DeployError> {
    let bad = |problem: String| DeployError::Canary {
        service: service.to_string(),
        problem,
    };
    let doc: Value = serde_yaml::from_str(merged).map_err(|e| {
        bad(format!(
            "`docker stack config` printed no compose file: {e}"
        ))
    })?;
    let services = doc.get("services").and_then(Value::as_mapping);
    let Some(def) = services.and_then(|s| s.get(service)) else {
        let mut names: Vec<String> = services
            .map(|s| {
                s.keys()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        return Err(bad(format!(
            "the stack has no such service (it has: {})",
            names.join(", ")
        )));
    };
    let mut def = def.as_mapping().cloned().unwrap_or_default();
    let deploy = def
        .entry("deploy".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let Some(deploy) = deploy.as_mapping_mut() else {
        return Err(bad("its `deploy` is not a mapping".into()));
    };
    match deploy.get("mode").and_then(Value::as_str) {
        None | Some("replicated") => {}
        Some(other) => {
            return Err(bad(format!(
                "it runs in mode `{other}`; only replicated services have canaries"
            )))
        }
    }
    if deploy
        .get("labels")
        .and_then(|l| l.get("swarm.cronjob.enable"))
        .is_some()
    {
        return Err(bad(
            "it is a cron service; only long-running services have canaries".into(),
        ));
    }
    deploy.insert("replicas".into(), replicas.into());
    let labels = deploy
        .entry("labels".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if let Some(labels) = labels.as_mapping_mut() {
        labels.insert(LABEL.into(), service.into());
    }
    // Built here and shipped by `deploy build`: the build section is only noise on the manager.
    def.remove("build");

    // Every network the service is on gets the alias; a service without networks is on the
    // stack's `default`.
    let alias = Value::String(format!("{stack}_{service}"));
    let mut networks = Mapping::new();
    match def.get("networks") {
        Some(Value::Mapping(m)) => {
            for (k, v) in m {
                networks.insert(k.clone(), with_alias(v, &alias));
            }
        }
        Some(Value::Sequence(list)) => {
            for k in list {
                networks.insert(k.clone(), with_alias(&Value::Null, &alias));
            }
        }
        _ => {
            networks.insert("default".into(), with_alias(&Value::Null, &alias));
        }
    }
    let used_networks: Vec<Value> = networks.keys().cloned().collect();
    def.insert("networks".into(), Value::Mapping(networks));

    let mut out = Mapping::new();
    if let Some(v) = doc.get("version") {
        out.insert("version".into(), v.clone());
    }
    let mut svcs = Mapping::new();
    let def = Value::Mapping(def);
    svcs.insert(name(service).into(), def.clone());
    out.insert("services".into(), Value::Mapping(svcs));
    let top = |section: &str, used: &[Value]| -> Option<Mapping> {
        let all = doc.get(section)?.as_mapping()?;
        let picked: Mapping = all
            .iter()
            .filter(|(k, _)| used.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!picked.is_empty()).then_some(picked)
    };
    let sources = |key: &str| -> Vec<Value> {
        def.get(key)
            .and_then(Value::as_sequence)
            .map(|list| {
                list.iter()
                    .map(|e| match e {
                        Value::Mapping(m) => m.get("source").cloned().unwrap_or(Value::Null),
                        other => other.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let used = [
        ("networks", used_networks),
        ("secrets", sources("secrets")),
        ("configs", sources("configs")),
        ("volumes", sources("volumes")),
    ];
    for (section, used) in used {
        if let Some(m) = top(section, &used) {
            out.insert(section.into(), Value::Mapping(m));
        }
    }
    serde_yaml::to_string(&Value::Mapping(out))
        .map_err(|e| bad(format!("cannot write its compose file: {e}")))
}

fn with_alias(v: &Value, alias: &Value) -> Value {
    let mut m = v.as_mapping().cloned().unwrap_or_default();
    let aliases = m
        .entry("aliases".into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if let Some(list) = aliases.as_sequence_mut() {
        if !list.contains(alias) {
            list.push(alias.clone());
        }
    }
    Value::Mapping(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MERGED: &str = r#"version: "3.13"
services:
  web:
    build: {context: .}
    image: app:2
    deploy: {mode: replicated, replicas: 2, labels: {a: b}}
    networks:
      minipaas_network: null
    secrets:
      - {source: app_secret.aaaa, target: app_secret}
  job:
    image: app:2
    deploy: {mode: replicated-job}
  plain:
    image: app:2
networks:
  minipaas_network: {driver: overlay, internal: true}
  minipaas_public: {driver: overlay}
secrets:
  app_secret.aaaa: {name: app_secret.aaaa, external: true}
  other.bbbb: {name: other.bbbb, external: true}
"#;

    #[test]
    fn canary_keeps_the_definition_and_joins_the_route() {
        let text = file(MERGED, "s", "web", 1).unwrap();
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        let c = &doc["services"]["web-canary"];
        assert_eq!(c["image"], "app:2");
        assert_eq!(c["deploy"]["replicas"], 1);
        assert_eq!(c["deploy"]["labels"]["a"], "b");
        assert_eq!(c["deploy"]["labels"][LABEL], "web");
        assert_eq!(
            c["networks"]["minipaas_network"]["aliases"][0], "s_web",
            "{text}"
        );
        assert!(c.get("build").is_none());
        assert!(doc["services"].get("web").is_none(), "only the canary");
        assert!(doc["secrets"].get("app_secret.aaaa").is_some());
        assert!(doc["secrets"].get("other.bbbb").is_none());
        assert!(doc["networks"].get("minipaas_network").is_some());
        assert!(doc["networks"].get("minipaas_public").is_none());
        assert_eq!(doc["version"], "3.13");
    }

    #[test]
    fn services_without_networks_join_default() {
        let text = file(MERGED, "s", "plain", 3).unwrap();
        let doc: Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(
            doc["services"]["plain-canary"]["networks"]["default"]["aliases"][0],
            "s_plain"
        );
    }

    #[test]
    fn jobs_and_unknown_services_have_no_canary() {
        let job = file(MERGED, "s", "job", 1).unwrap_err().to_string();
        assert!(job.contains("replicated-job"), "{job}");
        let unknown = file(MERGED, "s", "nope", 1).unwrap_err().to_string();
        assert!(unknown.contains("job, plain, web"), "{unknown}");
    }
}
