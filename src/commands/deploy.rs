//! `minipaas deploy build|rollout|routing`, `minipaas secret ...` and `minipaas config ...`:
//! an env directory (deploy::env) turned into work on the cluster (deploy::cluster, images, objects, routing), run through
//! the provision engine with its progress and recap.

mod day2;

use std::future::Future;
use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use tokio::sync::mpsc::UnboundedSender;

use super::release::{self, CanaryAction};
use crate::deploy::cluster::{Cluster, OpsError};
use crate::deploy::env::{versioned_name, Env};
use crate::deploy::images::{self, BuildSpec, ImageArchive};
use crate::deploy::objects::{self, ObjectKind};
use crate::deploy::release::{CanaryError, OnFailure, ReleaseError};
use crate::deploy::routing;
use crate::deploy::stack::StackFile;
use crate::deploy::DeployError;
use crate::engine::{Event, Mode, Recap};
use crate::progress::{self, Format, Progress};

/// What every cluster-facing deploy command takes.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The env directory (holds minipaas.yaml).
    #[arg(long = "env", default_value = ".")]
    pub env: PathBuf,
    /// Inventory to deploy to, instead of the one minipaas.yaml names.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Option<PathBuf>,
    /// Change nothing; report what would change.
    #[arg(long)]
    pub check: bool,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Print ok and skipped tasks too.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum DeployCommand {
    /// Build the images of services with `build:` here, then load them on every swarm node
    /// whose copy differs (`docker save` over SSH; runtime images found here go along).
    Build(EnvArgs),
    /// Upload the stack files to the main manager, `docker stack deploy` them and wait until
    /// every service has converged and every job completed.
    /// Every step is recorded in the stack's history on the cluster; when the services do not
    /// converge, the stack goes back to what ran before.
    Rollout {
        #[command(flatten)]
        env: EnvArgs,
        /// Seconds to wait for the services to converge.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
        /// On failure, leave the stack as the failed rollout left it.
        #[arg(long)]
        no_rollback: bool,
    },
    /// Load caddy.json into Caddy on the node that runs the Caddy task.
    Routing(EnvArgs),
    /// Request every route through Caddy's published port on the node that runs it; fails
    /// (exit 1) unless each answers 2xx or 3xx within the timeout.
    Smoke {
        #[command(flatten)]
        env: EnvArgs,
        /// Seconds to keep retrying a route that does not answer yet.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Every rollout, rollback and canary step of the stack, oldest first, as kept on the
    /// cluster: time, version, who ran it from where, result.
    History(EnvArgs),
    /// Deploy the previous successful version again (or the one `--to` names).
    Rollback {
        #[command(flatten)]
        env: EnvArgs,
        /// A version from `deploy history`.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Run the env's version of SERVICE as `SERVICE-canary` next to the running one, behind
    /// the same route (traffic splits by replica count); then `canary promote` or `canary abort`.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Canary {
        #[command(subcommand)]
        action: Option<CanaryAction>,
        /// The service (as named in the compose files).
        #[arg(required = true)]
        service: Option<String>,
        /// Tasks of the canary.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        #[command(flatten)]
        env: EnvArgs,
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Every service of the stack: replicas, health, version, image, nodes. Exits 0 when all
    /// are running, 3 when some are pending, 4 when some are unhealthy or failed.
    Status(day2::StatusArgs),
    /// The logs of every task of one service, from the main manager.
    Logs(day2::LogsArgs),
    /// Replace the tasks of services (all but jobs and cron services without names) and wait
    /// until the stack has converged.
    Restart(day2::RestartArgs),
    /// Set replicated services to N replicas and record N in compose.apps.yaml, so that the
    /// next rollout keeps them.
    Scale(day2::ScaleArgs),
    /// Remove services, or with `--all` the whole stack (volumes, secrets and configs stay).
    Remove(day2::RemoveArgs),
}

#[derive(Debug, Subcommand)]
pub enum ObjectCommand {
    /// Create a new version from FILE (or stdin) and point the services at it.
    Create {
        /// Base name; the Docker object is named `<name>.<first 8 hex of sha256>`.
        name: String,
        /// Where to read the value; stdin when absent.
        file: Option<PathBuf>,
        /// Services that use it (mounted at /run/secrets/<name> or /<name>).
        #[arg(long = "for", required = true, num_args = 1..)]
        services: Vec<String>,
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Stop referencing NAME and remove its versions no service uses.
    Delete {
        name: String,
        #[command(flatten)]
        env: EnvArgs,
    },
    /// Remove every version no service uses and the env does not reference.
    Prune(EnvArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum DeployCommandError {
    #[error(transparent)]
    Env(#[from] DeployError),
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("cannot read the value from `{}`", .path.display())]
    Value {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the value of `{name}` is not UTF-8 text; Docker objects created by minipaas are text"
    )]
    NotText { name: String },
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Canary(#[from] CanaryError),
    #[error("stack `{stack}` on host `{host}` has no service `{service}` (services: {known})")]
    UnknownService {
        stack: String,
        host: String,
        service: String,
        known: String,
    },
    #[error("service `{service}` {reason}; `deploy {op}` leaves it alone")]
    Refused {
        op: &'static str,
        service: String,
        reason: day2::Refusal,
    },
    #[error("invalid scale `{arg}`: expected SERVICE=REPLICAS, e.g. `web=3`")]
    BadScale { arg: String },
}

impl DeployCommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            DeployCommandError::Ops(e) | DeployCommandError::Canary(CanaryError::Ops(e)) => {
                e.exit_code()
            }
            _ => 2,
        }
    }
}

type Result<T> = std::result::Result<T, DeployCommandError>;

pub(crate) struct Target {
    pub env: Env,
    pub cluster: Cluster,
    pub format: Format,
    pub verbose: bool,
}

pub(crate) async fn open(a: &EnvArgs) -> Result<Target> {
    let env = Env::load(&a.env)?;
    let inventory = a.inventory.clone().unwrap_or_else(|| env.inventory_path());
    let mode = if a.check { Mode::Check } else { Mode::Apply };
    let cluster = reach(&inventory, mode).await?;
    Ok(Target {
        env,
        cluster,
        format: a.format,
        verbose: a.verbose,
    })
}

/// The cluster of `inventory`, through the first of its managers that answers (said on
/// stderr when that is not the main one).
pub(crate) async fn reach(
    inventory: &std::path::Path,
    mode: Mode,
) -> std::result::Result<Cluster, OpsError> {
    let mut cluster = Cluster::load(inventory, mode)?;
    cluster.reach_manager().await?;
    if let Some(notice) = cluster.fallback_notice() {
        eprintln!("{notice}");
    }
    Ok(cluster)
}

/// Runs one engine-backed operation with progress, prints the recap and returns it.
async fn drive<F, Fut>(t: &Target, op: F) -> Result<Recap>
where
    F: FnOnce(UnboundedSender<Event>) -> Fut,
    Fut: Future<Output = std::result::Result<Recap, OpsError>>,
{
    let recap = run_op(t, op).await?;
    finish(t, &recap);
    Ok(recap)
}

/// Runs one engine-backed operation with progress and returns its recap, unprinted: commands
/// that run several plans print one recap at the end ([`finish`]).
pub(crate) async fn run_op<F, Fut, E>(t: &Target, op: F) -> Result<Recap>
where
    F: FnOnce(UnboundedSender<Event>) -> Fut,
    Fut: Future<Output = std::result::Result<Recap, E>>,
    DeployCommandError: From<E>,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let progress = Progress::new(t.format, t.verbose);
    let (recap, ()) = tokio::join!(op(tx), progress.render(rx));
    Ok(recap?)
}

/// Prints the recap: JSON on stdout, or the table on stderr.
pub(crate) fn finish(t: &Target, recap: &Recap) {
    match t.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&recap).unwrap_or_else(|_| "{}".into())
        ),
        Format::Human => eprint!("{}", progress::recap_table(recap)),
    }
}

pub(crate) fn code(recap: &Recap) -> i32 {
    if recap.success() {
        0
    } else {
        1
    }
}

pub async fn run(cmd: DeployCommand) -> std::result::Result<i32, crate::commands::Error> {
    Ok(match cmd {
        DeployCommand::Build(a) => build(&a).await?,
        DeployCommand::Rollout {
            env,
            timeout,
            no_rollback,
        } => {
            let on_failure = if no_rollback {
                OnFailure::Leave
            } else {
                OnFailure::RollBack
            };
            release::rollout(&env, timeout, on_failure).await?
        }
        DeployCommand::Routing(a) => routing(&a).await?,
        DeployCommand::Smoke { env, timeout } => smoke(&env, timeout).await?,
        DeployCommand::History(a) => release::show_history(&a).await?,
        DeployCommand::Rollback { env, to, timeout } => {
            release::rollback(&env, to.as_deref(), timeout).await?
        }
        DeployCommand::Canary {
            action: Some(action),
            ..
        } => release::canary_action(action).await?,
        DeployCommand::Canary {
            action: None,
            service,
            replicas,
            env,
            timeout,
        } => {
            let service = service.unwrap_or_default();
            release::canary(&env, &service, replicas, timeout).await?
        }
        DeployCommand::Status(a) => day2::status(&a).await?,
        DeployCommand::Logs(a) => day2::logs(&a).await?,
        DeployCommand::Restart(a) => day2::restart(&a).await?,
        DeployCommand::Scale(a) => day2::scale(&a).await?,
        DeployCommand::Remove(a) => day2::remove(&a).await?,
    })
}

async fn build(a: &EnvArgs) -> Result<i32> {
    let t = open(a).await?;
    let mut images: Vec<ImageArchive> = Vec::new();
    let cache = t.env.dir.join(".minipaas").join("images");
    for b in t.env.builds()? {
        // Services sharing an image (one `build:`, several commands) build it once.
        if images.iter().any(|i| i.name == b.image) {
            continue;
        }
        eprintln!("building `{}` for service `{}`", b.image, b.service);
        let spec = BuildSpec {
            service: b.service.clone(),
            image: b.image.clone(),
            context: b.context.clone(),
            dockerfile: b.dockerfile.clone(),
            args: b.args.clone().into_iter().collect(),
        };
        images.push(images::build_image(&spec, &cache).await?);
    }
    // The runtime's images go along when this machine has them: clusters without a registry
    // cannot pull them. Elsewhere nodes pull them as usual.
    let rt = &t.env.settings.runtime;
    for (on, image) in [
        (rt.caddy, &rt.caddy_image),
        (rt.postgres, &rt.postgres_image),
    ] {
        if on {
            if let Some(a) = images::save_image(image, &cache).await? {
                images.push(a);
            }
        }
    }
    if images.is_empty() {
        eprintln!("no service has `build:` and no runtime image is here; nothing to do");
        return Ok(0);
    }
    let recap = drive(&t, |tx| images::ship_images(&t.cluster, &images, tx)).await?;
    Ok(code(&recap))
}

/// Stack files keep their order on the manager through a numeric prefix, so two user files
/// with the same name in different directories cannot collide.
pub(crate) fn stack_files(env: &Env) -> Result<Vec<StackFile>> {
    let mut out = Vec::new();
    for (i, path) in env.stack_files().iter().enumerate() {
        let content = std::fs::read_to_string(path).map_err(|source| DeployError::Read {
            path: path.clone(),
            source,
        })?;
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "stack.yaml".into());
        out.push(StackFile {
            name: format!("{:02}-{base}", i + 1),
            content,
        });
    }
    Ok(out)
}

async fn routing(a: &EnvArgs) -> Result<i32> {
    let t = open(a).await?;
    let path = t.env.caddy_json_path();
    let routes =
        std::fs::read_to_string(&path).map_err(|source| DeployError::Read { path, source })?;
    let stack = t.env.stack_name().to_string();
    let recap = drive(&t, |tx| routing::routing(&t.cluster, &stack, &routes, tx)).await?;
    Ok(code(&recap))
}

async fn smoke(a: &EnvArgs, timeout: u64) -> Result<i32> {
    let t = open(a).await?;
    let routes = crate::deploy::caddy::Routes::load(&t.env.caddy_json_path())?;
    if routes.routes.is_empty() {
        eprintln!("caddy.json has no routes; nothing to ask (add one with `minipaas code route`)");
        return Ok(0);
    }
    // A route without a host answers any; a wildcard host answers any name under it.
    let asks: Vec<(String, String)> = routes
        .routes
        .iter()
        .map(|r| {
            let host = match &r.host {
                None => "localhost".to_string(),
                Some(h) => h.replacen('*', "smoke", 1),
            };
            (host, r.path.clone())
        })
        .collect();
    let stack = t.env.stack_name().to_string();
    let port = t.env.settings.runtime.http_port;
    let recap = drive(&t, |tx| {
        routing::smoke(
            &t.cluster,
            &stack,
            port,
            &asks,
            std::time::Duration::from_secs(timeout),
            tx,
        )
    })
    .await?;
    Ok(code(&recap))
}

pub async fn run_objects(
    kind: ObjectKind,
    cmd: ObjectCommand,
) -> std::result::Result<i32, crate::commands::Error> {
    Ok(match cmd {
        ObjectCommand::Create {
            name,
            file,
            services,
            env,
        } => create(kind, &name, file, &services, &env).await?,
        ObjectCommand::Delete { name, env } => delete(kind, &name, &env).await?,
        ObjectCommand::Prune(env) => prune(kind, None, &env).await?,
    })
}

fn read_value(name: &str, file: Option<PathBuf>) -> Result<String> {
    let bytes = match &file {
        Some(p) => std::fs::read(p).map_err(|source| DeployCommandError::Value {
            path: p.clone(),
            source,
        })?,
        None => {
            let mut b = Vec::new();
            std::io::stdin()
                .read_to_end(&mut b)
                .map_err(|source| DeployCommandError::Value {
                    path: "stdin".into(),
                    source,
                })?;
            b
        }
    };
    String::from_utf8(bytes).map_err(|_| DeployCommandError::NotText { name: name.into() })
}

async fn create(
    kind: ObjectKind,
    base: &str,
    file: Option<PathBuf>,
    services: &[String],
    a: &EnvArgs,
) -> Result<i32> {
    let mut t = open(a).await?;
    let value = read_value(base, file)?;
    let name = versioned_name(base, value.as_bytes());
    let stack = t.env.stack_name().to_string();
    let recap = drive(&t, |tx| {
        objects::create_object(&t.cluster, kind, &stack, base, &name, &value, tx)
    })
    .await?;
    if !recap.success() {
        return Ok(1);
    }
    if a.check {
        return Ok(0);
    }
    if t.env.set_object_ref(kind, base, &name, services)? {
        eprintln!(
            "{} `{name}` recorded for {}; `minipaas deploy rollout` gives it to the services",
            kind.noun(),
            services.join(", ")
        );
    } else {
        eprintln!("{} `{name}` already recorded; nothing to do", kind.noun());
    }
    Ok(0)
}

async fn delete(kind: ObjectKind, base: &str, a: &EnvArgs) -> Result<i32> {
    let mut t = open(a).await?;
    if !a.check && t.env.remove_object_ref(kind, base)? {
        eprintln!(
            "`{base}` removed from the services; versions still in use go at the next \
             `deploy rollout` and `{} prune`",
            kind.noun()
        );
    }
    prune_with(&t, kind, Some(base)).await
}

async fn prune(kind: ObjectKind, base: Option<&str>, a: &EnvArgs) -> Result<i32> {
    let t = open(a).await?;
    prune_with(&t, kind, base).await
}

async fn prune_with(t: &Target, kind: ObjectKind, base: Option<&str>) -> Result<i32> {
    let keep: Vec<String> = t.env.object_refs(kind)?.into_iter().collect();
    let stack = t.env.stack_name().to_string();
    let recap = drive(t, |tx| {
        objects::prune_objects(&t.cluster, kind, &stack, base, &keep, tx)
    })
    .await?;
    Ok(code(&recap))
}
