//! Administrative reads and writes behind `sql queue ...` and `sql stream ...`: thin calls of the
//! SQL functions, decoded into typed rows. Names are checked before they are put in a query (and
//! quoted as literals); the SQL checks them again and quotes identifiers with format('%I').

use serde::{Deserialize, Serialize};

use super::target::literal;
use super::{check_name, Psql, SqlError};

/// A queue and its settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueInfo {
    pub name: String,
    pub max_attempts: i32,
    pub lease_seconds: f64,
    pub backoff_base_seconds: f64,
    pub backoff_max_seconds: f64,
    pub retention: String,
    pub created_at: String,
}

/// A queue's metrics, as `minipaas_queue_stats` computes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueStats {
    pub queue: String,
    pub length: i64,
    pub visible: i64,
    pub in_flight: i64,
    pub delayed: i64,
    pub done: i64,
    pub dead: i64,
    pub oldest_age_seconds: Option<f64>,
}

/// Which jobs `purge` deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Purge {
    Done,
    Dead,
    Pending,
    All,
}

impl Purge {
    fn as_sql(self) -> &'static str {
        match self {
            Purge::Done => "done",
            Purge::Dead => "dead",
            Purge::Pending => "pending",
            Purge::All => "all",
        }
    }
}

/// A stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamInfo {
    pub name: String,
    pub created_at: String,
}

/// One row per stream and consumer group (a NULL group for a stream without groups).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamStats {
    pub stream: String,
    pub events: i64,
    pub last_id: Option<i64>,
    pub oldest_at: Option<String>,
    pub group_name: Option<String>,
    pub group_last_id: Option<i64>,
    pub lag: Option<i64>,
    pub committed_at: Option<String>,
}

#[derive(Deserialize)]
struct Count {
    n: i64,
}

fn opt_name(name: Option<&str>) -> Result<String, SqlError> {
    match name {
        Some(n) => {
            check_name(n)?;
            Ok(literal(n))
        }
        None => Ok("NULL".into()),
    }
}

async fn count(psql: &Psql, action: &str, query: &str) -> Result<i64, SqlError> {
    let rows: Vec<Count> = psql.rows(action, query).await?;
    Ok(rows.first().map_or(0, |c| c.n))
}

pub async fn queue_list(psql: &Psql) -> Result<Vec<QueueInfo>, SqlError> {
    psql.rows(
        "listing queues",
        "SELECT name, max_attempts, lease_seconds, backoff_base_seconds, backoff_max_seconds, \
         retention::text AS retention, created_at FROM minipaas_queues ORDER BY name",
    )
    .await
}

/// Metrics of one queue, or of all when `name` is `None`.
pub async fn queue_stats(psql: &Psql, name: Option<&str>) -> Result<Vec<QueueStats>, SqlError> {
    let q = format!("SELECT * FROM minipaas_queue_stats({})", opt_name(name)?);
    psql.rows("reading queue metrics", &q).await
}

/// Deletes jobs of one kind; returns how many.
pub async fn queue_purge(psql: &Psql, name: &str, which: Purge) -> Result<i64, SqlError> {
    check_name(name)?;
    let q = format!(
        "SELECT minipaas_queue_purge({}, {}) AS n",
        literal(name),
        literal(which.as_sql())
    );
    count(psql, &format!("purging queue `{name}`"), &q).await
}

/// Moves dead jobs (all, or the given ids) back to pending; returns how many.
pub async fn queue_retry_dead(psql: &Psql, name: &str, ids: &[i64]) -> Result<i64, SqlError> {
    check_name(name)?;
    let ids = if ids.is_empty() {
        "NULL".to_string()
    } else {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!("ARRAY[{}]::bigint[]", list.join(","))
    };
    let q = format!(
        "SELECT minipaas_queue_retry_dead({}, {ids}) AS n",
        literal(name)
    );
    count(psql, &format!("retrying dead jobs of `{name}`"), &q).await
}

pub async fn stream_list(psql: &Psql) -> Result<Vec<StreamInfo>, SqlError> {
    psql.rows(
        "listing streams",
        "SELECT name, created_at FROM minipaas_streams ORDER BY name",
    )
    .await
}

/// Events and group lag of one stream, or of all when `name` is `None`.
pub async fn stream_stats(psql: &Psql, name: Option<&str>) -> Result<Vec<StreamStats>, SqlError> {
    let q = format!("SELECT * FROM minipaas_stream_stats({})", opt_name(name)?);
    psql.rows("reading stream metrics", &q).await
}

/// Deletes events every group has committed, only those older than `older_than_seconds` when
/// given; returns how many.
pub async fn stream_trim(
    psql: &Psql,
    name: &str,
    older_than_seconds: Option<f64>,
) -> Result<i64, SqlError> {
    check_name(name)?;
    let older = match older_than_seconds {
        Some(s) => format!("make_interval(secs => {s})"),
        None => "NULL".into(),
    };
    let q = format!(
        "SELECT minipaas_stream_trim({}, {older}) AS n",
        literal(name)
    );
    count(psql, &format!("trimming stream `{name}`"), &q).await
}
