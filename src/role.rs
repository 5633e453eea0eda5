//! The node role's variables, read from the one place that sets them: the defaults task of the
//! built-in `playbooks/tasks/defaults.yaml` (`name: "{{ name | default(value=...) }}"` lines,
//! each with the comment written above it). The starter `group_vars/all.yaml` that
//! `minipaas init` writes is generated from it, and a test holds README's variable table to it,
//! so the three cannot drift apart.
//!
//! Owns reading those defaults and writing the starter files' text; writes no file itself and
//! never reads the controller's environment (a default taken from it is described, not
//! evaluated, so a token in the environment never lands in a file).

use serde_json::Value;

use crate::source::SourcePath;
use crate::template;

/// The task file that sets every default.
pub const DEFAULTS: &str = "playbooks/tasks/defaults.yaml";

/// One variable of the role.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable {
    pub name: String,
    pub default: DefaultValue,
    /// Another name the role also reads for it (the original role's `docker_api_tls_dir`).
    pub alias: Option<String>,
    /// The comment lines written above it in defaults.yaml, without `#`.
    pub comment: Vec<String>,
}

/// A variable's default.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultValue {
    Value(Value),
    /// Read from the controller's environment variable, `fallback` when unset.
    Environment {
        variable: String,
        fallback: Value,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error("cannot read `{path}`")]
    Read {
        path: SourcePath,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` line {line}: {message}")]
    Invalid {
        path: SourcePath,
        line: usize,
        message: String,
    },
}

/// The variables of the built-in role, in the order defaults.yaml sets them.
pub fn variables() -> Result<Vec<Variable>, RoleError> {
    let path = SourcePath::built_in(DEFAULTS);
    let text = path.read_to_string().map_err(|source| RoleError::Read {
        path: path.clone(),
        source,
    })?;
    parse_defaults(&path, &text)
}

/// The task of defaults.yaml whose `set_fact:` holds the role's variables (tasks before it
/// may compute values the defaults use).
const DEFAULTS_TASK: &str = "- name: role defaults";

/// Reads the `set_fact:` block of the [`DEFAULTS_TASK`] of a defaults file.
fn parse_defaults(path: &SourcePath, text: &str) -> Result<Vec<Variable>, RoleError> {
    let invalid = |line: usize, message: String| RoleError::Invalid {
        path: path.clone(),
        line,
        message,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .skip_while(|(_, l)| !l.starts_with(DEFAULTS_TASK))
        .skip_while(|(_, l)| l.trim() != "set_fact:");
    if lines.next().is_none() {
        return Err(invalid(
            1,
            format!("no `set_fact:` task named `{}`", &DEFAULTS_TASK[8..]),
        ));
    }
    let mut out = Vec::new();
    let mut comment: Vec<String> = Vec::new();
    for (i, line) in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        // The block ends where its indentation does.
        if !line.starts_with("    ") {
            break;
        }
        if let Some(c) = trimmed.strip_prefix('#') {
            comment.push(c.trim().to_string());
            continue;
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| invalid(i + 1, format!("expected `name: value`, found `{trimmed}`")))?;
        let value: String =
            serde_yaml::from_str(value).map_err(|e| invalid(i + 1, format!("`{name}`: {e}")))?;
        let expr = value
            .strip_prefix(&format!("{{{{ {name} | default(value="))
            .and_then(|r| r.strip_suffix(") }}"))
            .ok_or_else(|| {
                invalid(
                    i + 1,
                    format!("`{name}` is not `{{{{ {name} | default(value=...) }}}}`"),
                )
            })?;
        out.push(Variable {
            name: name.to_string(),
            default: default_of(expr).map_err(|m| invalid(i + 1, format!("`{name}`: {m}")))?,
            alias: alias_of(expr),
            comment: std::mem::take(&mut comment),
        });
    }
    Ok(out)
}

/// `other_name | default(value=...)`: the role reads `other_name` too.
fn alias_of(expr: &str) -> Option<String> {
    let (first, _) = expr.split_once(" | default(value=")?;
    first
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        .then(|| first.to_string())
}

fn default_of(expr: &str) -> Result<DefaultValue, String> {
    if let Some(rest) = expr.strip_prefix("get_env(name='") {
        let (variable, rest) = rest.split_once('\'').ok_or("unterminated `get_env`")?;
        let fallback = rest
            .strip_prefix(", default=")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or("`get_env` without `default=`")?;
        return Ok(DefaultValue::Environment {
            variable: variable.to_string(),
            fallback: evaluate(fallback)?,
        });
    }
    if expr.contains("get_env") {
        return Err("`get_env` only as the whole default".into());
    }
    Ok(DefaultValue::Value(evaluate(expr)?))
}

/// A default with no variables defined: the value it has when the inventory sets nothing.
fn evaluate(expr: &str) -> Result<Value, String> {
    template::render_value(
        &Value::String(format!("{{{{ {expr} }}}}")),
        &Value::Object(serde_json::Map::new()),
    )
    .map_err(|e| e.to_string())
}

/// `group_vars/all.yaml` for `minipaas init`: every variable, commented out, with its default
/// (as JSON, which YAML reads as the same value) and the comment defaults.yaml has for it.
pub fn group_vars_all(vars: &[Variable]) -> String {
    let mut out = String::from(
        "# Every variable of the node role (minipaas's built-in playbooks/site.yaml) with its\n\
         # default, generated from playbooks/tasks/defaults.yaml. Uncomment a line to change a\n\
         # value for every host; group_vars/GROUP.yaml and host_vars/HOST.yaml beside the\n\
         # inventory override it for a group or a host.\n",
    );
    for v in vars {
        let heading = v.comment.first().is_some_and(|c| c.starts_with("--"));
        if heading {
            out.push('\n');
        }
        for c in &v.comment {
            out.push_str(&format!("# {c}\n").replace("# \n", "#\n"));
        }
        let json = |x: &Value| serde_json::to_string(x).unwrap_or_default();
        let line = match &v.default {
            DefaultValue::Value(x) => format!("# {}: {}", v.name, json(x)),
            DefaultValue::Environment { variable, fallback } => format!(
                "# {}: {}  # default: ${variable} on the controller when set",
                v.name,
                json(fallback)
            ),
        };
        out.push_str(&line);
        if let Some(a) = &v.alias {
            out.push_str(&format!("  # also read as `{a}`"));
        }
        out.push('\n');
    }
    out.push_str(
        "\n# -- with no default\n\
         # More syslog log driver options for Docker's daemon.json (a change restarts Docker,\n\
         # one node at a time), e.g.\n\
         # docker_log_options: {syslog-facility: local0}\n\
         \n# -- per host (host_vars/HOST.yaml)\n\
         # Node labels the main manager applies to this host's swarm node, e.g.\n\
         # swarm_node_labels: {zone: a}\n",
    );
    out
}

/// The starter inventory `minipaas init` writes: the connection defaults and commented example
/// hosts. Until a host is added, loading it says "no hosts defined", naming the file.
pub const STARTER_INVENTORY: &str = "\
# The servers minipaas provisions: `minipaas provision -i inventory.yaml`. Paths are relative
# to this file; group_vars/ and host_vars/ beside it are read as Ansible reads them. Hosts need
# Debian or Ubuntu, SSH and (for a user other than root) passwordless sudo.
all:
  user: root
  # Without `key`, the ssh-agent at SSH_AUTH_SOCK is asked. Host keys are checked against
  # ~/.ssh/known_hosts (and `known_hosts:` here); `--accept-new-host-keys` records new ones.
  # key: ~/.ssh/id_ed25519
groups:
  # The first host of `managers` is the main manager: it initializes the swarm.
  managers:
    hosts:
      # manager1:
      #   address: 203.0.113.10
      #   # The address the other nodes reach this one at, when it differs from `address`.
      #   private_address: 10.0.0.10
  workers:
    hosts:
      # worker1: {address: 203.0.113.11, private_address: 10.0.0.11}
      # worker2: {address: 203.0.113.12, private_address: 10.0.0.12}
";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeSet;

    fn by_name(vars: &[Variable], name: &str) -> Variable {
        vars.iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no `{name}`"))
            .clone()
    }

    #[test]
    fn defaults_are_read_with_values_aliases_and_comments() {
        let vars = variables().unwrap();
        assert_eq!(vars.first().unwrap().name, "enable_firewall");
        assert_eq!(
            by_name(&vars, "enable_firewall").default,
            DefaultValue::Value(json!(true))
        );
        assert_eq!(
            by_name(&vars, "firewall_ssh_port").default,
            DefaultValue::Value(json!(22))
        );
        assert_eq!(
            by_name(&vars, "docker_insecure_registries").default,
            DefaultValue::Value(json!(["registry:5000"]))
        );
        let tls = by_name(&vars, "docker_tls_dir");
        assert_eq!(tls.default, DefaultValue::Value(json!("")));
        assert_eq!(tls.alias.as_deref(), Some("docker_api_tls_dir"));
        assert_eq!(
            by_name(&vars, "monitoring_telegram_token").default,
            DefaultValue::Environment {
                variable: "TELEGRAM_TOKEN".into(),
                fallback: json!("")
            }
        );
        assert_eq!(by_name(&vars, "enable_firewall").comment, ["-- features"]);
        // The derived settings of the next task are not variables to set.
        assert!(vars.iter().all(|v| v.name != "docker_api_tls"));
    }

    /// Uncommenting every variable line of the generated file gives YAML with exactly the
    /// defaults: the file is a correct starting point, not only documentation.
    #[test]
    fn generated_group_vars_uncommented_are_the_defaults() {
        let vars = variables().unwrap();
        let text = group_vars_all(&vars);
        let names: BTreeSet<&str> = vars.iter().map(|v| v.name.as_str()).collect();
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.split_once(':').is_some_and(|(n, _)| names.contains(n)))
            .map(|l| format!("{l}\n"))
            .collect();
        let parsed: serde_json::Map<String, Value> = serde_yaml::from_str(&uncommented).unwrap();
        assert_eq!(parsed.len(), vars.len(), "{uncommented}");
        for v in &vars {
            let want = match &v.default {
                DefaultValue::Value(x) => x,
                DefaultValue::Environment { fallback, .. } => fallback,
            };
            assert_eq!(&parsed[&v.name], want, "{}", v.name);
        }
    }

    /// README's variable table (section "What `playbooks/site.yaml` does") names exactly the
    /// role's variables, and each default it writes as a literal is the role's.
    #[test]
    fn readme_table_agrees_with_the_defaults() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let rows: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| Variable | Default | Notes |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert!(rows.len() > 10, "README's variable table not found");
        let vars = variables().unwrap();
        let ticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect()
        };
        let mut in_readme = BTreeSet::new();
        let mut compared = 0;
        for row in &rows {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            // `(alias `x`)` names another spelling of the same variable.
            let names: Vec<String> = ticked(cells[0].split("(alias").next().unwrap());
            let aliases = ticked(cells[0].split("(alias").nth(1).unwrap_or(""));
            for a in &aliases {
                assert!(
                    vars.iter().any(|v| v.alias.as_ref() == Some(a)),
                    "README alias `{a}` is no alias in defaults.yaml"
                );
            }
            in_readme.extend(names.iter().cloned());
            // Literal defaults: one for every name, or one shared by all.
            let defaults = ticked(cells[1]);
            if defaults.is_empty() {
                continue;
            }
            for (i, name) in names.iter().enumerate() {
                let Some(v) = vars.iter().find(|v| &v.name == name) else {
                    continue;
                };
                let written = if defaults.len() == names.len() {
                    &defaults[i]
                } else {
                    &defaults[0]
                };
                let written: Value = serde_yaml::from_str(written).unwrap();
                let actual = match &v.default {
                    DefaultValue::Value(x) => x.clone(),
                    DefaultValue::Environment { .. } => continue,
                };
                // README writes 2376 and `10m` alike; compare the YAML reading of both.
                let actual: Value =
                    serde_yaml::from_str(&serde_json::to_string(&actual).unwrap()).unwrap();
                let same = written == actual;
                assert!(
                    same,
                    "README says `{name}` defaults to {written}, defaults.yaml {actual}"
                );
                compared += 1;
            }
        }
        assert!(compared > 20, "only {compared} defaults compared");
        let mut in_role: BTreeSet<String> = vars.iter().map(|v| v.name.clone()).collect();
        // A host variable with no default, set by the user per host; described in the file.
        in_role.insert("swarm_node_labels".into());
        in_role.insert("docker_log_options".into());
        in_role.insert("minipaas_stateful".into());
        assert_eq!(
            in_readme, in_role,
            "README's table and defaults.yaml differ"
        );
        assert!(group_vars_all(&vars).contains("swarm_node_labels"));
        assert!(group_vars_all(&vars).contains("docker_log_options"));
    }

    #[test]
    fn starter_inventory_loads() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("inventory.yaml");
        std::fs::write(&p, STARTER_INVENTORY).unwrap();
        let e = crate::inventory::Inventory::load(&p)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no hosts defined") && e.contains("inventory.yaml"),
            "{e}"
        );
        // With the example hosts uncommented, they are the hosts.
        let uncommented = STARTER_INVENTORY
            .replace("      # manager1", "      manager1")
            .replace("      #   address", "        address")
            .replace("      #   #", "        #")
            .replace("      #   private", "        private")
            .replace("      # worker", "      worker");
        std::fs::write(&p, uncommented).unwrap();
        let inv = crate::inventory::Inventory::load(&p).unwrap();
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.0.as_str()).collect();
        assert_eq!(names, ["manager1", "worker1", "worker2"]);
    }
}
