//! The one way a module reaches a host: privilege escalation, timeouts and atomic file writes
//! are applied here, the same for every module.

use std::time::Duration;

use crate::template::shell_quote;
use crate::transport::{Output, Transport};

use super::ModuleError;

/// Owner, group and mode wanted for a path; `None` leaves that attribute as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    /// Octal digits, normalized to four (`0644`).
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

pub struct Context<'a> {
    pub transport: &'a Transport,
    /// Run through `sudo -n` (a `become` task on a host whose user is not root).
    pub sudo: bool,
    pub timeout: Duration,
}

impl Context<'_> {
    /// The command line that runs `script` with this context's privileges.
    pub fn wrap(&self, script: &str) -> String {
        if self.sudo {
            format!("sudo -n -H sh -c {}", shell_quote(script))
        } else {
            script.to_string()
        }
    }

    /// Runs a script; a non-zero exit is returned, not an error.
    pub async fn run(&self, script: &str, stdin: Option<&[u8]>) -> Result<Output, ModuleError> {
        let cmd = self.wrap(script);
        match tokio::time::timeout(self.timeout, self.transport.exec(&cmd, stdin)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ModuleError::Timeout {
                seconds: self.timeout.as_secs(),
            }),
        }
    }

    /// Runs a script that must succeed; `what` names it in the error.
    pub async fn run_ok(
        &self,
        what: &str,
        script: &str,
        stdin: Option<&[u8]>,
    ) -> Result<Output, ModuleError> {
        let out = self.run(script, stdin).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(ModuleError::Failed {
                what: what.to_string(),
                code: out
                    .code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "signal".into()),
                stderr: tail(&out.stderr_str(), &out.stdout_str()),
            })
        }
    }

    /// A file's bytes, or `None` when it does not exist.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, ModuleError> {
        let p = shell_quote(path);
        let out = self
            .run_ok(
                &format!("reading `{path}`"),
                &format!("if [ -f {p} ]; then printf 'Y'; cat {p}; else printf 'N'; fi"),
                None,
            )
            .await?;
        Ok(match out.stdout.split_first() {
            Some((b'Y', rest)) => Some(rest.to_vec()),
            _ => None,
        })
    }

    /// Writes `data` to `path` atomically: a temp file in the same directory, attributes set
    /// (kept from the existing file unless given), `validate` run on it (`%s` is the temp
    /// path), then renamed into place. Readers never see half a file, and a file that fails
    /// validation never replaces the old one.
    pub async fn write_file(
        &self,
        path: &str,
        data: &[u8],
        attrs: &Attrs,
        validate: Option<&str>,
    ) -> Result<(), ModuleError> {
        let script = write_script(path, attrs, validate);
        self.run_ok(&format!("writing `{path}`"), &script, Some(data))
            .await
            .map(|_| ())
    }
}

/// The last lines of what a failed command said.
fn tail(stderr: &str, stdout: &str) -> String {
    let text = if stderr.trim().is_empty() {
        stdout
    } else {
        stderr
    };
    let lines: Vec<&str> = text.trim().lines().collect();
    let start = lines.len().saturating_sub(8);
    lines[start..].join("\n")
}

pub(crate) fn write_script(path: &str, attrs: &Attrs, validate: Option<&str>) -> String {
    let p = shell_quote(path);
    let mut s = format!(
        "set -e; t=$(mktemp \"$(dirname {p})/.minipaas.XXXXXX\"); trap 'rm -f \"$t\"' EXIT; cat > \"$t\"; \
         if [ -e {p} ]; then chmod --reference={p} \"$t\"; chown --reference={p} \"$t\"; else chmod 0644 \"$t\"; fi; "
    );
    s.push_str(&attr_commands("\"$t\"", attrs));
    if let Some(v) = validate {
        s.push_str(&format!("{}; ", v.replace("%s", "\"$t\"")));
    }
    s.push_str(&format!("mv -f \"$t\" {p}; trap - EXIT"));
    s
}

/// chmod/chown/chgrp for the attributes that are set; `target` is already quoted.
pub(crate) fn attr_commands(target: &str, attrs: &Attrs) -> String {
    let mut s = String::new();
    if let Some(m) = &attrs.mode {
        s.push_str(&format!("chmod {m} {target}; "));
    }
    if let Some(o) = &attrs.owner {
        s.push_str(&format!("chown {} {target}; ", shell_quote(o)));
    }
    if let Some(g) = &attrs.group {
        s.push_str(&format!("chgrp {} {target}; ", shell_quote(g)));
    }
    s
}
