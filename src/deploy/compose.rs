//! Compose files: reading the user's (only the parts minipaas needs: service names, `build:`,
//! `deploy.mode`, the format `version`) and the typed model of `compose.apps.yaml`, the override
//! minipaas owns. Never writes the user's files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::{yaml_error, DeployError};

/// One service as the user's files declare it (later files override earlier ones).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct UserService {
    /// The file that declared it last.
    pub file: PathBuf,
    pub build: Option<BuildSpec>,
    /// `image:`, which names what `build:` makes (services sharing it share one build).
    pub image: Option<String>,
    /// `deploy.mode`, when set.
    pub mode: Option<String>,
    /// The user's own healthcheck wins over the one a route adds: `docker stack deploy` would
    /// concatenate the two `test` lists into one broken command.
    pub has_healthcheck: bool,
}

/// A service's `build:`, not yet interpolated.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BuildSpec {
    pub context: String,
    pub dockerfile: Option<String>,
    /// `None`: the value comes from the environment (`args: [NAME]` or `NAME:` with no value).
    pub args: BTreeMap<String, Option<String>>,
}

/// The user's project: every service of every file, merged by name in file order.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserProject {
    pub services: BTreeMap<String, UserService>,
    /// The first file's `version:`; generated files repeat it because older `docker stack deploy`
    /// refuses files whose versions differ.
    pub version: Option<String>,
}

impl UserProject {
    /// Reads `files` (absolute paths) in order.
    pub fn load(files: &[PathBuf]) -> Result<UserProject, DeployError> {
        let mut project = UserProject::default();
        for (i, path) in files.iter().enumerate() {
            let text = std::fs::read_to_string(path).map_err(|source| DeployError::Read {
                path: path.clone(),
                source,
            })?;
            let doc: Value =
                serde_yaml::from_str(&text).map_err(|e| yaml_error(path.clone(), e))?;
            if i == 0 {
                project.version = match doc.get("version") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
            }
            let services = match doc.get("services") {
                Some(Value::Mapping(m)) => m,
                // An override file may only add networks or volumes.
                None | Some(Value::Null) if i > 0 => continue,
                _ => return Err(DeployError::NoServices { path: path.clone() }),
            };
            for (name, body) in services {
                let Value::String(name) = name else {
                    return Err(DeployError::NoServices { path: path.clone() });
                };
                let entry = project.services.entry(name.clone()).or_default();
                entry.file = path.clone();
                let bad = |field, expected| DeployError::BadField {
                    path: path.clone(),
                    service: name.clone(),
                    field,
                    expected,
                };
                match body {
                    Value::Mapping(_) => {}
                    Value::Null => continue,
                    _ => return Err(bad("service", "a mapping")),
                }
                if let Some(build) = body.get("build") {
                    entry.build = Some(parse_build(build).ok_or_else(|| {
                        bad(
                            "build",
                            "a context path or a mapping with `context`, `dockerfile`, `args`",
                        )
                    })?);
                }
                if body.get("healthcheck").is_some() {
                    entry.has_healthcheck = true;
                }
                if let Some(image) = body.get("image") {
                    entry.image = Some(scalar(image).ok_or_else(|| bad("image", "a string"))?);
                }
                if let Some(mode) = body.get("deploy").and_then(|d| d.get("mode")) {
                    let Value::String(mode) = mode else {
                        return Err(bad("deploy.mode", "a string"));
                    };
                    entry.mode = Some(mode.clone());
                }
            }
        }
        Ok(project)
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn parse_build(v: &Value) -> Option<BuildSpec> {
    match v {
        Value::String(context) => Some(BuildSpec {
            context: context.clone(),
            ..BuildSpec::default()
        }),
        Value::Mapping(m) => {
            let mut spec = BuildSpec {
                context: match m.get("context") {
                    Some(c) => scalar(c)?,
                    None => ".".into(),
                },
                dockerfile: m.get("dockerfile").map(scalar).unwrap_or(None),
                args: BTreeMap::new(),
            };
            match m.get("args") {
                None | Some(Value::Null) => {}
                Some(Value::Mapping(args)) => {
                    for (k, v) in args {
                        let value = match v {
                            Value::Null => None,
                            v => Some(scalar(v)?),
                        };
                        spec.args.insert(scalar(k)?, value);
                    }
                }
                Some(Value::Sequence(args)) => {
                    for item in args {
                        let item = scalar(item)?;
                        match item.split_once('=') {
                            Some((k, v)) => spec.args.insert(k.into(), Some(v.into())),
                            None => spec.args.insert(item, None),
                        };
                    }
                }
                Some(_) => return None,
            }
            Some(spec)
        }
        _ => None,
    }
}

/// Compose-style interpolation: `$$` is `$`, `$VAR` and `${VAR}` the value (empty when unset),
/// `${VAR:-d}` / `${VAR-d}` a default when unset-or-empty / unset, `${VAR:?msg}` / `${VAR?msg}`
/// an error when unset-or-empty / unset. `Err` carries what is wrong, for [`DeployError`].
pub fn interpolate(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, &'static str> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('{') {
            let end = r.find('}').ok_or("unclosed `${`")?;
            let expr = &r[..end];
            rest = &r[end + 1..];
            let name_len = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_len);
            if name.is_empty() {
                return Err("a variable without a name");
            }
            let value = lookup(name);
            let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
            let resolved = match op {
                "" => value.unwrap_or_default(),
                _ if op.starts_with(":-") => {
                    if set_nonempty {
                        value.unwrap_or_default()
                    } else {
                        op[2..].to_string()
                    }
                }
                _ if op.starts_with('-') => value.unwrap_or_else(|| op[1..].to_string()),
                _ if op.starts_with(":?") => {
                    if !set_nonempty {
                        return Err("a required variable (`${VAR:?}`) is unset or empty");
                    }
                    value.unwrap_or_default()
                }
                _ if op.starts_with('?') => {
                    value.ok_or("a required variable (`${VAR?}`) is unset")?
                }
                _ => return Err("an unsupported `${...}` form"),
            };
            out.push_str(&resolved);
        } else {
            let name_len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if name_len == 0 {
                // A lone `$` is kept, as compose does before a non-name character.
                out.push('$');
                continue;
            }
            out.push_str(&lookup(&rest[..name_len]).unwrap_or_default());
            rest = &rest[name_len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `compose.apps.yaml`. Field order here is the order in the file; maps are sorted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub services: BTreeMap<String, AppService>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, External>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, External>,
}

/// A top-level secret or config that exists on the swarm already (created by `secret create`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct External {
    pub external: bool,
}

/// What minipaas sets on one service; merged over the user's definition by `docker stack deploy`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AppService {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ObjectRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ObjectRef>,
}

/// `{source: app_secret.1a2b3c4d, target: app_secret}`: one target, one (versioned) source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ObjectRef {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Deploy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Mode {
    Replicated,
    Global,
    ReplicatedJob,
    GlobalJob,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestartPolicy {
    pub condition: Condition,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Condition {
    None,
    OnFailure,
    Any,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateConfig {
    pub order: Order,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<FailureAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Order {
    StartFirst,
    StopFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum FailureAction {
    Rollback,
    Pause,
    Continue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Healthcheck {
    pub test: Vec<String>,
    pub interval: String,
    pub timeout: String,
    pub retries: u32,
    pub start_period: String,
}

/// What a service is for; `code route|worker|job|cron` set it, replacing the service's whole
/// `deploy` and `healthcheck` in compose.apps.yaml (a service has one role).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Serves HTTP on `port` behind Caddy: 2 replicas, healthcheck, start-first rolling update.
    Web { port: u16 },
    /// 1 replica, start-first rolling update, no healthcheck.
    Worker,
    /// A swarm job (`replicated-job`): runs to completion on every rollout, retried on failure.
    Job,
    /// Started by swarm-cronjob on `schedule`; 0 replicas otherwise.
    Cron { schedule: String },
}

/// The rolling update every long-running role gets: the new task starts before the old one
/// stops, and a failed update rolls back.
fn rolling() -> (Option<UpdateConfig>, Option<UpdateConfig>) {
    (
        Some(UpdateConfig {
            order: Order::StartFirst,
            failure_action: Some(FailureAction::Rollback),
        }),
        Some(UpdateConfig {
            order: Order::StartFirst,
            failure_action: None,
        }),
    )
}

/// The healthcheck of a web service. curl first, then wget: the command must work in Debian
/// images (often curl, rarely wget) and Alpine/busybox ones (wget only); GET, not wget's
/// `--spider` HEAD, which some apps answer 405. Any 2xx/3xx on `/` is healthy.
pub(crate) fn web_healthcheck(port: u16) -> Healthcheck {
    let url = format!("http://127.0.0.1:{port}/");
    Healthcheck {
        test: vec![
            "CMD-SHELL".into(),
            format!("curl -fsS -o /dev/null {url} || wget -q -O /dev/null {url} || exit 1"),
        ],
        interval: "10s".into(),
        timeout: "5s".into(),
        retries: 3,
        start_period: "10s".into(),
    }
}

impl AppService {
    /// Replaces `deploy` and `healthcheck` with what `role` asks for.
    pub fn set_role(&mut self, role: &Role) {
        let (update_config, rollback_config) = rolling();
        let (deploy, healthcheck) = match role {
            Role::Web { port } => (
                Deploy {
                    mode: Some(Mode::Replicated),
                    replicas: Some(2),
                    update_config,
                    rollback_config,
                    ..Deploy::default()
                },
                Some(web_healthcheck(*port)),
            ),
            Role::Worker => (
                Deploy {
                    mode: Some(Mode::Replicated),
                    replicas: Some(1),
                    update_config,
                    rollback_config,
                    ..Deploy::default()
                },
                None,
            ),
            Role::Job => (
                Deploy {
                    mode: Some(Mode::ReplicatedJob),
                    restart_policy: Some(RestartPolicy {
                        condition: Condition::OnFailure,
                        max_attempts: Some(3),
                    }),
                    ..Deploy::default()
                },
                None,
            ),
            Role::Cron { schedule } => (
                Deploy {
                    mode: Some(Mode::Replicated),
                    replicas: Some(0),
                    restart_policy: Some(RestartPolicy {
                        condition: Condition::None,
                        max_attempts: None,
                    }),
                    labels: BTreeMap::from([
                        ("swarm.cronjob.enable".into(), "true".into()),
                        ("swarm.cronjob.schedule".into(), schedule.clone()),
                        ("swarm.cronjob.skip-running".into(), "true".into()),
                    ]),
                    ..Deploy::default()
                },
                None,
            ),
        };
        self.deploy = Some(deploy);
        self.healthcheck = healthcheck;
    }
}

impl AppsFile {
    /// Reads `path`; a missing file is an empty override.
    pub fn load(path: &Path) -> Result<AppsFile, DeployError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_yaml::from_str(&text).map_err(|e| yaml_error(path.to_path_buf(), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AppsFile::default()),
            Err(source) => Err(DeployError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The file's bytes: a header saying who owns it, then sorted YAML.
    pub fn render(&self) -> String {
        let body = serde_yaml::to_string(self)
            // Serializing plain structs, strings and sorted maps cannot fail.
            .unwrap_or_default();
        format!(
            "# Written by minipaas (`code init|route|worker|job|cron`, `secret`, `config`): \
             edit it with those commands.\n\
             # Merged over the project's compose files by `docker stack deploy`.\n{body}"
        )
    }

    pub fn is_job(&self, service: &str) -> Option<bool> {
        let mode = self.services.get(service)?.deploy.as_ref()?.mode?;
        Some(matches!(mode, Mode::ReplicatedJob | Mode::GlobalJob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "V" => Some("7".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn interpolation() {
        let cases = [
            ("plain", "plain"),
            ("v$V", "v7"),
            ("${V}-x", "7-x"),
            ("${NOPE}", ""),
            ("${NOPE:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${NOPE-d}", "d"),
            ("${V:-d}", "7"),
            ("$$V", "$V"),
            ("a $ b", "a $ b"),
            ("${V:?need}", "7"),
        ];
        for (input, want) in cases {
            assert_eq!(interpolate(input, &env).unwrap(), want, "{input}");
        }
        assert!(interpolate("${NOPE:?need}", &env).is_err());
        assert!(interpolate("${EMPTY:?need}", &env).is_err());
        assert!(interpolate("${EMPTY?need}", &env).is_ok());
        assert!(interpolate("${V", &env).is_err());
    }

    #[test]
    fn build_forms() {
        let v: Value = serde_yaml::from_str("./app").unwrap();
        assert_eq!(parse_build(&v).unwrap().context, "./app");
        let v: Value =
            serde_yaml::from_str("{context: app, dockerfile: Dockerfile.prod, args: [A=1, B]}")
                .unwrap();
        let b = parse_build(&v).unwrap();
        assert_eq!(b.dockerfile.as_deref(), Some("Dockerfile.prod"));
        assert_eq!(b.args["A"].as_deref(), Some("1"));
        assert_eq!(b.args["B"], None);
        let v: Value = serde_yaml::from_str("{args: {N: 3}}").unwrap();
        assert_eq!(parse_build(&v).unwrap().args["N"].as_deref(), Some("3"));
    }
}
