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

    /// Writes `data` to `path` atomically: a temp file in the same directory with its owner and
    /// mode set first (kept from the existing file unless given), then the content, checked
    /// against `data`'s size and sha256 and fsynced, then `validate` run on it (`%s` is the temp
    /// path), then renamed into place. Readers never see half a file; a transfer cut short (a
    /// lost connection, a killed controller: `cat` sees an early EOF), a corrupted one or a file
    /// that fails validation never replaces the old one, and the temp file is removed.
    pub async fn write_file(
        &self,
        path: &str,
        data: &[u8],
        attrs: &Attrs,
        validate: Option<&str>,
    ) -> Result<(), ModuleError> {
        let script = write_script(path, &Expected::of(data), attrs, validate);
        self.run_ok(&format!("writing `{path}`"), &script, Some(data))
            .await
            .map(|_| ())
    }
}

/// What the host must have received before a written file may replace the old one.
pub(crate) struct Expected {
    pub size: usize,
    /// Lowercase hex, as `sha256sum` prints it.
    pub sha256: String,
}

impl Expected {
    pub(crate) fn of(data: &[u8]) -> Expected {
        Expected {
            size: data.len(),
            sha256: super::files::sha256_hex(data),
        }
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

/// The script behind [`Context::write_file`]; the content arrives on stdin. Attributes come
/// before the content, so a new key file is never readable by others for a moment.
pub(crate) fn write_script(
    path: &str,
    expected: &Expected,
    attrs: &Attrs,
    validate: Option<&str>,
) -> String {
    let p = shell_quote(path);
    let mut s = format!(
        "set -e; d=$(dirname {p}); t=$(mktemp \"$d/.minipaas.XXXXXX\"); trap 'rm -f \"$t\"' EXIT; \
         if [ -e {p} ]; then chmod --reference={p} \"$t\"; chown --reference={p} \"$t\"; else chmod 0644 \"$t\"; fi; "
    );
    s.push_str(&attr_commands("\"$t\"", attrs));
    let (size, sha256) = (expected.size, &expected.sha256);
    s.push_str(&format!(
        "cat > \"$t\"; n=$(wc -c < \"$t\"); \
         if [ \"$n\" -ne {size} ]; then echo \"received $n of {size} bytes; the old file is left in place\" >&2; exit 1; fi; \
         h=$(sha256sum < \"$t\"); if [ \"${{h%% *}}\" != {sha256} ]; then echo \"received content with another sha256; the old file is left in place\" >&2; exit 1; fi; \
         sync \"$t\"; "
    ));
    if let Some(v) = validate {
        s.push_str(&format!("{}; ", v.replace("%s", "\"$t\"")));
    }
    // The directory is synced too, so the rename itself survives a crash.
    s.push_str(&format!("mv -f \"$t\" {p}; trap - EXIT; sync \"$d\""));
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// Runs the write script locally with `sh` (the script is plain POSIX shell, the same on a
    /// host), feeding it `sent` and returning its exit status and stderr.
    fn write(path: &std::path::Path, data: &[u8], sent: &[u8], attrs: &Attrs) -> (bool, String) {
        let mut child = spawn_write(path, data, attrs);
        child.stdin.take().unwrap().write_all(sent).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// The write script for `data` running locally in `sh`, its stdin and stderr piped.
    fn spawn_write(path: &std::path::Path, data: &[u8], attrs: &Attrs) -> std::process::Child {
        let script = write_script(path.to_str().unwrap(), &Expected::of(data), attrs, None);
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn temp_files(dir: &std::path::Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".minipaas."))
            .collect()
    }

    #[test]
    fn a_cut_or_corrupted_transfer_never_replaces_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("daemon.json");
        std::fs::write(&path, "old\n").unwrap();
        let data = b"{\"log-driver\": \"journald\"}\n".repeat(100);
        let mut corrupted = data.clone();
        corrupted[10] ^= 1;
        let cases: [(&[u8], &str); 4] = [
            (&data[..data.len() / 2], "received 1350 of 2700 bytes"),
            (b"", "received 0 of 2700 bytes"),
            (&corrupted, "another sha256"),
            (
                &[data.as_slice(), b"x"].concat(),
                "received 2701 of 2700 bytes",
            ),
        ];
        for (sent, why) in cases {
            let (ok, stderr) = write(&path, &data, sent, &Attrs::default());
            assert!(!ok, "{why}");
            assert!(stderr.contains(why), "{why}: {stderr}");
            assert_eq!(std::fs::read(&path).unwrap(), b"old\n", "{why}");
            assert_eq!(temp_files(dir.path()), Vec::<String>::new(), "{why}");
        }
        let (ok, stderr) = write(&path, &data, &data, &Attrs::default());
        assert!(ok, "{stderr}");
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(temp_files(dir.path()), Vec::<String>::new());
    }

    /// The mode asked for is on the temp file before the first byte of content arrives: a new
    /// 0600 key is never 0644 with its content in it, not even for a moment.
    #[test]
    fn mode_is_set_before_any_content_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server-key.pem");
        let data = vec![b'k'; 64 * 1024];
        let attrs = Attrs {
            mode: Some("0600".into()),
            ..Attrs::default()
        };
        let mut child = spawn_write(&path, &data, &attrs);
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&data[..1024]).unwrap();
        stdin.flush().unwrap();
        // The first bytes are in the temp file while the rest has not been sent.
        let deadline = Instant::now() + Duration::from_secs(10);
        let temp = loop {
            let with_content = temp_files(dir.path())
                .into_iter()
                .map(|n| dir.path().join(n))
                .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0));
            if let Some(t) = with_content {
                break t;
            }
            assert!(Instant::now() < deadline, "no temp file with content");
            std::thread::sleep(Duration::from_millis(5));
        };
        let mode = std::fs::metadata(&temp).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600, "temp file {temp:?} has content at {mode:o}");
        stdin.write_all(&data[1024..]).unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
    }
}
