//! `minipaas code`: the command line of the env-file writers in `crate::deploy`. Parses flags,
//! calls the library and prints one line per file changed (or `nothing to do`); holds no file
//! logic of its own and never touches a host.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::deploy::{self, DeployError, Env, InitOptions, Role, Written};

/// The port `code route` proxies to when SERVICE has no `:PORT`: HTTP's own, which most web
/// images (nginx, httpd, many app servers) listen on; give the port for anything else.
pub const DEFAULT_ROUTE_PORT: u16 = 80;

#[derive(Debug, Subcommand)]
pub enum CodeCommand {
    /// Create or refresh the env: minipaas.yaml, compose.apps.yaml, runtime/*.yaml, caddy.json.
    ///
    /// Re-running keeps routes, roles, secret and config references, the version and the
    /// runtime settings already recorded; it never writes the project's compose files.
    Init(InitArgs),
    /// Route URL (`https://host/path`, `http://host/path`, `host/path` or `/path`) to SERVICE
    /// through Caddy, replacing a route with the same host and path.
    ///
    /// `/x` serves `/x` and everything under it; more specific routes always win. An `http://`
    /// URL turns off automatic HTTPS for its host. The service becomes a web service: 2
    /// replicas, an HTTP healthcheck on `/`, start-first rolling updates that roll back on
    /// failure.
    Route(RouteArgs),
    /// Make services workers: 1 replica, start-first rolling updates, no healthcheck.
    Worker(ServicesArgs),
    /// Make services swarm jobs: run to completion on each rollout, retried up to 3 times.
    Job(ServicesArgs),
    /// Make services cron jobs started by swarm-cronjob on a schedule (0 replicas otherwise).
    Cron(CronArgs),
}

#[derive(Debug, Args)]
pub struct EnvArg {
    /// The env directory.
    #[arg(long = "env", value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    env: EnvArg,
    /// A project compose file, relative to the env dir; repeat in `docker stack deploy -c`
    /// order. Required the first time; given again, it replaces the recorded list.
    #[arg(short = 'c', long = "compose-file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The cluster's inventory, relative to the env dir [first default: ../inventories/lab.yaml].
    #[arg(long, value_name = "PATH")]
    inventory: Option<PathBuf>,
    /// The swarm stack name [first default: minipaas].
    #[arg(long, value_name = "NAME")]
    stack: Option<String>,
    /// The host path-only routes are served on.
    #[arg(short = 'd', long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// How services are reached on the overlay network [first default: vip]; `dnsrr` where
    /// the kernel has no IPVS (minipaas lab nodes).
    #[arg(long, value_enum)]
    endpoint_mode: Option<crate::deploy::settings::EndpointMode>,
    /// The Caddy image the runtime runs [first default: caddy:2.9.1-alpine].
    #[arg(long, value_name = "IMAGE")]
    caddy_image: Option<String>,
    /// The PostgreSQL image the runtime runs [first default: postgres:17.4].
    #[arg(long, value_name = "IMAGE")]
    postgres_image: Option<String>,
}

#[derive(Debug, Args)]
pub struct RouteArgs {
    #[command(flatten)]
    env: EnvArg,
    /// `[http[s]://]HOST[/PATH]` or `/PATH`.
    url: String,
    /// SERVICE or SERVICE:PORT (the port the service listens on; default 80).
    target: String,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    env: EnvArg,
    /// Services of the project's compose files.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CronArgs {
    #[command(flatten)]
    env: EnvArg,
    /// Services of the project's compose files.
    #[arg(required = true, value_name = "SERVICE")]
    services: Vec<String>,
    /// The schedule: 5 fields (6 with seconds) or a descriptor like `@daily`.
    #[arg(long, value_name = "EXPR")]
    cron: String,
}

/// `SERVICE[:PORT]`.
fn parse_target(target: &str) -> Result<(String, u16), DeployError> {
    let bad = || DeployError::BadTarget {
        target: target.to_string(),
    };
    match target.split_once(':') {
        None => Ok((target.to_string(), DEFAULT_ROUTE_PORT)),
        Some((svc, port)) => match port.parse::<u16>() {
            Ok(p) if p > 0 && !svc.is_empty() => Ok((svc.to_string(), p)),
            _ => Err(bad()),
        },
    }
}

fn report(dir: &std::path::Path, written: &[Written]) {
    if written.is_empty() {
        println!("nothing to do");
    }
    for w in written {
        println!("{}", w.describe(dir));
    }
}

/// Runs one `code` subcommand.
pub fn run(cmd: CodeCommand) -> Result<i32, crate::commands::Error> {
    let (dir, written) = match cmd {
        CodeCommand::Init(a) => {
            let opts = InitOptions {
                files: a.files,
                inventory: a.inventory,
                stack: a.stack,
                domain: a.domain,
                endpoint_mode: a.endpoint_mode,
                caddy_image: a.caddy_image,
                postgres_image: a.postgres_image,
            };
            let written = deploy::init(&a.env.dir, &opts)?;
            if let Some(w) = Env::load(&a.env.dir)?.placement_warning()? {
                eprintln!("{w}");
            }
            (a.env.dir, written)
        }
        CodeCommand::Route(a) => {
            let (service, port) = parse_target(&a.target)?;
            let mut env = Env::load(&a.env.dir)?;
            let written = env.route(&a.url, &service, port)?;
            (env.dir, written)
        }
        CodeCommand::Worker(a) => role(a.env, &a.services, Role::Worker)?,
        CodeCommand::Job(a) => role(a.env, &a.services, Role::Job)?,
        CodeCommand::Cron(a) => role(a.env, &a.services, Role::Cron { schedule: a.cron })?,
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    report(&dir, &written);
    Ok(0)
}

fn role(
    env: EnvArg,
    services: &[String],
    role: Role,
) -> Result<(PathBuf, Vec<Written>), DeployError> {
    let mut env = Env::load(&env.dir)?;
    let written = env.set_role(services, &role)?;
    Ok((env.dir, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("web").unwrap(), ("web".into(), 80));
        assert_eq!(parse_target("web:8000").unwrap(), ("web".into(), 8000));
        for bad in ["web:", "web:0", "web:70000", ":80", "web:x"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
