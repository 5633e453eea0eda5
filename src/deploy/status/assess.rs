//! A stack's services as `deploy status` reports them: the swarm's health of each (the rules
//! of [`crate::swarm::health`]) with what minipaas adds: the image as deployed, the version,
//! the nodes by name.

use std::collections::{BTreeMap, BTreeSet};

use super::ServiceStatus;
use crate::swarm::health::classify;
use crate::swarm::Gathered;

pub(super) fn assess(stack: &str, g: &Gathered, built: &BTreeSet<String>) -> Vec<ServiceStatus> {
    let hostnames: BTreeMap<&str, &str> = g
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.hostname.as_str()))
        .collect();
    let hostname = |id: &str| -> String {
        // `docker node ls` may print IDs shortened; task node IDs are full.
        hostnames
            .iter()
            .find(|(k, _)| !k.is_empty() && id.starts_with(*k))
            .map(|(_, h)| h.to_string())
            .unwrap_or_else(|| id.chars().take(12).collect())
    };
    let prefix = format!("{stack}_");
    let mut out: Vec<ServiceStatus> = g
        .services
        .iter()
        .map(|s| {
            let tasks = g.tasks_of(&s.id);
            let short = s
                .spec
                .name
                .strip_prefix(&prefix)
                .unwrap_or(&s.spec.name)
                .to_string();
            let image = s
                .spec
                .labels
                .get("com.docker.stack.image")
                .cloned()
                .unwrap_or_else(|| strip_digest(&s.spec.task_template.container_spec.image));
            let version = if built.contains(&short) {
                image_tag(&image)
            } else {
                None
            }
            .or_else(|| env_version(&s.spec.task_template.container_spec.env));
            let a = classify(s, &tasks, &g.since, &g.proven);
            let nodes: BTreeSet<String> = tasks
                .iter()
                .filter(|t| t.status.state == "running")
                .map(|t| hostname(&t.node_id))
                .collect();
            ServiceStatus {
                service: short,
                name: s.spec.name.clone(),
                kind: a.kind,
                desired: a.desired,
                running: a.running,
                completed: a.completed,
                image,
                version,
                health: a.health,
                nodes: nodes.into_iter().collect(),
                message: a.message,
                pinned_to: None,
            }
        })
        .collect();
    out.sort_by(|a, b| a.service.cmp(&b.service));
    out
}

/// `example-app:1@sha256:...` → `example-app:1`.
fn strip_digest(image: &str) -> String {
    image.split('@').next().unwrap_or(image).to_string()
}

/// The tag of `repo[:port]/name:tag`; `None` without one.
fn image_tag(image: &str) -> Option<String> {
    let image = image.split('@').next().unwrap_or(image);
    let at = image.rfind(':')?;
    let tag = &image[at + 1..];
    (!tag.contains('/') && !tag.is_empty()).then(|| tag.to_string())
}

fn env_version(env: &[String]) -> Option<String> {
    env.iter()
        .find_map(|e| {
            e.strip_prefix(crate::deploy::env::VERSION_VAR)?
                .strip_prefix('=')
        })
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::Health;
    use serde_json::json;

    const SINCE: &str = "2026-01-01T10:00:00Z";
    const OLD: &str = "2026-01-01T09:00:00.5Z";

    #[test]
    fn gathered_output_parses_into_statuses() {
        let text = json!({
            "Since": SINCE,
            "Services": [{
                "ID": "svc1",
                "Spec": {
                    "Name": "st_web",
                    "Labels": {"com.docker.stack.image": "example-app:7"},
                    "Mode": {"Replicated": {"Replicas": 1}},
                    "TaskTemplate": {"ContainerSpec": {"Image": "example-app:7@sha256:abc"}}
                }
            }, {
                "ID": "svc2",
                "Spec": {
                    "Name": "st_caddy",
                    "Mode": {"Replicated": {"Replicas": 1}},
                    "TaskTemplate": {"ContainerSpec": {"Image": "caddy:2@sha256:def"}}
                }
            }],
            "Tasks": [{
                "ID": "t1", "ServiceID": "svc1", "Slot": 1, "NodeID": "n1full",
                "CreatedAt": OLD, "DesiredState": "running",
                "Status": {"Timestamp": OLD, "State": "running"}
            }],
            "Nodes": [{"ID": "n1full", "Hostname": "node1"}]
        })
        .to_string();
        let g: Gathered = serde_json::from_str(&text).unwrap();
        let built = BTreeSet::from(["web".to_string()]);
        let s = assess("st", &g, &built);
        assert_eq!(s[0].service, "caddy");
        assert_eq!(s[0].image, "caddy:2");
        assert_eq!(s[0].version, None);
        assert_eq!(s[0].health, Health::Pending);
        assert_eq!(s[1].service, "web");
        assert_eq!(s[1].version.as_deref(), Some("7"));
        assert_eq!(s[1].nodes, ["node1"]);
        assert_eq!(s[1].health, Health::Running);
        let missing: Gathered = serde_json::from_str("{\"Missing\": true}").unwrap();
        assert!(missing.missing);
    }

    #[test]
    fn image_tags_and_versions() {
        assert_eq!(image_tag("example-app:1").as_deref(), Some("1"));
        assert_eq!(
            image_tag("127.0.0.1:5000/web:2@sha256:x").as_deref(),
            Some("2")
        );
        assert_eq!(image_tag("127.0.0.1:5000/web"), None);
        assert_eq!(
            env_version(&["MINIPAAS_DEPLOY_VERSION=3".into()]).as_deref(),
            Some("3")
        );
        assert_eq!(env_version(&["MINIPAAS_DEPLOY_VERSIONX=3".into()]), None);
    }
}
