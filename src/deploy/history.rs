//! Deployment history, kept on the cluster: one Docker config per rollout, rollback or canary
//! step, labelled `minipaas.history=<stack>`. Configs live in the swarm's Raft store, so every
//! manager has them and two operators read the same history; each record carries the stack
//! files it deployed, which is what `deploy rollback` and `canary abort` deploy again.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map};
use tokio::sync::mpsc::UnboundedSender;

use super::cluster::{Cluster, OpsError};
use super::plans::HISTORY;
use super::stack::StackFile;
use crate::engine::{Event, Recap};
use crate::template::shell_quote;

/// Records kept per stack; older ones are removed when a new one is written.
pub const KEEP: usize = 50;

/// The label that marks history configs; its value is the stack.
pub const LABEL: &str = "minipaas.history";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Rollout,
    /// Back to an earlier record, asked for or after a failed rollout.
    Rollback,
    Canary,
    Promote,
    Abort,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rollout => "rollout",
            Action::Rollback => "rollback",
            Action::Canary => "canary",
            Action::Promote => "promote",
            Action::Abort => "abort",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Succeeded,
    Failed,
}

impl Outcome {
    pub fn of(success: bool) -> Outcome {
        if success {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub name: String,
    pub content: String,
}

/// One step of the stack's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    pub time: String,
    pub action: Action,
    /// The env's `deploy.version` that was deployed.
    pub version: String,
    pub result: Outcome,
    /// `user@machine` that ran minipaas.
    pub by: String,
    /// What else a reader needs: the service of a canary, the version a rollback left.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// Digest of the version and stack files (as `deploy rollout` computes it).
    pub digest: String,
    /// The stack files as deployed, to deploy them again.
    #[serde(default)]
    pub files: Vec<StoredFile>,
}

impl Record {
    pub fn new(action: Action, version: &str, result: Outcome, digest: &str) -> Record {
        Record {
            time: now_utc(),
            action,
            version: version.to_string(),
            result,
            by: operator(),
            detail: String::new(),
            digest: digest.to_string(),
            files: Vec::new(),
        }
    }

    pub fn with_files(mut self, files: &[StackFile]) -> Record {
        self.files = files
            .iter()
            .map(|f| StoredFile {
                name: f.name.clone(),
                content: f.content.clone(),
            })
            .collect();
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Record {
        self.detail = detail.into();
        self
    }

    pub fn stack_files(&self) -> Vec<StackFile> {
        self.files
            .iter()
            .map(|f| StackFile {
                name: f.name.clone(),
                content: f.content.clone(),
            })
            .collect()
    }

    /// The config's name: `<stack>.history.<time>.<4 hex>`. Sorting names sorts by time; the
    /// random suffix keeps two operators in the same second apart.
    pub fn config_name(&self, stack: &str) -> String {
        let stamp: String = self.time.chars().filter(char::is_ascii_digit).collect();
        format!("{stack}.history.{stamp}.{:04x}", rand::random::<u16>())
    }

    /// One line of JSON (the config's content; the reader splits on newlines).
    pub fn to_line(&self) -> String {
        // Strings and plain enums: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The records in `text` (one JSON object per line, as the manager prints them), oldest first.
/// Lines that are not records (written by something else) are skipped.
pub fn parse(text: &str) -> Vec<(String, Record)> {
    let mut out: Vec<(String, Record)> = text
        .lines()
        .filter_map(|l| {
            let (name, json) = l.split_once(' ')?;
            Some((name.to_string(), serde_json::from_str(json).ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The shell command that prints every record of `stack` as `<config name> <json>` lines.
pub fn list_command(stack: &str) -> String {
    let label = crate::template::shell_quote(&format!("{LABEL}={stack}"));
    format!(
        "ids=$(docker config ls -q --filter label={label}); \
         [ -z \"$ids\" ] || docker config inspect --format '{{{{.Spec.Name}}}} {{{{printf \"%s\" .Spec.Data}}}}' $ids"
    )
}

/// The stack as it runs now: the newest record that succeeded.
pub fn current(records: &[Record]) -> Option<&Record> {
    records
        .iter()
        .rev()
        .find(|r| r.result == Outcome::Succeeded)
}

/// The stack as it ran before its newest successful step (or before the failed attempt that
/// followed it): the newest succeeded record whose files differ from `current`'s, skipping
/// canaries, which are never a place to go back to.
pub fn previous<'a>(records: &'a [Record], current: &Record) -> Option<&'a Record> {
    records.iter().rev().find(|r| {
        r.result == Outcome::Succeeded && r.action != Action::Canary && r.digest != current.digest
    })
}

/// The newest succeeded record of `version` (not a canary).
pub fn of_version<'a>(records: &'a [Record], version: &str) -> Option<&'a Record> {
    records.iter().rev().find(|r| {
        r.result == Outcome::Succeeded && r.action != Action::Canary && r.version == version
    })
}

/// The stack without its canary: the newest succeeded record that is not a canary.
pub fn stable(records: &[Record]) -> Option<&Record> {
    records
        .iter()
        .rev()
        .find(|r| r.result == Outcome::Succeeded && r.action != Action::Canary)
}

/// The name of this process's user in /etc/passwd, where USER is not set (cron, CI).
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.get(2) == Some(&uid.as_str())).then(|| f[0].to_string())
    })
}

fn now_utc() -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    crate::swarm::rfc3339(now).unwrap_or_default()
}

/// `user@machine`, from the environment and the kernel's host name.
fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{host}")
}

/// Every history record of `stack`, oldest first.
pub async fn read(c: &Cluster, stack: &str) -> Result<Vec<Record>, OpsError> {
    let text = c.read_on_manager(&list_command(stack)).await?;
    Ok(parse(&text).into_iter().map(|(_, r)| r).collect())
}

/// Writes `record` into the stack's history on the cluster and drops the oldest records
/// beyond [`KEEP`].
pub async fn record(
    c: &Cluster,
    stack: &str,
    record: &Record,
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let label = shell_quote(&format!("{}={stack}", LABEL));
    let command = format!(
        "docker config create --label {label} {name} - >/dev/null && \
         docker config ls --filter label={label} --format '{{{{.Name}}}}' | sort | head -n -{keep} \
         | xargs -r docker config rm >/dev/null",
        name = shell_quote(&record.config_name(stack)),
        keep = KEEP,
    );
    let mut vars = Map::new();
    vars.insert("record_command".into(), json!(command));
    vars.insert("record".into(), json!(record.to_line()));
    c.run("history.yaml", HISTORY, &c.on_manager(), vars, events)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: Action, version: &str, result: Outcome, digest: &str) -> Record {
        Record::new(action, version, result, digest)
    }

    #[test]
    fn lines_round_trip_and_sort_by_name() {
        let a = rec(Action::Rollout, "1", Outcome::Succeeded, "d1").with_files(&[StackFile {
            name: "01-compose.yaml".into(),
            content: "services:\n  web: {}\n".into(),
        }]);
        let b = rec(Action::Rollout, "2", Outcome::Failed, "d2");
        let text = format!(
            "s.history.2.aaaa {}\nnot a record\ns.history.1.bbbb {}\n",
            b.to_line(),
            a.to_line()
        );
        let got = parse(&text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, a);
        assert_eq!(got[1].1, b);
        assert!(!a.to_line().contains('\n'));
    }

    #[test]
    fn where_rollback_and_abort_go() {
        let v1 = rec(Action::Rollout, "1", Outcome::Succeeded, "d1");
        let v2 = rec(Action::Rollout, "2", Outcome::Succeeded, "d2");
        let canary = rec(Action::Canary, "3", Outcome::Succeeded, "d3");
        let failed = rec(Action::Rollout, "4", Outcome::Failed, "d4");
        let all = vec![v1.clone(), v2.clone(), canary.clone(), failed];
        assert_eq!(current(&all), Some(&canary));
        assert_eq!(stable(&all), Some(&v2));
        assert_eq!(previous(&all, &v2), Some(&v1));
        assert_eq!(of_version(&all, "1"), Some(&v1));
        assert_eq!(
            of_version(&all, "3"),
            None,
            "a canary is not a version to go to"
        );
        assert!(previous(std::slice::from_ref(&v1), &v1).is_none());
    }

    #[test]
    fn config_names_sort_by_time() {
        let mut r = rec(Action::Rollout, "1", Outcome::Succeeded, "d");
        r.time = "2026-11-23T10:00:00Z".into();
        let n = r.config_name("app");
        assert!(n.starts_with("app.history.20261123100000."), "{n}");
        assert!(n.len() <= 64);
    }
}
