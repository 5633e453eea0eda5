//! What `minipaas deploy`, `secret` and `config` do on the cluster. Each operation is a plan
//! embedded in the binary (src/deploy/plans/) run by the provision engine over the same SSH
//! transport, so it reports ok/changed per task, redacts secrets, honours `--check` and is
//! idempotent by construction. Work on the swarm itself goes to the inventory's main manager;
//! images and routes go to every swarm node (managers and workers).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedSender;

use crate::engine::{self, Event, Mode, Options, Recap, Status};
use crate::inventory::{HostName, Inventory, InventoryError};
use crate::plan::{Plan, PlanError};
use crate::template::shell_quote;
use crate::transport::{HostKeyPolicy, Transport};

pub use super::env::ObjectKind;
use super::history::{self, Record};

const ROLLOUT: &str = include_str!("plans/rollout.yaml");
const ROUTING: &str = include_str!("plans/routing.yaml");
const IMAGES: &str = include_str!("plans/images.yaml");
const OBJECT: &str = include_str!("plans/object.yaml");
const PRUNE: &str = include_str!("plans/prune.yaml");
const CONVERGE_SH: &str = include_str!("plans/converge.sh");
const PRUNE_SH: &str = include_str!("plans/prune.sh");
const HISTORY: &str = include_str!("plans/history.yaml");
const SMOKE: &str = include_str!("plans/smoke.yaml");
const SMOKE_SH: &str = include_str!("plans/smoke.sh");

/// The rollout task that runs `docker stack deploy`: changed or failed means the stack was
/// deployed (or tried to be), which is what history records.
pub const DEPLOY_TASK: &str = "docker stack deploy";

/// What a rollout is for, which decides how the convergence check reads a rolled-back service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converge {
    /// New files: a service Swarm rolled back failed the rollout.
    Update,
    /// Files deployed before (rollback, canary abort): a service Swarm rolled back is already
    /// where it is going.
    Restore,
}

impl Converge {
    fn as_arg(self) -> &'static str {
        match self {
            Converge::Update => "update",
            Converge::Restore => "restore",
        }
    }
}

/// Where rollouts keep the stack files on the manager.
pub(super) const STACKS_DIR: &str = "/var/lib/minipaas/stacks";

/// Hosts that are swarm nodes.
const SWARM_NODES: &str = "managers:workers";

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("inventory `{}` has no host in group `managers`: deploys go to the first manager", .inventory.display())]
    NoManager { inventory: PathBuf },
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Engine(#[from] engine::EngineError),
    #[error("{command} failed:\n{stderr}")]
    Local { command: String, stderr: String },
    #[error("cannot run `{program}` on this machine (is it installed?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} `{}`", .path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no node runs a task of service `{service}`: run `minipaas deploy rollout` first")]
    NoCaddy { service: String },
    #[error("host `{host}`: no stack `{stack}` on the swarm: run `minipaas deploy rollout` first")]
    NoStack { stack: String, host: String },
    #[error("host `{host}`: cannot read the state of the stack's services")]
    StatusOutput {
        host: String,
        #[source]
        source: serde_json::Error,
    },
    // Every transport error names its host already.
    #[error("{source}")]
    Transport {
        host: String,
        #[source]
        source: Box<crate::transport::TransportError>,
    },
    #[error("host `{host}`: `{command}` failed: {stderr}")]
    Remote {
        host: String,
        command: String,
        stderr: String,
    },
}

impl OpsError {
    /// 2 for input the user can fix before anything ran (the inventory, the plan, a stack or
    /// file that is not there), 1 when the cluster or this machine failed while acting (a
    /// manager that cannot be reached, a command that failed on it or here).
    pub fn exit_code(&self) -> i32 {
        match self {
            OpsError::NoManager { .. }
            | OpsError::Inventory(_)
            | OpsError::Plan(_)
            | OpsError::Engine(_)
            | OpsError::Io { .. }
            | OpsError::NoStack { .. } => 2,
            OpsError::Local { .. }
            | OpsError::Spawn { .. }
            | OpsError::NoCaddy { .. }
            | OpsError::StatusOutput { .. }
            | OpsError::Transport { .. }
            | OpsError::Remote { .. } => 1,
        }
    }
}

/// The cluster an env deploys to, as its inventory describes it.
pub struct Cluster {
    pub inventory: Inventory,
    pub manager: HostName,
    pub mode: Mode,
    pub host_key_policy: HostKeyPolicy,
}

impl Cluster {
    pub fn load(inventory: &Path, mode: Mode) -> Result<Cluster, OpsError> {
        let inventory = Inventory::load(inventory)?;
        let manager = inventory
            .main_manager()
            .map(|h| h.name.clone())
            .ok_or_else(|| OpsError::NoManager {
                inventory: inventory.path.clone(),
            })?;
        Ok(Cluster {
            inventory,
            manager,
            mode,
            host_key_policy: HostKeyPolicy::Strict,
        })
    }

    pub(super) async fn run(
        &self,
        name: &str,
        text: &str,
        hosts: &str,
        vars: Map<String, Value>,
        events: UnboundedSender<Event>,
    ) -> Result<Recap, OpsError> {
        let plan = Plan::from_text(name, text)?;
        let opts = Options {
            mode: self.mode,
            limit: Some(hosts.to_string()),
            extra_vars: vars,
            host_key_policy: self.host_key_policy,
            ..Options::default()
        };
        Ok(engine::run(&self.inventory, &plan, &opts, events).await?)
    }

    fn on_manager(&self) -> String {
        self.manager.0.clone()
    }

    /// A connection to `host` (an inventory name), for reads that need no plan: status,
    /// history, logs.
    pub async fn connect(&self, host: &HostName) -> Result<Transport, OpsError> {
        let h = self
            .inventory
            .host(&host.0)
            .ok_or_else(|| OpsError::NoManager {
                inventory: self.inventory.path.clone(),
            })?;
        engine::transport_for(
            &self.inventory,
            h,
            self.host_key_policy,
            Duration::from_secs(10),
        )
        .await
        .map_err(|source| OpsError::Transport {
            host: host.0.clone(),
            source: Box::new(source),
        })
    }

    /// Runs `command` on the main manager and returns its stdout; a non-zero exit is an error
    /// carrying the tail of its stderr. For reads only: changes go through plans.
    pub async fn read_on_manager(&self, command: &str) -> Result<String, OpsError> {
        let t = self.connect(&self.manager).await?;
        let out = t.exec(command, None).await;
        t.close().await;
        let out = out.map_err(|source| OpsError::Transport {
            host: self.manager.0.clone(),
            source: Box::new(source),
        })?;
        if !out.success() {
            let stderr = out.stderr_str();
            let lines: Vec<&str> = stderr.lines().collect();
            return Err(OpsError::Remote {
                host: self.manager.0.clone(),
                command: command.lines().next().unwrap_or_default().to_string(),
                stderr: lines[lines.len().saturating_sub(20)..].join("\n"),
            });
        }
        Ok(out.stdout_str())
    }
}

/// One file of the stack, named as it is kept on the manager.
#[derive(Debug, Clone)]
pub struct StackFile {
    pub name: String,
    pub content: String,
}

/// The digest a rollout of `files` at `version` is known by (on the manager and in history).
pub fn stack_digest(version: &str, files: &[StackFile]) -> String {
    let mut parts: Vec<&[u8]> = vec![version.as_bytes()];
    for f in files {
        parts.push(f.name.as_bytes());
        parts.push(f.content.as_bytes());
    }
    digest(&parts)
}

pub fn digest(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// What one rollout deploys.
pub struct Rollout<'a> {
    pub stack: &'a str,
    pub files: &'a [StackFile],
    /// Services that are swarm jobs (Docker 20.10's stack deploy rejects them).
    pub jobs: &'a [String],
    pub version: &'a str,
    pub timeout: Duration,
    pub converge: Converge,
}

/// Uploads the stack files to the manager, deploys them when they changed and waits until every
/// service converged (or fails naming the service, its task errors and its last log lines).
pub async fn rollout(
    c: &Cluster,
    r: &Rollout<'_>,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let Rollout {
        stack,
        files,
        jobs,
        version,
        timeout,
        converge,
    } = *r;
    let mut contents = Map::new();
    for f in files {
        contents.insert(f.name.clone(), json!(f.content));
    }
    let compose_args: Vec<String> = files
        .iter()
        .map(|f| format!("-c {}", shell_quote(&f.name)))
        .collect();
    let mut vars = Map::new();
    vars.insert("stack".into(), json!(stack));
    vars.insert("stack_dir".into(), json!(format!("{STACKS_DIR}/{stack}")));
    vars.insert(
        "stack_file_names".into(),
        json!(files.iter().map(|f| &f.name).collect::<Vec<_>>()),
    );
    vars.insert("stack_contents".into(), Value::Object(contents));
    vars.insert("compose_args".into(), json!(compose_args.join(" ")));
    vars.insert("version".into(), json!(version));
    vars.insert("jobs".into(), json!(jobs));
    vars.insert("digest".into(), json!(stack_digest(version, files)));
    vars.insert("converge_script".into(), json!(CONVERGE_SH));
    vars.insert("converge".into(), json!(converge.as_arg()));
    vars.insert("timeout".into(), json!(timeout.as_secs()));
    c.run("rollout.yaml", ROLLOUT, &c.on_manager(), vars, events)
        .await
}

/// Every history record of `stack`, oldest first.
pub async fn history(c: &Cluster, stack: &str) -> Result<Vec<Record>, OpsError> {
    let text = c.read_on_manager(&history::list_command(stack)).await?;
    Ok(history::parse(&text).into_iter().map(|(_, r)| r).collect())
}

/// Writes `record` into the stack's history on the cluster and drops the oldest records
/// beyond [`history::KEEP`].
pub async fn record(
    c: &Cluster,
    stack: &str,
    record: &Record,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let label = shell_quote(&format!("{}={stack}", history::LABEL));
    let command = format!(
        "docker config create --label {label} {name} - >/dev/null && \
         docker config ls --filter label={label} --format '{{{{.Name}}}}' | sort | head -n -{keep} \
         | xargs -r docker config rm >/dev/null",
        name = shell_quote(&record.config_name(stack)),
        keep = history::KEEP,
    );
    let mut vars = Map::new();
    vars.insert("record_command".into(), json!(command));
    vars.insert("record".into(), json!(record.to_line()));
    c.run("history.yaml", HISTORY, &c.on_manager(), vars, events)
        .await
}

/// The user's stack files merged as `docker stack deploy` would merge them, with
/// `MINIPAAS_DEPLOY_VERSION` set to `version` (`docker stack config` on the manager).
pub async fn merged_config(
    c: &Cluster,
    files: &[StackFile],
    version: &str,
) -> Result<String, OpsError> {
    let t = c.connect(&c.manager).await?;
    let result = async {
        let host = c.manager.0.clone();
        let run = |cmd: String, stdin: Option<Vec<u8>>| {
            let t = &t;
            let host = host.clone();
            async move {
                let out =
                    t.exec(&cmd, stdin.as_deref())
                        .await
                        .map_err(|source| OpsError::Transport {
                            host: host.clone(),
                            source: Box::new(source),
                        })?;
                if !out.success() {
                    return Err(OpsError::Remote {
                        host,
                        command: cmd.split(" && ").last().unwrap_or_default().to_string(),
                        stderr: out.stderr_str().trim().to_string(),
                    });
                }
                Ok(out.stdout_str())
            }
        };
        let dir = run("mktemp -d".into(), None).await?.trim().to_string();
        let q = shell_quote(&dir);
        let mut merged = Ok(String::new());
        for f in files {
            let path = shell_quote(&format!("{dir}/{}", f.name));
            if let Err(e) = run(
                format!("cat > {path}"),
                Some(f.content.clone().into_bytes()),
            )
            .await
            {
                merged = Err(e);
                break;
            }
        }
        if merged.is_ok() {
            let args: Vec<String> = files
                .iter()
                .map(|f| format!("-c {}", shell_quote(&f.name)))
                .collect();
            merged = run(
                format!(
                    "cd {q} && MINIPAAS_DEPLOY_VERSION={} docker stack config {}",
                    shell_quote(version),
                    args.join(" ")
                ),
                None,
            )
            .await;
        }
        let _ = run(format!("rm -rf {q}"), None).await;
        merged
    }
    .await;
    t.close().await;
    result
}

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

/// An image saved on this machine, ready to be loaded on nodes.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    pub name: String,
    pub id: String,
    pub archive: PathBuf,
}

/// What `docker build` needs for one service.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub service: String,
    pub image: String,
    pub context: PathBuf,
    pub dockerfile: Option<PathBuf>,
    pub args: Vec<(String, String)>,
}

async fn docker(args: &[&str]) -> Result<String, OpsError> {
    let out = Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| OpsError::Spawn {
            program: "docker".into(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        return Err(OpsError::Local {
            command: format!("`docker {}`", args.first().copied().unwrap_or_default()),
            stderr: lines[lines.len().saturating_sub(20)..].join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds one service's image on this machine's Docker engine and saves it under `cache`
/// (named by image id, so an unchanged image is not saved again). A failed build is an error
/// carrying the build's last lines.
pub async fn build_image(spec: &BuildSpec, cache: &Path) -> Result<ImageArchive, OpsError> {
    let mut args: Vec<String> = vec![
        "build".into(),
        "--quiet".into(),
        "-t".into(),
        spec.image.clone(),
    ];
    if let Some(f) = &spec.dockerfile {
        args.push("-f".into());
        args.push(f.display().to_string());
    }
    for (k, v) in &spec.args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    args.push(spec.context.display().to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&argv).await.map_err(|e| match e {
        OpsError::Local { stderr, .. } => OpsError::Local {
            command: format!("the image build of service `{}`", spec.service),
            stderr,
        },
        other => other,
    })?;
    save_image(&spec.image, cache)
        .await?
        .ok_or_else(|| OpsError::Local {
            command: format!("`docker image inspect {}`", spec.image),
            stderr: "the image just built is gone".into(),
        })
}

/// Saves a local image under `cache` (named by image id, so an unchanged image is not saved
/// again); `None` when this machine's engine does not have it.
pub async fn save_image(image: &str, cache: &Path) -> Result<Option<ImageArchive>, OpsError> {
    let id = match docker(&["image", "inspect", "--format", "{{.Id}}", image]).await {
        Ok(id) => id,
        Err(OpsError::Local { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    std::fs::create_dir_all(cache).map_err(|source| OpsError::Io {
        what: "cannot create",
        path: cache.to_path_buf(),
        source,
    })?;
    // One archive per name and id: an archive loads the tags it was saved with.
    let hexid = id.trim_start_matches("sha256:");
    let safe: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let archive = cache.join(format!("{safe}-{}.tar", &hexid[..hexid.len().min(16)]));
    if !archive.exists() {
        let partial = archive.with_extension("tar.partial");
        docker(&["save", "-o", &partial.display().to_string(), image]).await?;
        std::fs::rename(&partial, &archive).map_err(|source| OpsError::Io {
            what: "cannot rename",
            path: partial.clone(),
            source,
        })?;
    }
    Ok(Some(ImageArchive {
        name: image.to_string(),
        id,
        archive,
    }))
}

/// Every swarm node gets each image with the same id; nodes that have it are left alone.
pub async fn ship_images(
    c: &Cluster,
    images: &[ImageArchive],
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let list: Vec<Value> = images
        .iter()
        .map(|i| json!({"name": i.name, "id": i.id, "archive": i.archive}))
        .collect();
    let mut vars = Map::new();
    vars.insert("images".into(), json!(list));
    c.run("images.yaml", IMAGES, SWARM_NODES, vars, events)
        .await
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_plans_load() {
        for (name, text) in [
            ("rollout.yaml", ROLLOUT),
            ("routing.yaml", ROUTING),
            ("images.yaml", IMAGES),
            ("object.yaml", OBJECT),
            ("prune.yaml", PRUNE),
            ("history.yaml", HISTORY),
            ("smoke.yaml", SMOKE),
        ] {
            let plan = Plan::from_text(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!plan.plays.is_empty(), "{name}");
        }
    }

    #[test]
    fn digest_separates_parts() {
        assert_ne!(digest(&[b"ab", b"c"]), digest(&[b"a", b"bc"]));
        assert_eq!(digest(&[b"x"]).len(), 64);
    }
}
