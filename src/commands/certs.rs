//! `minipaas certs`: the command line of the certificate library in `crate::certs`. Parses
//! flags, calls the library and prints what it did; holds no certificate logic of its own.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::certs::{self, format_time, CaInit, KeyType, Role, Validity, CA_DAYS, LEAF_DAYS};

/// Where the CA lives unless `--dir` says otherwise: `./certs`. A CA belongs to one cluster, so
/// it sits with that cluster's files (inventory, env dir) rather than in one per-user place
/// shared by every cluster.
const DEFAULT_DIR: &str = "certs";

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create the cluster's CA (ca.pem, ca-key.pem) once; an existing CA is never replaced
    /// without --force.
    ///
    /// Re-running is safe: with a CA already in DIR it says so, changes nothing and exits 0.
    /// Replacing the CA (--force) makes every server and client certificate it issued invalid.
    Ca(CaArgs),
    /// Issue the Docker daemon's certificate (server-cert.pem, server-key.pem, plus ca.pem) from
    /// the existing CA.
    ///
    /// Every --host and --ip becomes a subject alternative name; the first --host is the common
    /// name. Re-running issues a new certificate with a new key (rotation): client certificates
    /// from the same CA stay valid.
    Server(ServerArgs),
    /// Issue a client certificate (cert.pem, key.pem, plus ca.pem) into OUT, the names Docker's
    /// DOCKER_CERT_PATH expects.
    Client(ClientArgs),
    /// Report on every certificate in DIR: validity, names, chain to ca.pem, matching keys.
    ///
    /// Warns about certificates expiring within 30 days. Exits 1 when any certificate is
    /// expired, not yet valid, not signed by the CA, or its key file does not match it.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// The CA directory, created 0700 if missing. The default, ./certs under the current
    /// directory, keeps the CA with the cluster it belongs to (one CA per cluster); keep
    /// ca-key.pem out of version control.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// The CA's common name.
    #[arg(long, value_name = "NAME", default_value = "minipaas CA")]
    cn: String,
    /// Key algorithm. RSA is not offered: the crypto backend cannot generate RSA keys.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    key_type: KeyType,
    /// Lifetime in days.
    #[arg(long, value_name = "N", default_value_t = CA_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
    /// Replace an existing CA; every certificate it issued stops being accepted.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A DNS name clients use to reach the daemon; repeat for more. The first is the common
    /// name. An IP address given here is treated like --ip.
    #[arg(long = "host", value_name = "NAME", required = true)]
    hosts: Vec<String>,
    /// An IP address clients use to reach the daemon; repeat for more.
    #[arg(long = "ip", value_name = "ADDR")]
    ips: Vec<IpAddr>,
    /// The CA directory (holding ca.pem and ca-key.pem).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Where to write server-cert.pem, server-key.pem and ca.pem [default: the CA directory].
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    key_type: KeyType,
    /// Lifetime in days (cut at the CA's expiry).
    #[arg(long, value_name = "N", default_value_t = LEAF_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The client's common name (who holds this certificate).
    #[arg(long, value_name = "NAME", default_value = "minipaas-client")]
    name: String,
    /// Where to write cert.pem, key.pem and ca.pem (created 0700 if missing).
    #[arg(long, value_name = "OUT")]
    out: PathBuf,
    /// The CA directory (holding ca.pem and ca-key.pem).
    #[arg(long, value_name = "CADIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Key algorithm.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    key_type: KeyType,
    /// Lifetime in days (cut at the CA's expiry).
    #[arg(long, value_name = "N", default_value_t = LEAF_DAYS,
          value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The directory to check (a CA directory, a server's TLS directory or a client's
    /// DOCKER_CERT_PATH).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// The CA certificate to check against [default: DIR/ca.pem].
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

/// Runs one `certs` subcommand; the exit code is 1 when `check` found a problem.
pub fn run(cmd: CertsCommand) -> Result<i32, crate::commands::Error> {
    match cmd {
        CertsCommand::Ca(a) => {
            let validity = Validity::days(a.days);
            match certs::init_ca(&a.dir, &a.cn, a.key_type, validity, a.force)? {
                CaInit::Created(ca) => println!(
                    "created CA `{}` in `{}` (ca.pem, ca-key.pem), expires {}",
                    ca.common_name(),
                    a.dir.display(),
                    format_time(ca.not_after())
                ),
                CaInit::Replaced(ca) => println!(
                    "replaced the CA in `{}` with `{}`, expires {}; certificates issued by the \
                     old CA are no longer accepted: issue them again",
                    a.dir.display(),
                    ca.common_name(),
                    format_time(ca.not_after())
                ),
                CaInit::Exists(ca) => println!(
                    "CA `{}` already exists in `{}` (expires {}); nothing changed \
                     (--force replaces it and invalidates every certificate it issued)",
                    ca.common_name(),
                    a.dir.display(),
                    format_time(ca.not_after())
                ),
            }
            Ok(0)
        }
        CertsCommand::Server(a) => {
            let role = Role::Server {
                hosts: a.hosts,
                ips: a.ips,
            };
            let out = a.out.unwrap_or_else(|| a.dir.clone());
            issue(&a.dir, &out, &role, a.key_type, a.days)
        }
        CertsCommand::Client(a) => {
            let role = Role::Client { name: a.name };
            issue(&a.dir, &a.out, &role, a.key_type, a.days)
        }
        CertsCommand::Check(a) => {
            let report =
                certs::check_dir(&a.dir, a.ca.as_deref(), time::OffsetDateTime::now_utc())?;
            println!("{report}");
            Ok(if report.has_problems() { 1 } else { 0 })
        }
    }
}

fn issue(
    ca_dir: &Path,
    out: &Path,
    role: &Role,
    key_type: KeyType,
    days: u32,
) -> Result<i32, crate::commands::Error> {
    let ca = certs::Ca::load(ca_dir)?;
    let issued = ca.issue(role, key_type, Validity::days(days))?;
    let written = issued.write(out)?;
    let what = match role {
        Role::Server { hosts, ips } => {
            let names: Vec<String> = hosts
                .iter()
                .cloned()
                .chain(ips.iter().map(IpAddr::to_string))
                .collect();
            format!("server certificate for {}", names.join(", "))
        }
        Role::Client { name } => format!("client certificate `{name}`"),
    };
    println!(
        "issued {what}, signed by `{}`, expires {}",
        ca.common_name(),
        format_time(issued.not_after())
    );
    if issued.clamped() {
        println!("note: the lifetime was cut at the CA's own expiry");
    }
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(0)
}
