//! Versioned Docker secrets and configs: created on the manager, pruned when unused.

use serde_json::{json, Map};
use tokio::sync::mpsc::UnboundedSender;

use super::cluster::{Cluster, OpsError};
pub use super::env::ObjectKind;
use super::plans::{OBJECT, PRUNE, PRUNE_SH};
use crate::engine::{Event, Recap};
use crate::template::shell_quote;

/// Creates the versioned object `name` (base `base`) with `value` on the manager unless it
/// exists. The value travels on the command's stdin only and is never reported.
pub async fn create_object(
    c: &Cluster,
    kind: ObjectKind,
    stack: &str,
    base: &str,
    name: &str,
    value: &str,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let mut vars = Map::new();
    vars.insert("kind".into(), json!(kind.noun()));
    vars.insert("stack".into(), json!(stack));
    vars.insert("base".into(), json!(base));
    vars.insert("object_name".into(), json!(name));
    vars.insert("secret_value".into(), json!(value));
    c.run("object.yaml", OBJECT, &c.on_manager(), vars, events)
        .await
}

/// Removes this stack's object versions (of `base`, or all) that no service uses and `keep`
/// does not name.
pub async fn prune_objects(
    c: &Cluster,
    kind: ObjectKind,
    stack: &str,
    base: Option<&str>,
    keep: &[String],
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let mut vars = Map::new();
    vars.insert("kind".into(), json!(kind.noun()));
    vars.insert("stack".into(), json!(stack));
    vars.insert("base".into(), json!(base.unwrap_or_default()));
    vars.insert(
        "keep".into(),
        json!(keep
            .iter()
            .map(|k| shell_quote(k))
            .collect::<Vec<_>>()
            .join(" ")),
    );
    vars.insert("prune_script".into(), json!(PRUNE_SH));
    c.run("prune.yaml", PRUNE, &c.on_manager(), vars, events)
        .await
}
