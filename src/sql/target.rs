//! Where `minipaas sql` runs its SQL: a [`SqlTarget`] builds the `psql` command line and the bytes
//! to feed it, and [`Psql`] runs that through a [`Transport`]. This file owns the rule that a
//! password never appears on a command line (where `ps` shows it to every local user): it travels
//! as the first line of stdin, which a shell builtin (`read`) moves into `PGPASSWORD` before
//! `exec psql` reads the rest as SQL. It works the same over the local and the SSH transports.

use crate::transport::Transport;

use super::SqlError;

/// A PostgreSQL connection URL split into what may be shown and what may not.
#[derive(Clone)]
pub struct DatabaseUrl {
    /// The URL without its password: safe for messages and command lines.
    shown: String,
    password: Option<String>,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("url", &self.shown)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl DatabaseUrl {
    /// Parses `postgres://` or `postgresql://` URLs; the password may sit in the user info or in a
    /// `password=` query parameter (percent-encoded either way).
    pub fn parse(url: &str) -> Result<Self, SqlError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(SqlError::BadUrl {
                reason: "expected postgres://[user[:password]@]host[:port]/database".into(),
            });
        };
        if scheme != "postgres" && scheme != "postgresql" {
            return Err(SqlError::BadUrl {
                reason: format!("scheme `{scheme}` is not postgres or postgresql"),
            });
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let mut password = None;
        let authority = match authority.rfind('@') {
            Some(at) => {
                let (userinfo, host) = (&authority[..at], &authority[at + 1..]);
                match userinfo.split_once(':') {
                    Some((user, pass)) => {
                        password = Some(percent_decode(pass)?);
                        format!("{user}@{host}")
                    }
                    None => authority.to_string(),
                }
            }
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&') {
                    match pair.strip_prefix("password=") {
                        Some(p) => password = Some(percent_decode(p)?),
                        None => kept.push(pair),
                    }
                }
                if kept.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}?{}", kept.join("&"))
                }
            }
            None => tail.to_string(),
        };
        Ok(DatabaseUrl {
            shown: format!("{scheme}://{authority}{tail}"),
            password,
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

fn percent_decode(s: &str) -> Result<String, SqlError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| SqlError::BadUrl {
                reason: "a `%` escape is cut short".into(),
            })?;
            let b = u8::from_str_radix(hex, 16).map_err(|_| SqlError::BadUrl {
                reason: "a `%` escape is not two hex digits".into(),
            })?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| SqlError::BadUrl {
        reason: "a percent-encoded part is not UTF-8".into(),
    })
}

/// Which database the SQL goes to: a URL reached by `psql` on the machine the transport runs
/// on, or a database of the cluster's PostgreSQL service, through `psql` inside its container on
/// the node the transport reaches.
#[derive(Debug, Clone)]
pub enum SqlTarget {
    Url(DatabaseUrl),
    Service {
        /// The swarm service, e.g. `minipaas_postgres`.
        service: String,
        database: String,
    },
}

impl SqlTarget {
    /// A name for messages; never contains a password.
    pub fn describe(&self) -> String {
        match self {
            SqlTarget::Url(u) => format!("database `{}`", u.shown()),
            SqlTarget::Service { service, database } => {
                format!("database `{database}` of service `{service}`")
            }
        }
    }

    /// The shell command that runs psql: stops at the first error, ignores ~/.psqlrc, prints
    /// query results unaligned and without headers (callers ask for one JSON value).
    pub fn command(&self) -> String {
        let psql = "psql -X -q -A -t -v ON_ERROR_STOP=1";
        match self {
            SqlTarget::Url(u) => {
                let db = shell_quote(u.shown());
                match u.password {
                    Some(_) => format!(
                        "IFS= read -r PGPASSWORD && export PGPASSWORD && exec {psql} -d {db}"
                    ),
                    None => format!("exec {psql} -d {db}"),
                }
            }
            // As the container's postgres user over its Unix socket: no password travels.
            SqlTarget::Service { service, database } => format!(
                "c=$(docker ps -q --filter label=com.docker.swarm.service.name={svc} | head -n 1); \
                 if [ -z \"$c\" ]; then echo 'no task of service {service} runs on this node' >&2; exit 3; fi; \
                 exec docker exec -i -u postgres \"$c\" {psql} -d {db}",
                svc = shell_quote(service),
                db = shell_quote(database),
            ),
        }
    }

    /// What to feed the command: the password line (when there is one), then the script.
    pub fn stdin(&self, script: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(script.len() + 64);
        match self {
            SqlTarget::Url(u) => {
                if let Some(p) = &u.password {
                    out.extend_from_slice(p.as_bytes());
                    out.push(b'\n');
                }
            }
            SqlTarget::Service { .. } => {}
        }
        out.extend_from_slice(script.as_bytes());
        out
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs SQL scripts against one target.
pub struct Psql {
    pub transport: Transport,
    pub target: SqlTarget,
}

impl Psql {
    /// Runs `script` (warnings and errors only; notices are silenced) and returns psql's stdout.
    /// `action` names the work in the error when psql fails.
    pub async fn run(&self, action: &str, script: &str) -> Result<String, SqlError> {
        let script = format!("SET client_min_messages = warning;\n{script}\n");
        let out = self
            .transport
            .exec(&self.target.command(), Some(&self.target.stdin(&script)))
            .await
            .map_err(|source| SqlError::Transport {
                target: self.target.describe(),
                source: Box::new(source),
            })?;
        if !out.success() {
            // PL/pgSQL CONTEXT lines locate the error inside our functions: noise for a user.
            let stderr = out.stderr_str();
            let message = stderr
                .split("\nCONTEXT:")
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            return Err(SqlError::Psql {
                target: self.target.describe(),
                action: action.to_string(),
                message: if message.is_empty() {
                    format!("psql exited with {:?}", out.code)
                } else {
                    message
                },
            });
        }
        Ok(out.stdout_str())
    }

    /// Runs `query` and decodes its rows, which the database turns into one JSON array.
    pub async fn rows<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        query: &str,
    ) -> Result<Vec<T>, SqlError> {
        let script = format!("SELECT coalesce(json_agg(t), '[]'::json) FROM ({query}) t;");
        let out = self.run(action, &script).await?;
        self.decode(action, &out)
    }

    /// Decodes psql's whole output as one JSON value (json_agg spreads arrays over lines).
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        action: &str,
        out: &str,
    ) -> Result<T, SqlError> {
        serde_json::from_str(out.trim()).map_err(|source| SqlError::BadOutput {
            target: self.target.describe(),
            action: action.to_string(),
            source,
        })
    }
}

/// SQL text for a string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        let cases = [
            (
                "postgres://u:p%40ss@h:5432/db",
                "postgres://u@h:5432/db",
                Some("p@ss"),
            ),
            ("postgresql://u@h/db", "postgresql://u@h/db", None),
            (
                "postgres://h/db?password=x%2Fy&sslmode=disable",
                "postgres://h/db?sslmode=disable",
                Some("x/y"),
            ),
            ("postgres://u:secret@h", "postgres://u@h", Some("secret")),
        ];
        for (url, shown, password) in cases {
            let u = DatabaseUrl::parse(url).unwrap();
            assert_eq!(u.shown(), shown, "{url}");
            assert_eq!(u.password.as_deref(), password, "{url}");
            let t = SqlTarget::Url(u);
            if let Some(p) = password {
                assert!(!t.command().contains(p));
                assert!(!format!("{t:?}").contains(p));
                assert!(t
                    .stdin("SELECT 1;")
                    .starts_with(format!("{p}\n").as_bytes()));
            }
        }
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("host=h dbname=db").is_err());
        assert!(DatabaseUrl::parse("postgres://u:%zz@h/db").is_err());
    }

    #[test]
    fn quotes_survive_the_shell() {
        let t = SqlTarget::Url(DatabaseUrl::parse("postgres://h/it's").unwrap());
        assert_eq!(
            t.command(),
            "exec psql -X -q -A -t -v ON_ERROR_STOP=1 -d 'postgres://h/it'\\''s'"
        );
        assert_eq!(literal("a'b"), "'a''b'");
    }
}
