//! Caddy's routes: loaded on the node that runs the stack's Caddy task, and checked through it.

use std::time::Duration;

use serde_json::{json, Map};
use tokio::sync::mpsc::UnboundedSender;

use super::cluster::{Cluster, OpsError, SWARM_NODES};
use super::plans::{ROUTING, SMOKE, SMOKE_SH};
use super::stack::digest;
use crate::engine::{Event, Recap, Status};
use crate::template::shell_quote;

/// Loads Caddy's JSON config on the node that runs the stack's Caddy task.
pub async fn routing(
    c: &Cluster,
    stack: &str,
    routes: &str,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let mut vars = Map::new();
    vars.insert("stack".into(), json!(stack));
    vars.insert("routes".into(), json!(routes));
    let sum = digest(&[routes.as_bytes()]);
    // curl in Debian-based Caddy images, busybox wget in the official Alpine one.
    let load = format!(
        "set -e; f=/tmp/minipaas-routes.json; cat > $f; \
         if command -v curl >/dev/null; then \
           curl -fsS -X POST -H 'Content-Type: application/json' --data-binary @$f http://localhost:2019/load; \
         else wget -q -O /dev/null --header 'Content-Type: application/json' --post-file=$f http://localhost:2019/load; fi; \
         echo {sum} > /config/minipaas-routes.sha256"
    );
    vars.insert("load_script".into(), json!(load));
    vars.insert("digest".into(), json!(sum));
    let recap = c
        .run("routing.yaml", ROUTING, SWARM_NODES, vars, events)
        .await?;
    ran_on_caddy_node(recap, "Caddy routes loaded", stack)
}

/// `recap` of a plan whose `task` runs only where the stack's Caddy task runs: a successful
/// run where it ran nowhere means there is no Caddy task.
fn ran_on_caddy_node(recap: Recap, task: &str, stack: &str) -> Result<Recap, OpsError> {
    let ran = recap
        .tasks
        .iter()
        .any(|t| t.task == task && t.status != Status::Skipped);
    if recap.success() && !ran {
        return Err(OpsError::NoCaddy {
            service: format!("{stack}_caddy"),
        });
    }
    Ok(recap)
}

/// Requests every route (`(host, path)`) through Caddy's published `port` on the node that runs
/// the Caddy task; each must answer 2xx or 3xx within `timeout`.
pub async fn smoke(
    c: &Cluster,
    stack: &str,
    port: u16,
    routes: &[(String, String)],
    timeout: Duration,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let args: Vec<String> = routes
        .iter()
        .flat_map(|(h, p)| [shell_quote(h), shell_quote(p)])
        .collect();
    let mut vars = Map::new();
    vars.insert("stack".into(), json!(stack));
    vars.insert("port".into(), json!(port));
    vars.insert("timeout".into(), json!(timeout.as_secs()));
    vars.insert("route_args".into(), json!(args.join(" ")));
    vars.insert("smoke_script".into(), json!(SMOKE_SH));
    let recap = c
        .run("smoke.yaml", SMOKE, SWARM_NODES, vars, events)
        .await?;
    ran_on_caddy_node(recap, "routes answer through Caddy", stack)
}
