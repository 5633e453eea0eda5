//! The original role's Ansible INI inventories (`[managers]`, `[workers]`, `ansible_host`,
//! `ansible_port`, `ansible_user`, `ansible_ssh_private_key_file`), read into the same raw
//! inventory as the YAML form.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::raw::{RawConn, RawGroup, RawHost, RawInventory};
use super::{check_address, check_user, name_problem, Connection, InventoryError};

pub(super) fn looks_like_ini(path: &Path, text: &str) -> bool {
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
pub(super) fn parse_ini(path: &Path, text: &str) -> Result<RawInventory, InventoryError> {
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
