//! A real PostgreSQL for the tests: finds the local cluster (Debian's `postgresql` package),
//! starts it when it is down, and makes sure a role `minipaas_test` (LOGIN CREATEDB, a known
//! password) exists, created through `runuser -u postgres psql` (peer authentication on the
//! socket). Tests then connect over TCP to 127.0.0.1 with that password: pg_hba.conf is left as
//! Debian ships it (scram-sha-256 on 127.0.0.1). Each [`TestDb`] is a fresh database with a unique
//! name, dropped at the end, so tests are independent and can run in parallel.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

pub const USER: &str = "minipaas_test";
pub const PASSWORD: &str = "minipaas-test";

fn port() -> u16 {
    static PORT: OnceLock<u16> = OnceLock::new();
    *PORT.get_or_init(|| {
        let out = Command::new("pg_lsclusters")
            .arg("-h")
            .output()
            .unwrap_or_else(|e| {
                panic!("PostgreSQL is not installed ({e}): apt-get install -y postgresql")
            });
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let line = text
            .lines()
            .next()
            .unwrap_or_else(|| panic!("no PostgreSQL cluster: apt-get install -y postgresql"));
        let f: Vec<&str> = line.split_whitespace().collect();
        let (version, cluster, port, state) = (f[0], f[1], f[2], f[3]);
        if state != "online" {
            let st = Command::new("pg_ctlcluster")
                .args([version, cluster, "start"])
                .status()
                .expect("pg_ctlcluster runs");
            assert!(
                st.success(),
                "pg_ctlcluster {version} {cluster} start failed"
            );
        }
        let sql = format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{USER}') THEN \
             CREATE ROLE {USER} LOGIN CREATEDB; END IF; END $$; \
             ALTER ROLE {USER} PASSWORD '{PASSWORD}';"
        );
        let out = Command::new("runuser")
            .args([
                "-u", "postgres", "--", "psql", "-X", "-q", "-p", port, "-c", &sql,
            ])
            .output()
            .expect("runuser runs");
        assert!(
            out.status.success(),
            "cannot create the test role: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        port.parse().expect("pg_lsclusters prints a port")
    })
}

/// A database of its own, dropped on drop.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(tag: &str) -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "minipaas_t_{tag}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = connect_to("postgres");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .expect("drop a leftover test database");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        TestDb { name }
    }

    /// The URL with its password, as a user would pass `--database-url`.
    pub fn url(&self) -> String {
        format!(
            "postgres://{USER}:{PASSWORD}@127.0.0.1:{}/{}",
            port(),
            self.name
        )
    }

    pub fn client(&self) -> postgres::Client {
        connect_to(&self.name)
    }

    /// Installs the embedded migrations directly (tests of the SQL itself).
    pub fn install(&self) {
        let mut c = self.client();
        for m in minipaas::sql::migrations::MIGRATIONS {
            c.batch_execute(&format!("BEGIN; {} COMMIT;", m.sql))
                .unwrap_or_else(|e| panic!("migration {}: {e}", m.name));
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut admin = connect_to("postgres");
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

pub fn connect_to(db: &str) -> postgres::Client {
    let conf = format!(
        "host=127.0.0.1 port={} user={USER} password={PASSWORD} dbname={db}",
        port()
    );
    postgres::Client::connect(&conf, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect to PostgreSQL database `{db}`: {e}"))
}
