//! Handlers notified on a host but not yet run, recorded on the host itself.
//!
//! A change that notifies a handler (a new daemon.json notifying `restart docker`) is recorded
//! on the host before it is applied, and the record is cleared once the play's handlers ran. A
//! run cut short in between (the controller killed, the host unreachable) leaves the record, and
//! the next run, which sees no change, still runs the handler. The record lives in the SSH
//! user's `~/.local/state/minipaas/pending-handlers` (no privileges needed), one JSON
//! `[play, handler]` pair per line. What the host says there is untrusted: it can only name
//! handlers of the play being run, which the engine then runs as the plan defines them.

use std::collections::BTreeSet;

use crate::modules::ModuleError;
use crate::transport::{Transport, TransportError};

/// The record's directory and file, relative to the SSH user's home.
const DIR: &str = "$HOME/.local/state/minipaas";
const FILE: &str = "$HOME/.local/state/minipaas/pending-handlers";

/// The (play, handler) pairs on record for one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    entries: BTreeSet<(String, String)>,
}

impl Pending {
    /// Reads the host's record; a missing file is an empty record.
    pub async fn load(transport: &Transport) -> Result<Pending, TransportError> {
        let out = transport
            .exec(&format!("cat \"{FILE}\" 2>/dev/null || true"), None)
            .await?;
        Ok(Pending::parse(&out.stdout_str()))
    }

    /// Lines that are not a pair of strings are ignored: a damaged record must not stop a run.
    fn parse(text: &str) -> Pending {
        let entries = text
            .lines()
            .filter_map(|l| serde_json::from_str::<(String, String)>(l).ok())
            .collect();
        Pending { entries }
    }

    fn render(&self) -> String {
        self.entries
            .iter()
            .filter_map(|e| serde_json::to_string(e).ok())
            .map(|l| l + "\n")
            .collect()
    }

    /// The handlers on record for `play`.
    pub fn for_play<'a>(&'a self, play: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(p, _)| p == play)
            .map(|(_, h)| h.as_str())
    }

    /// Adds `handlers` of `play`; true when the record changed.
    pub fn add<'a>(&mut self, play: &str, handlers: impl IntoIterator<Item = &'a String>) -> bool {
        let mut changed = false;
        for h in handlers {
            changed |= self.entries.insert((play.to_string(), h.clone()));
        }
        changed
    }

    /// Forgets every handler of `play`; true when the record changed.
    pub fn clear(&mut self, play: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(p, _)| p != play);
        self.entries.len() != before
    }

    /// Replaces the host's record with this one (removes it when empty), atomically.
    pub async fn save(&self, transport: &Transport) -> Result<(), ModuleError> {
        let text = self.render();
        let script = if text.is_empty() {
            format!("rm -f \"{FILE}\"")
        } else {
            format!(
                "set -e; mkdir -p \"{DIR}\"; t=$(mktemp \"{DIR}/.pending.XXXXXX\"); \
                 cat > \"$t\"; mv -f \"$t\" \"{FILE}\""
            )
        };
        let stdin = (!text.is_empty()).then_some(text.as_bytes());
        let out = transport.exec(&script, stdin).await?;
        if out.success() {
            Ok(())
        } else {
            Err(ModuleError::Failed {
                what: format!("recording pending handlers in `{FILE}`"),
                code: out.code.map_or_else(|| "signal".into(), |c| c.to_string()),
                stderr: out.stderr_str().trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_damage() {
        let mut p = Pending::default();
        assert!(p.add("node", &["restart docker".to_string()]));
        assert!(!p.add("node", &["restart docker".to_string()]));
        assert!(p.add("other", &["reload \"caddy\"\n".to_string()]));
        let text = p.render();
        assert_eq!(text.lines().count(), 2);
        let mut back = Pending::parse(&format!("garbage\n[1,2]\n{text}[\"only one\"]\n"));
        assert_eq!(back, p);
        assert_eq!(
            back.for_play("node").collect::<Vec<_>>(),
            vec!["restart docker"]
        );
        assert!(back.clear("node"));
        assert!(!back.clear("node"));
        assert_eq!(back.for_play("node").count(), 0);
        assert_eq!(back.for_play("other").count(), 1);
    }
}
