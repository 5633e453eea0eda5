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

/// Connection settings allowed at the all, group and host levels; the most specific wins.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConn {
    address: Option<String>,
    private_address: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    key: Option<PathBuf>,
    connection: Option<Connection>,
}

impl RawConn {
    fn overlay(&mut self, other: &RawConn) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f.clone(); } )* };
        }
        take!(address, private_address, port, user, key, connection);
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAll {
    #[serde(flatten)]
    conn: RawConn,
    known_hosts: Option<PathBuf>,
    #[serde(default)]
    vars: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(flatten)]
    conn: RawConn,
    #[serde(default)]
    vars: Map<String, Value>,
    #[serde(default)]
    hosts: indexmap_lite::OrderedMap<Option<RawHost>>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawHost {
    #[serde(flatten)]
    conn: RawConn,
    #[serde(default)]
    vars: Map<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    all: RawAll,
    #[serde(default)]
    groups: indexmap_lite::OrderedMap<Option<RawGroup>>,
}

/// A mapping that keeps its keys in file order (serde_json's Map sorts them, and host order
/// matters: the first manager is the main manager).
mod indexmap_lite {
    use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
    use std::fmt;
    use std::marker::PhantomData;

    #[derive(Debug)]
    pub struct OrderedMap<V>(pub Vec<(String, V)>);

    impl<V> Default for OrderedMap<V> {
        fn default() -> Self {
            OrderedMap(Vec::new())
        }
    }

    impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V2<V>(PhantomData<V>);
            impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
                type Value = OrderedMap<V>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a mapping")
                }
                fn visit_unit<E>(self) -> Result<Self::Value, E> {
                    Ok(OrderedMap(Vec::new()))
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some((k, v)) = m.next_entry::<String, V>()? {
                        out.push((k, v));
                    }
                    Ok(OrderedMap(out))
                }
            }
            d.deserialize_any(V2(PhantomData))
        }
    }
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

fn looks_like_ini(path: &Path, text: &str) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml") | Some("yml") => false,
        Some("ini") | Some("cfg") => true,
        _ => text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
            .is_some_and(|l| l.starts_with('[')),
    }
}

/// The original role's inventories: `[group]` sections of `name key=value ...` lines,
/// `[group:vars]` and `[group:children]`.
fn parse_ini(path: &Path, text: &str) -> Result<RawInventory, InventoryError> {
    enum Section {
        Hosts(String),
        Vars(String),
        Children(String),
    }
    let mut inv = RawInventory::default();
    let mut section = Section::Hosts("ungrouped".into());
    let mut children: Vec<(String, String, usize)> = Vec::new();
    let err = |line: usize, message: String| InventoryError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
    };
    for (i, raw_line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw_line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(head) = line.strip_prefix('[') {
            let head = head
                .strip_suffix(']')
                .ok_or_else(|| err(line_no, format!("unclosed section header `{line}`")))?;
            section = match head.split_once(':') {
                Some((g, "vars")) => Section::Vars(g.to_string()),
                Some((g, "children")) => Section::Children(g.to_string()),
                Some((_, kind)) => {
                    return Err(err(line_no, format!("unknown section kind `{kind}`")));
                }
                None => Section::Hosts(head.to_string()),
            };
            let (Section::Hosts(group) | Section::Vars(group) | Section::Children(group)) =
                &section;
            // Checked here too, where the line is known; `build` checks YAML's names.
            name_problem("group", group).map_or(Ok(()), |m| Err(err(line_no, m)))?;
            continue;
        }
        let words = split_ini_words(line).map_err(|m| err(line_no, m))?;
        // `""` or `''` alone is a line of no words: there is no host or group name to read.
        let Some(first) = words.first() else {
            return Err(err(line_no, format!("expected a name, found `{line}`")));
        };
        let kind = match section {
            Section::Hosts(_) => Some("host"),
            Section::Children(_) => Some("group"),
            Section::Vars(_) => None,
        };
        if let Some(m) = kind.and_then(|k| name_problem(k, first)) {
            return Err(err(line_no, m));
        }
        match &section {
            Section::Hosts(group) => {
                let mut host = RawHost::default();
                for w in &words[1..] {
                    let (k, v) = w
                        .split_once('=')
                        .ok_or_else(|| err(line_no, format!("expected key=value, found `{w}`")))?;
                    apply_ini_var(&mut host.conn, &mut host.vars, k, v)
                        .map_err(|m| err(line_no, m))?;
                }
                ini_group(&mut inv, group)
                    .hosts
                    .0
                    .push((first.clone(), Some(host)));
            }
            Section::Vars(group) => {
                let (k, v) = line
                    .split_once('=')
                    .ok_or_else(|| err(line_no, format!("expected key=value, found `{line}`")))?;
                let (k, v) = (k.trim(), unquote(v.trim()));
                if group == "all" {
                    apply_ini_var(&mut inv.all.conn, &mut inv.all.vars, k, &v)
                } else {
                    let g = ini_group(&mut inv, group);
                    apply_ini_var(&mut g.conn, &mut g.vars, k, &v)
                }
                .map_err(|m| err(line_no, m))?;
            }
            Section::Children(group) => children.push((group.clone(), first.clone(), line_no)),
        }
    }
    // A parent group gets its children's hosts (one level, as the role's inventories use).
    for (parent, child, line) in children {
        let hosts: Vec<(String, Option<RawHost>)> = inv
            .groups
            .0
            .iter()
            .find(|(n, _)| *n == child)
            .and_then(|(_, g)| g.as_ref())
            .map(|g| g.hosts.0.iter().map(|(n, _)| (n.clone(), None)).collect())
            .ok_or_else(|| err(line, format!("child group `{child}` is not defined")))?;
        ini_group(&mut inv, &parent).hosts.0.extend(hosts);
    }
    inv.groups
        .0
        .retain(|(n, g)| n != "ungrouped" || g.as_ref().is_some_and(|g| !g.hosts.0.is_empty()));
    Ok(inv)
}

fn ini_group<'a>(inv: &'a mut RawInventory, name: &str) -> &'a mut RawGroup {
    let idx = match inv.groups.0.iter().position(|(n, _)| n == name) {
        Some(i) => i,
        None => {
            inv.groups
                .0
                .push((name.to_string(), Some(RawGroup::default())));
            inv.groups.0.len() - 1
        }
    };
    inv.groups.0[idx].1.get_or_insert_with(RawGroup::default)
}

fn apply_ini_var(
    conn: &mut RawConn,
    vars: &mut Map<String, Value>,
    key: &str,
    value: &str,
) -> Result<(), String> {
    match key {
        "ansible_host" | "ansible_ssh_host" => {
            check_address(value).map_err(|m| format!("`{key}` {m}"))?;
            conn.address = Some(value.to_string())
        }
        "ansible_port" | "ansible_ssh_port" => {
            conn.port = Some(
                value
                    .parse()
                    .map_err(|_| format!("`{key}` must be a port number, found `{value}`"))?,
            )
        }
        "ansible_user" | "ansible_ssh_user" => {
            check_user(value).map_err(|m| format!("`{key}` {m}"))?;
            conn.user = Some(value.to_string())
        }
        "ansible_ssh_private_key_file" => conn.key = Some(PathBuf::from(value)),
        "ansible_connection" => {
            conn.connection = Some(match value {
                "local" => Connection::Local,
                "ssh" | "smart" | "paramiko" => Connection::Ssh,
                other => return Err(format!("unsupported ansible_connection `{other}`")),
            })
        }
        _ => {
            // INI values are strings in Ansible too, except what YAML would read as a scalar.
            let v = serde_yaml::from_str::<Value>(value).unwrap_or(Value::String(value.into()));
            vars.insert(key.to_string(), v);
        }
    }
    Ok(())
}

fn unquote(v: &str) -> String {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

/// Splits on whitespace, keeping quoted values (`k="a b"`) together.
fn split_ini_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, '#') if cur.is_empty() => break,
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err("unclosed quote".into());
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    Ok(words)
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
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn yaml_levels_and_precedence() {
        let d = tempfile::tempdir().unwrap();
        let inv = write(
            d.path(),
            "inv.yaml",
            "all:\n  user: admin\n  key: keys/id\n  known_hosts: kh\n  vars: {a: all, b: all, c: all}\n\
             groups:\n  managers:\n    port: 2222\n    vars: {b: managers}\n    hosts:\n      m1:\n        address: 10.0.0.1\n        vars: {c: host}\n      m2: {address: 10.0.0.2, user: root}\n\
             \n  workers:\n    hosts:\n      w1:\n",
        );
        write(d.path(), "group_vars/all.yml", "d: from_group_vars\n");
        write(d.path(), "host_vars/w1.yaml", "a: w1\n");
        let inv = Inventory::load(&inv).unwrap();
        let names: Vec<_> = inv.hosts.iter().map(|h| h.name.0.as_str()).collect();
        assert_eq!(names, ["m1", "m2", "w1"]);
        let m1 = inv.host("m1").unwrap();
        assert_eq!((m1.port, m1.user.as_str()), (2222, "admin"));
        assert_eq!(m1.key.as_deref(), Some(d.path().join("keys/id").as_path()));
        assert_eq!(m1.vars["a"], "all");
        assert_eq!(m1.vars["b"], "managers");
        assert_eq!(m1.vars["c"], "host");
        assert_eq!(m1.vars["d"], "from_group_vars");
        assert_eq!(inv.host("m2").unwrap().user, "root");
        let w1 = inv.host("w1").unwrap();
        assert_eq!((w1.address.as_str(), w1.port), ("w1", 22));
        assert_eq!(w1.vars["a"], "w1");
        assert_eq!(inv.known_hosts, Some(d.path().join("kh")));
        assert_eq!(inv.groups["managers"].len(), 2);
    }

    #[test]
    fn ini_inventory_of_the_original_role() {
        let d = tempfile::tempdir().unwrap();
        let inv = write(
            d.path(),
            "hosts",
            "[managers]\nmanager1 ansible_host=1.2.3.4 ansible_user=root ansible_port=2200\n\n\
             [workers]\nworker1 ansible_host=1.2.3.5 ansible_ssh_private_key_file=/k/id enable_firewall=false\n\
             [all:vars]\nenable_syslog=true\nmonitoring_telegram_chat_id=\"12 34\"\n[swarm:children]\nmanagers\nworkers\n",
        );
        let inv = Inventory::load(&inv).unwrap();
        let m = inv.host("manager1").unwrap();
        assert_eq!((m.address.as_str(), m.port), ("1.2.3.4", 2200));
        let w = inv.host("worker1").unwrap();
        assert_eq!(w.key.as_deref(), Some(Path::new("/k/id")));
        assert_eq!(w.vars["enable_firewall"], false);
        assert_eq!(w.vars["enable_syslog"], true);
        assert_eq!(w.vars["monitoring_telegram_chat_id"], "12 34");
        assert_eq!(inv.groups["swarm"].len(), 2);
        assert_eq!(w.groups, ["workers", "swarm"]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "bad.yaml",
            "groups:\n  managers:\n    hostz: {}\n",
        );
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.yaml") && e.contains("line 3"), "{e}");
        let p = write(d.path(), "bad.ini", "[managers]\nm1 ansible_port=abc\n");
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(e.contains("bad.ini` line 2"), "{e}");
    }

    /// Lines that once panicked the INI reader; each must be an error naming file and line.
    #[test]
    fn ini_lines_without_a_name_are_errors() {
        let d = tempfile::tempdir().unwrap();
        for (text, line) in [
            ("\"\"\n", 1),
            ("''\n", 1),
            ("[managers]\nm1\n\"\" ansible_port=22\n", 3),
            ("[managers]\nm1\n[all:children]\n\"\"\n", 4),
        ] {
            let p = write(d.path(), "hosts.ini", text);
            let e = Inventory::load(&p).unwrap_err().to_string();
            assert!(
                e.contains(&format!("hosts.ini` line {line}:")),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn addresses_are_ip_addresses_or_host_names() {
        let good = [
            "10.0.0.1",
            "203.0.113.10",
            "::1",
            "2001:db8::1",
            "fe80::a:b:c:d",
            "localhost",
            "node1",
            "manager-1.example.com",
            "manager-1.example.com.",
            "my_host",
            "a",
            "xn--bcher-kva.example",
        ];
        for a in good {
            assert!(check_address(a).is_ok(), "{a} refused");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        let bad = [
            "",
            ".",
            "10.0.0.1\n  ProxyCommand touch /tmp/x",
            "10.0.0.1 -oProxyCommand=x",
            "host;touch /tmp/x",
            "$(touch /tmp/x)",
            "`touch /tmp/x`",
            "-oProxyCommand=x",
            "host.-x",
            "a..b",
            "host\"",
            "host'",
            "host/x",
            "[::1]",
            "10.0.0.1:22",
            "ho st",
            "host\r",
            long_label.as_str(),
        ];
        for a in bad {
            assert!(check_address(a).is_err(), "{a:?} accepted");
        }
        for u in ["root", "admin", "deploy-user", "svc_1", "a.b"] {
            assert!(check_user(u).is_ok(), "{u} refused");
        }
        for u in [
            "",
            "-oProxyCommand=x",
            "a b",
            "a\nb",
            "a;b",
            "$(x)",
            "`x`",
            "a'b",
        ] {
            assert!(check_user(u).is_err(), "{u:?} accepted");
        }
    }

    #[test]
    fn hostile_inventory_values_are_refused_naming_file_host_and_field() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            (
                "address: \"10.0.0.1\\n  ProxyCommand touch /tmp/x\"",
                "address",
            ),
            ("address: \"$(touch /tmp/x)\"", "address"),
            (
                "address: 10.0.0.1, private_address: \"10.0.0.2;reboot\"",
                "private_address",
            ),
            ("private_address: \"`reboot`\"", "private_address"),
            ("address: -oProxyCommand=x", "address"),
            ("user: \"root -oProxyCommand=x\"", "user"),
        ];
        for (host, field) in cases {
            let p = write(
                d.path(),
                "hostile.yaml",
                &format!("groups:\n  managers:\n    hosts:\n      m1: {{{host}}}\n"),
            );
            let e = Inventory::load(&p).unwrap_err().to_string();
            assert!(
                e.contains("hostile.yaml")
                    && e.contains("host `m1`")
                    && e.contains(&format!("`{field}`")),
                "{host}: {e}"
            );
            assert!(!e.contains('\n'), "the error spans lines: {e}");
        }
        // A bad address at the group level is refused for each host that inherits it.
        let p = write(
            d.path(),
            "group.yaml",
            "groups:\n  workers:\n    address: \"a b\"\n    hosts: {w1: }\n",
        );
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(e.contains("host `w1`") && e.contains("`address`"), "{e}");
        // INI inventories: the line is known.
        let p = write(
            d.path(),
            "hostile.ini",
            "[managers]\nm1 ansible_host=10.0.0.1\nm2 ansible_host='1.2.3.4;reboot'\n",
        );
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("hostile.ini` line 3") && e.contains("ansible_host"),
            "{e}"
        );
        let p = write(
            d.path(),
            "user.ini",
            "[managers]\nm1 ansible_user='$(reboot)'\n",
        );
        let e = Inventory::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("user.ini` line 2") && e.contains("ansible_user"),
            "{e}"
        );
        // Host names without an address are the address, and pass as host names.
        let p = write(
            d.path(),
            "names.yaml",
            "groups:\n  m:\n    hosts: {node-1: , n_2: , [::1]: }\n",
        );
        assert!(Inventory::load(&p).is_err());
        let p = write(
            d.path(),
            "names.yaml",
            "groups:\n  m:\n    hosts: {node-1: , n_2.lan: }\n",
        );
        Inventory::load(&p).unwrap();
    }

    #[test]
    fn select_patterns() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "i.yaml",
            "groups:\n  managers:\n    hosts: {m1: , m2: }\n  workers:\n    hosts: {w1: , w2: }\n",
        );
        let inv = Inventory::load(&p).unwrap();
        let s =
            |p: &str| -> Vec<String> { inv.select(p).unwrap().into_iter().map(|h| h.0).collect() };
        assert_eq!(s("all"), ["m1", "m2", "w1", "w2"]);
        assert_eq!(s("workers"), ["w1", "w2"]);
        assert_eq!(s("m*,w2"), ["m1", "m2", "w2"]);
        assert_eq!(s("all:!managers"), ["w1", "w2"]);
        assert!(s("nothing").is_empty());
    }
}
