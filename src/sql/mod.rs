//! `minipaas sql`: the queue and stream SQL the binary embeds (sql/*.sql), its migrations, and the
//! administrative reads and writes behind `sql queue ...` and `sql stream ...`. Everything reaches
//! the database through [`target::Psql`]; this layer never prints (commands render its results).

pub mod admin;
pub mod migrations;
pub mod target;

pub use target::{DatabaseUrl, Psql, SqlTarget};

/// What can go wrong talking to a database. Messages name the target without its password.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("bad database URL: {reason}")]
    BadUrl { reason: String },
    #[error(
        "invalid name `{name}`: names match ^[a-z_][a-z0-9_]*$ and have at most 63 characters"
    )]
    InvalidName { name: String },
    #[error("{target}: cannot run psql")]
    Transport {
        target: String,
        #[source]
        // boxed: the transport error is large and this enum travels in every Result
        source: Box<crate::transport::TransportError>,
    },
    #[error("{target}: {action} failed: {message}")]
    Psql {
        target: String,
        action: String,
        message: String,
    },
    #[error("{target}: {action}: psql printed something that is not the expected JSON")]
    BadOutput {
        target: String,
        action: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{target}: schema version {installed} is newer than this minipaas knows ({known}); refusing to touch it: use a newer minipaas")]
    NewerSchema {
        target: String,
        installed: i64,
        known: i64,
    },
}

impl SqlError {
    /// 2 for input the user can fix before anything ran, 1 for failures while acting.
    pub fn exit_code(&self) -> i32 {
        match self {
            SqlError::BadUrl { .. } | SqlError::InvalidName { .. } => 2,
            _ => 1,
        }
    }
}

/// Checks a queue, stream or group name the way the SQL does, before it is put in a query.
pub fn check_name(name: &str) -> Result<(), SqlError> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some('a'..='z' | '_'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
        && name.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(SqlError::InvalidName {
            name: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "_", "emails", "q_1", &"x".repeat(63)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1a", "A", "a-b", "a b", "a;drop", "é", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
