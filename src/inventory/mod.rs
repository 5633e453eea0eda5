//! Inventory: which hosts exist, how to reach them, which groups they are in and their variables.
//!
//! Reads minipaas's YAML inventory and the original role's Ansible INI inventories, plus the
//! `group_vars/` and `host_vars/` directories beside the file, as Ansible users keep them. It only
//! reads local files; it never connects anywhere.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

mod ini;
mod raw;

use ini::{looks_like_ini, parse_ini};
use raw::{RawConn, RawInventory};

/// A host's inventory name: what every message and the recap call it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(pub String);

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl HostName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How minipaas reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    #[default]
    Ssh,
    /// Commands run on this machine with `sh -c` (for `sql --database-url` and for tests).
    Local,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: HostName,
    /// Where SSH connects.
    pub address: String,
    /// The address other nodes use to reach this one (the Swarm advertise address); defaults to
    /// `address`. Differs when SSH goes through a NAT or a published port, as in the lab.
    pub private_address: String,
    pub port: u16,
    pub user: String,
    pub key: Option<PathBuf>,
    pub connection: Connection,
    /// Groups in inventory order.
    pub groups: Vec<String>,
    /// Variables merged from all levels, host last.
    pub vars: Map<String, Value>,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    /// Hosts in inventory order (first appearance).
    pub hosts: Vec<Host>,
    /// Group name -> member hosts in inventory order. Always has `all`.
    pub groups: BTreeMap<String, Vec<HostName>>,
    /// The inventory's own known_hosts file, checked in addition to `~/.ssh/known_hosts`.
    pub known_hosts: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read inventory `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("inventory `{path}` line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("inventory `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Inventory {
    /// Loads an inventory file (YAML, or Ansible INI when the file is not YAML-shaped) and the
    /// `group_vars/` and `host_vars/` beside it.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = if looks_like_ini(path, &text) {
            parse_ini(path, &text)?
        } else {
            serde_yaml::from_str::<Option<RawInventory>>(&text)
                .map_err(|e| yaml_error(path, &e))?
                .unwrap_or_default()
        };
        build(path, raw)
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name.0 == name)
    }

    /// The first host of group `managers`: the one that initializes the swarm and that deploys
    /// talk to.
    pub fn main_manager(&self) -> Option<&Host> {
        self.groups
            .get("managers")
            .and_then(|m| m.first())
            .and_then(|n| self.host(&n.0))
    }

    /// Hosts matching a pattern: `all`, a group name, a host name, a glob over either, or several
    /// of those separated by `,` or `:`. A leading `!` excludes. Result in inventory order.
    pub fn select(&self, pattern: &str) -> Result<Vec<HostName>, InventoryError> {
        let mut include: Vec<globset::GlobMatcher> = Vec::new();
        let mut exclude: Vec<globset::GlobMatcher> = Vec::new();
        for part in pattern
            .split([',', ':'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (neg, p) = match part.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, part),
            };
            let glob = globset::Glob::new(p).map_err(|e| InventoryError::Invalid {
                path: self.path.clone(),
                message: format!("bad host pattern `{p}`: {e}"),
            })?;
            if neg {
                exclude.push(glob.compile_matcher());
            } else {
                include.push(glob.compile_matcher());
            }
        }
        let matches = |h: &Host, set: &[globset::GlobMatcher]| {
            set.iter().any(|g| {
                g.is_match("all")
                    || g.is_match(&h.name.0)
                    || h.groups.iter().any(|grp| g.is_match(grp))
            })
        };
        Ok(self
            .hosts
            .iter()
            .filter(|h| matches(h, &include) && !matches(h, &exclude))
            .map(|h| h.name.clone())
            .collect())
    }
}

fn yaml_error(path: &Path, e: &serde_yaml::Error) -> InventoryError {
    InventoryError::Syntax {
        path: path.to_path_buf(),
        line: e.location().map(|l| l.line()).unwrap_or(1),
        message: e.to_string(),
    }
}

fn load_vars_dir(dir: &Path, name: &str) -> Result<Map<String, Value>, InventoryError> {
    let mut out = Map::new();
    let mut files = Vec::new();
    for ext in ["", ".yml", ".yaml"] {
        let p = dir.join(format!("{name}{ext}"));
        if p.is_file() {
            files.push(p);
        }
    }
    let sub = dir.join(name);
    if sub.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&sub)
            .map_err(|source| InventoryError::Read {
                path: sub.clone(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && matches!(
                        p.extension().and_then(|e| e.to_str()),
                        Some("yml") | Some("yaml")
                    )
            })
            .collect();
        entries.sort();
        files.extend(entries);
    }
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|source| InventoryError::Read {
            path: f.clone(),
            source,
        })?;
        let vars: Option<Map<String, Value>> =
            serde_yaml::from_str(&text).map_err(|e| yaml_error(&f, &e))?;
        out.extend(vars.unwrap_or_default());
    }
    Ok(out)
}

fn build(path: &Path, raw: RawInventory) -> Result<Inventory, InventoryError> {
    let base = path.parent().unwrap_or(Path::new("."));
    let resolve = |p: &Path| -> PathBuf {
        let s = p.to_string_lossy();
        if let Some(rest) = s.strip_prefix("~/") {
            if let Some(home) = std::env::var_os("HOME") {
                return PathBuf::from(home).join(rest);
            }
        }
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let group_vars_dir = base.join("group_vars");
    let host_vars_dir = base.join("host_vars");

    let mut all_vars = raw.all.vars.clone();
    all_vars.extend(load_vars_dir(&group_vars_dir, "all")?);

    // Host name -> (merged connection, groups, vars from groups in order, host's own vars).
    struct Acc {
        conn: RawConn,
        host_conn: RawConn,
        groups: Vec<String>,
        group_vars: Map<String, Value>,
        host_vars: Map<String, Value>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let mut groups: BTreeMap<String, Vec<HostName>> = BTreeMap::new();

    for (gname, group) in &raw.groups.0 {
        check_name(path, "group", gname)?;
        let group = match group {
            Some(g) => g,
            None => {
                groups.entry(gname.clone()).or_default();
                continue;
            }
        };
        let mut gvars = group.vars.clone();
        gvars.extend(load_vars_dir(&group_vars_dir, gname)?);
        let members = groups.entry(gname.clone()).or_default();
        for (hname, host) in &group.hosts.0 {
            check_name(path, "host", hname)?;
            let a = acc.entry(hname.clone()).or_insert_with(|| {
                order.push(hname.clone());
                Acc {
                    conn: RawConn::default(),
                    host_conn: RawConn::default(),
                    groups: Vec::new(),
                    group_vars: Map::new(),
                    host_vars: Map::new(),
                }
            });
            a.conn.overlay(&group.conn);
            a.group_vars.extend(gvars.clone());
            if !a.groups.contains(gname) {
                a.groups.push(gname.clone());
            }
            if let Some(h) = host {
                a.host_conn.overlay(&h.conn);
                a.host_vars.extend(h.vars.clone());
            }
            let hn = HostName(hname.clone());
            if !members.contains(&hn) {
                members.push(hn);
            }
        }
    }

    let mut hosts = Vec::new();
    for name in &order {
        let a = &acc[name];
        let mut conn = raw.all.conn.clone();
        conn.overlay(&a.conn);
        conn.overlay(&a.host_conn);
        let mut vars = all_vars.clone();
        vars.extend(a.group_vars.clone());
        vars.extend(a.host_vars.clone());
        vars.extend(load_vars_dir(&host_vars_dir, name)?);
        let connection = conn.connection.unwrap_or_default();
        let address = match (conn.address, connection) {
            (Some(a), _) => a,
            (None, Connection::Local) => "127.0.0.1".to_string(),
            // Ansible's rule: without an address the inventory name is the address.
            (None, Connection::Ssh) => name.clone(),
        };
        let private_address = conn.private_address.unwrap_or_else(|| address.clone());
        let user = conn.user.unwrap_or_else(|| "root".to_string());
        // These reach ssh configs, root shells and config files on every node (the Swarm
        // advertise address, the join address): only values of their strict shape pass.
        let invalid = |field: &str, message: String| InventoryError::Invalid {
            path: path.to_path_buf(),
            message: format!("host `{name}`: `{field}` {message}"),
        };
        check_address(&address).map_err(|m| invalid("address", m))?;
        check_address(&private_address).map_err(|m| invalid("private_address", m))?;
        check_user(&user).map_err(|m| invalid("user", m))?;
        hosts.push(Host {
            name: HostName(name.clone()),
            private_address,
            address,
            port: conn.port.unwrap_or(22),
            user,
            key: conn.key.as_deref().map(resolve),
            connection,
            groups: a.groups.clone(),
            vars,
        });
    }
    groups.insert(
        "all".to_string(),
        hosts.iter().map(|h| h.name.clone()).collect(),
    );
    if hosts.is_empty() {
        return Err(InventoryError::Invalid {
            path: path.to_path_buf(),
            message: "no hosts defined".into(),
        });
    }
    Ok(Inventory {
        path: path.to_path_buf(),
        hosts,
        groups,
        known_hosts: raw.all.known_hosts.as_deref().map(resolve),
    })
}

/// An address is an IPv4 or IPv6 address, or a DNS host name: labels of letters, digits, `-`
/// and `_` (not first or last), at most 63 bytes each and 253 in all, an optional final dot.
/// Nothing else a shell, an ssh config or a config file could read as more than one word.
pub fn check_address(value: &str) -> Result<(), String> {
    if value.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name = value.strip_suffix('.').unwrap_or(value);
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !l.starts_with(['-', '_'])
            && !l.ends_with(['-', '_'])
    };
    if !name.is_empty() && value.len() <= 253 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "`{}` is neither an IP address nor a DNS host name",
            value.escape_debug()
        ))
    }
}

/// A login name: letters, digits, `_`, `.` and `-`, not starting with `-` or `.`, at most 32
/// bytes (what useradd accepts, less the odd trailing `$`).
pub fn check_user(value: &str) -> Result<(), String> {
    let ok = (1..=32).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !value.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a user name (letters, digits, `_`, `.`, `-`)",
            value.escape_debug()
        ))
    }
}

fn check_name(path: &Path, kind: &str, name: &str) -> Result<(), InventoryError> {
    match name_problem(kind, name) {
        None => Ok(()),
        Some(message) => Err(InventoryError::Invalid {
            path: path.to_path_buf(),
            message,
        }),
    }
}

/// What is wrong with a host or group name, if anything.
fn name_problem(kind: &str, name: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    (!ok).then(|| format!("{kind} name `{name}` may only hold letters, digits, `-`, `_` and `.`"))
}

#[cfg(test)]
mod tests;
