//! `minipaas sql`: arguments, and rendering of what [`crate::sql`] returns as a table or as JSON.
//! The work itself (migrations, queue and stream administration) lives in `src/sql/`.

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::sql::admin::{self, Purge, QueueInfo, QueueStats, StreamInfo, StreamStats};
use crate::sql::migrations::{self, Status};
use crate::sql::{DatabaseUrl, Psql, SqlError, SqlTarget};
use crate::transport::{LocalTransport, Transport};

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The database: postgres://user[:password]@host[:port]/name, reached by `psql` on this
    /// machine; `DATABASE_URL` when not given. Leave the password out of it and psql takes it
    /// from `PGPASSWORD` or ~/.pgpass, as libpq does: a password in an argument is in the
    /// process list. One that is given travels to psql on its stdin, never on a command line.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Or a deploy env: the SQL runs in its stack's PostgreSQL service (`psql` inside the
    /// container, over SSH to the node that runs it, found through the env's inventory).
    #[arg(long, global = true, value_name = "DIR")]
    pub env: Option<std::path::PathBuf>,
    /// With --env: the database in that service.
    #[arg(long, global = true, value_name = "NAME", default_value = "postgres")]
    pub database: String,
    /// Output of lists and metrics.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: SqlCommand,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// Install or upgrade the queue and stream schema (idempotent).
    Migrate,
    /// Installed schema version and pending migrations.
    Status,
    /// Durable job queues.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Durable event streams.
    #[command(subcommand)]
    Stream(StreamCommand),
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Queues and their settings.
    List,
    /// Length, visible, in flight, delayed, done, dead jobs and the oldest job's age.
    Stats { name: Option<String> },
    /// Delete jobs of one kind.
    Purge {
        name: String,
        #[arg(long, value_enum, default_value_t = Purge::Done)]
        which: Purge,
    },
    /// Move dead-lettered jobs back to pending with fresh attempts.
    RetryDead {
        name: String,
        /// Only these job ids (default: all dead jobs).
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Streams.
    List,
    /// Events, last position, and each consumer group's offset and lag.
    Stats { name: Option<String> },
    /// Delete events every consumer group has committed.
    Trim {
        name: String,
        /// Only events older than this many seconds.
        #[arg(long, value_name = "SECONDS")]
        older_than: Option<f64>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SqlCommandError {
    #[error("no database given: pass --database-url postgres://user@host/name or --env DIR")]
    NoTarget,
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Env(#[from] crate::deploy::DeployError),
    #[error(transparent)]
    Cluster(#[from] crate::deploy::cluster::OpsError),
    #[error("cannot reach `{host}` for service `{service}`")]
    Connect {
        host: String,
        service: String,
        #[source]
        source: Box<crate::transport::TransportError>,
    },
    #[error("service `{service}` runs no task (is the stack rolled out?)")]
    NoTask { service: String },
}

impl SqlCommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            SqlCommandError::NoTarget => 2,
            SqlCommandError::Sql(e) => e.exit_code(),
            SqlCommandError::Env(e) => e.exit_code(),
            SqlCommandError::Cluster(_) => 2,
            SqlCommandError::Connect { .. } | SqlCommandError::NoTask { .. } => 1,
        }
    }
}

pub async fn run(args: SqlArgs) -> Result<i32, crate::commands::Error> {
    Ok(run_inner(args).await?)
}

async fn connect(
    cluster: &crate::deploy::cluster::Cluster,
    name: &str,
    service: &str,
) -> Result<Transport, SqlCommandError> {
    let host = cluster
        .inventory
        .host(name)
        .expect("names come from the inventory");
    crate::engine::transport_for(
        &cluster.inventory,
        host,
        cluster.host_key_policy,
        std::time::Duration::from_secs(10),
    )
    .await
    .map_err(|source| SqlCommandError::Connect {
        host: name.to_string(),
        service: service.to_string(),
        source: Box::new(source),
    })
}

/// The database the arguments name, connected.
async fn psql(args: &SqlArgs) -> Result<Psql, SqlCommandError> {
    // An explicit --env wins over a DATABASE_URL left in the environment.
    if let Some(url) = args.database_url.as_ref().filter(|_| args.env.is_none()) {
        return Ok(Psql {
            transport: Transport::Local(LocalTransport::new("localhost")),
            target: SqlTarget::Url(DatabaseUrl::parse(url)?),
        });
    }
    let dir = args.env.as_ref().ok_or(SqlCommandError::NoTarget)?;
    let env = crate::deploy::env::Env::load(dir)?;
    let cluster = super::deploy::reach(&env.inventory_path(), crate::engine::Mode::Apply).await?;
    let service = format!("{}_postgres", env.stack_name());
    // The manager knows where the task runs; a node of that name in the inventory is where
    // psql runs (swarm node names are host names, which inventories usually repeat).
    let manager = connect(&cluster, cluster.manager.as_str(), &service).await?;
    let out = manager
        .exec(
            &format!(
                "docker service ps {service} --filter desired-state=running --format '{{{{.Node}}}}' | head -n 1"
            ),
            None,
        )
        .await
        .map_err(|source| SqlCommandError::Connect {
            host: cluster.manager.0.clone(),
            service: service.clone(),
            source: Box::new(source),
        })?;
    let node = out.stdout_str().trim().to_string();
    if node.is_empty() {
        return Err(SqlCommandError::NoTask { service });
    }
    let transport = if node != cluster.manager.0 && cluster.inventory.host(&node).is_some() {
        manager.close().await;
        connect(&cluster, &node, &service).await?
    } else {
        manager
    };
    Ok(Psql {
        transport,
        target: SqlTarget::Service {
            service,
            database: args.database.clone(),
        },
    })
}

async fn run_inner(args: SqlArgs) -> Result<i32, SqlCommandError> {
    let psql = psql(&args).await?;
    let format = args.format;
    match args.command {
        SqlCommand::Migrate => {
            let applied = migrations::migrate(&psql).await?;
            for name in &applied {
                println!("applied {name}");
            }
            println!(
                "{} migration(s) applied; schema version {}",
                applied.len(),
                migrations::latest()
            );
        }
        SqlCommand::Status => {
            let st = migrations::status(&psql).await?;
            print_status(&st, format);
            if st.installed > st.known {
                return Err(SqlError::NewerSchema {
                    target: psql.target.describe(),
                    installed: st.installed,
                    known: st.known,
                }
                .into());
            }
        }
        SqlCommand::Queue(QueueCommand::List) => {
            print_rows(&admin::queue_list(&psql).await?, format)
        }
        SqlCommand::Queue(QueueCommand::Stats { name }) => {
            print_rows(&admin::queue_stats(&psql, name.as_deref()).await?, format)
        }
        SqlCommand::Queue(QueueCommand::Purge { name, which }) => {
            let n = admin::queue_purge(&psql, &name, which).await?;
            print_count(format, "deleted", n, &format!("jobs from `{name}`"));
        }
        SqlCommand::Queue(QueueCommand::RetryDead { name, ids }) => {
            let n = admin::queue_retry_dead(&psql, &name, &ids).await?;
            print_count(format, "retried", n, &format!("dead jobs of `{name}`"));
        }
        SqlCommand::Stream(StreamCommand::List) => {
            print_rows(&admin::stream_list(&psql).await?, format)
        }
        SqlCommand::Stream(StreamCommand::Stats { name }) => {
            print_rows(&admin::stream_stats(&psql, name.as_deref()).await?, format)
        }
        SqlCommand::Stream(StreamCommand::Trim { name, older_than }) => {
            let n = admin::stream_trim(&psql, &name, older_than).await?;
            print_count(format, "deleted", n, &format!("events from `{name}`"));
        }
    }
    Ok(0)
}

fn print_count(format: Format, verb: &str, n: i64, what: &str) {
    match format {
        Format::Json => println!("{}", serde_json::json!({ verb: n })),
        Format::Table => println!("{verb} {n} {what}"),
    }
}

fn print_status(st: &Status, format: Format) {
    if format == Format::Json {
        println!("{}", to_json(st));
        return;
    }
    println!(
        "schema version: {} (this minipaas knows {})",
        st.installed, st.known
    );
    if st.pending.is_empty() {
        println!("pending: none");
    } else {
        println!("pending: {}", st.pending.join(", "));
    }
    let rows: Vec<Vec<String>> = st
        .applied
        .iter()
        .map(|a| vec![a.version.to_string(), a.name.clone(), a.applied_at.clone()])
        .collect();
    if !rows.is_empty() {
        print!("{}", table(&["VERSION", "NAME", "APPLIED AT"], &rows));
    }
}

fn to_json<T: Serialize + ?Sized>(v: &T) -> String {
    // Serializing plain structs of strings and numbers cannot fail.
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// Rows that render as a table.
trait Tabular: Serialize {
    const HEADER: &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

impl Tabular for QueueInfo {
    const HEADER: &'static [&'static str] = &[
        "QUEUE",
        "MAX ATTEMPTS",
        "LEASE S",
        "BACKOFF S",
        "BACKOFF MAX S",
        "RETENTION",
        "CREATED",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.max_attempts.to_string(),
            self.lease_seconds.to_string(),
            self.backoff_base_seconds.to_string(),
            self.backoff_max_seconds.to_string(),
            self.retention.clone(),
            self.created_at.clone(),
        ]
    }
}

impl Tabular for QueueStats {
    const HEADER: &'static [&'static str] = &[
        "QUEUE",
        "LENGTH",
        "VISIBLE",
        "IN FLIGHT",
        "DELAYED",
        "DONE",
        "DEAD",
        "OLDEST AGE S",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.queue.clone(),
            self.length.to_string(),
            self.visible.to_string(),
            self.in_flight.to_string(),
            self.delayed.to_string(),
            self.done.to_string(),
            self.dead.to_string(),
            opt(&self.oldest_age_seconds.map(|s| format!("{s:.1}"))),
        ]
    }
}

impl Tabular for StreamInfo {
    const HEADER: &'static [&'static str] = &["STREAM", "CREATED"];
    fn cells(&self) -> Vec<String> {
        vec![self.name.clone(), self.created_at.clone()]
    }
}

impl Tabular for StreamStats {
    const HEADER: &'static [&'static str] = &[
        "STREAM",
        "EVENTS",
        "LAST ID",
        "GROUP",
        "GROUP OFFSET",
        "LAG",
        "COMMITTED",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.stream.clone(),
            self.events.to_string(),
            opt(&self.last_id),
            opt(&self.group_name),
            opt(&self.group_last_id),
            opt(&self.lag),
            opt(&self.committed_at),
        ]
    }
}

fn print_rows<T: Tabular>(rows: &[T], format: Format) {
    match format {
        Format::Json => println!("{}", to_json(rows)),
        Format::Table => {
            let cells: Vec<Vec<String>> = rows.iter().map(Tabular::cells).collect();
            print!("{}", table(T::HEADER, &cells));
        }
    }
}

/// Left-aligned columns separated by two spaces.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", parts.join("  ").trim_end())
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["A", "BB"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
    }
}
