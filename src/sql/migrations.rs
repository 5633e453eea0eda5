//! The embedded migrations (sql/NNN_name.sql) and how they are installed: the recorded versions
//! live in `minipaas_schema_migrations`, which each file also fills itself so that plain `psql -f`
//! or dbmate installs are recognised. Each pending migration runs in its own transaction under an
//! advisory lock; the files are idempotent, so two concurrent migrators are harmless.

use serde::{Deserialize, Serialize};

use super::{Psql, SqlError};

/// One migration shipped in the binary.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in version order.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "001_queues",
        sql: include_str!("../../sql/001_queues.sql"),
    },
    Migration {
        version: 2,
        name: "002_streams",
        sql: include_str!("../../sql/002_streams.sql"),
    },
];

/// The newest version this binary knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A version recorded in the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub applied_at: String,
}

/// What the database holds against what the binary knows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The highest recorded version, 0 when nothing is installed.
    pub installed: i64,
    pub known: i64,
    pub applied: Vec<Applied>,
    /// Names of the shipped migrations not recorded yet.
    pub pending: Vec<String>,
}

const STATUS_SCRIPT: &str = r#"
SELECT to_regclass('minipaas_schema_migrations') IS NOT NULL AS minipaas_installed \gset
\if :minipaas_installed
SELECT coalesce(json_agg(json_build_object('version', version, 'name', name, 'applied_at', applied_at)
    ORDER BY version), '[]'::json) FROM minipaas_schema_migrations;
\else
SELECT '[]';
\endif
"#;

/// Reads the recorded versions.
pub async fn status(psql: &Psql) -> Result<Status, SqlError> {
    let out = psql
        .run("reading the schema version", STATUS_SCRIPT)
        .await?;
    let applied: Vec<Applied> = psql.decode("reading the schema version", &out)?;
    let installed = applied.iter().map(|a| a.version).max().unwrap_or(0);
    let pending = MIGRATIONS
        .iter()
        .filter(|m| !applied.iter().any(|a| a.version == m.version))
        .map(|m| m.name.to_string())
        .collect();
    Ok(Status {
        installed,
        known: latest(),
        applied,
        pending,
    })
}

/// Installs what is pending, each migration in its own transaction, and returns the names
/// applied (empty when the database is current). Refuses, changing nothing, when the database
/// records a version newer than this binary knows.
pub async fn migrate(psql: &Psql) -> Result<Vec<String>, SqlError> {
    let st = status(psql).await?;
    if st.installed > st.known {
        return Err(SqlError::NewerSchema {
            target: psql.target.describe(),
            installed: st.installed,
            known: st.known,
        });
    }
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if !st.pending.iter().any(|p| p == m.name) {
            continue;
        }
        let script = format!(
            "BEGIN;\nSELECT pg_advisory_xact_lock(hashtext('minipaas_schema_migrations')) \\g /dev/null\n{}\nCOMMIT;",
            m.sql
        );
        psql.run(&format!("migration `{}`", m.name), &script)
            .await?;
        done.push(m.name.to_string());
    }
    Ok(done)
}
