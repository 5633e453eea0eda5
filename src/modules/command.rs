//! `command` and `shell`: run a command, unless a guard (`creates`, `removes`, `unless`) says
//! it has already done its work. Both go through `sh`.

use serde::Deserialize;
use serde_json::Value;

use crate::template::shell_quote;

use super::context::Context;
use super::{Applied, Change, ModuleError, Probe, Seen};

#[derive(Debug)]
pub struct Command {
    pub cmd: String,
    chdir: Option<String>,
    creates: Option<String>,
    removes: Option<String>,
    unless: Option<String>,
    stdin: Option<String>,
}

impl Command {
    pub fn new(a: &Value) -> Result<Command, ModuleError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct A {
            cmd: String,
            chdir: Option<String>,
            creates: Option<String>,
            removes: Option<String>,
            unless: Option<String>,
            stdin: Option<String>,
        }
        let r: A = super::args("command", a)?;
        Ok(Command {
            cmd: r.cmd,
            chdir: r.chdir,
            creates: r.creates,
            removes: r.removes,
            unless: r.unless,
            stdin: r.stdin,
        })
    }

    /// Prints `skip` when a guard says the command has nothing to do. `unless` is a read-only
    /// command by contract: it runs in check mode too.
    pub fn probe(&self) -> Probe {
        let mut s = String::new();
        if let Some(c) = &self.creates {
            s.push_str(&format!(
                "if [ -e {} ]; then echo skip; exit 0; fi; ",
                shell_quote(c)
            ));
        }
        if let Some(r) = &self.removes {
            s.push_str(&format!(
                "if [ ! -e {} ]; then echo skip; exit 0; fi; ",
                shell_quote(r)
            ));
        }
        if let Some(u) = &self.unless {
            s.push_str(&format!(
                "if ( {u} ) >/dev/null 2>&1; then echo skip; exit 0; fi; "
            ));
        }
        s.push_str("echo run");
        Probe::Shell(s)
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        Ok(if seen.output()?.trim() == "skip" {
            Vec::new()
        } else {
            vec![Change::Run(self.cmd.clone())]
        })
    }

    /// Runs the command; its exit status is judged by the engine (`failed_when`).
    pub async fn apply(&self, ctx: &Context<'_>) -> Result<Applied, ModuleError> {
        let script = match &self.chdir {
            Some(d) => format!("cd {} && {}", shell_quote(d), self.cmd),
            None => self.cmd.clone(),
        };
        let out = ctx
            .run(&script, self.stdin.as_deref().map(str::as_bytes))
            .await?;
        Ok(Applied { output: Some(out) })
    }
}
