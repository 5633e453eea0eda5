//! `get_url`: a file downloaded on the host, verified against a sha256 before it is renamed into
//! place, so a wrong or truncated download never replaces the previous file.
//!
//! The sha256 is either written in the plan (`checksum: sha256:<64 hex digits>`) or, as Ansible
//! allows, read from a checksums file (`checksum: sha256:https://.../checksums.txt`): the host
//! fetches that file over the same network as the download (a mirror serves both) and the line
//! for the URL's file name gives the sum. A checksums file without that line is an error, never
//! an unverified download. The module never trusts a download it could not verify.

use serde::Deserialize;
use serde_json::Value;

use crate::template::shell_quote;

use super::context::{attr_commands, Attrs, Context};
use super::files::{self, Kind, PathProbes, PathState};
use super::{Applied, Change, ModuleError, Probe, Seen};

/// A checksums file larger than this is not a checksums file.
const MAX_CHECKSUMS_BYTES: usize = 1 << 20;

/// Where the expected sha256 comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expected {
    /// Written in the plan: 64 lowercase hex digits.
    Sha256(String),
    /// The line for `file` in the checksums file at `url`.
    ChecksumsFile { url: String, file: String },
}

/// Why the sha256 could not be read from a checksums file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumsError {
    #[error("cannot fetch the checksums file `{url}` (exit {code}): {detail}")]
    Fetch {
        url: String,
        code: String,
        detail: String,
    },
    #[error("the checksums file `{url}` has no sha256 for `{file}`")]
    NoLine { url: String, file: String },
    #[error("the checksums file `{url}` lists `{file}` more than once with different sums")]
    Conflict { url: String, file: String },
    #[error("the checksums file `{url}` has a line that is not `<sha256> <file name>`: `{line}`")]
    Malformed { url: String, line: String },
    #[error("the checksums file `{url}` is larger than {MAX_CHECKSUMS_BYTES} bytes")]
    TooLarge { url: String },
}

#[derive(Debug)]
pub struct GetUrl {
    url: String,
    pub dest: String,
    expected: Expected,
    attrs: Attrs,
    timeout: u64,
    /// Separates the parts of the checksums-file probe's answer; random, so a checksums file
    /// cannot forge it.
    boundary: String,
}

impl GetUrl {
    pub fn new(a: &Value) -> Result<GetUrl, ModuleError> {
        #[derive(Deserialize)]
        struct A {
            url: String,
            dest: String,
            checksum: String,
            timeout: Option<u64>,
        }
        let r: A = super::args("get_url", a)?;
        let bad = |why: String| ModuleError::Args { message: why };
        let value = r.checksum.trim().strip_prefix("sha256:").ok_or_else(|| {
            bad(format!(
                "`get_url` needs `checksum: sha256:<64 hex digits>` or \
                 `checksum: sha256:<URL of a checksums file>`, found `{}`",
                r.checksum
            ))
        })?;
        let expected = if value.starts_with("http://") || value.starts_with("https://") {
            let file = file_name(&r.url).ok_or_else(|| {
                bad(format!(
                    "`get_url`: `{}` names no file to look up in the checksums file",
                    r.url
                ))
            })?;
            Expected::ChecksumsFile {
                url: value.to_string(),
                file,
            }
        } else {
            Expected::Sha256(sha256_hex(value).ok_or_else(|| {
                bad(format!(
                    "`get_url` needs `checksum: sha256:<64 hex digits>` or \
                     `checksum: sha256:<URL of a checksums file>`, found `{}`",
                    r.checksum
                ))
            })?)
        };
        Ok(GetUrl {
            url: r.url,
            dest: r.dest,
            expected,
            attrs: files::attrs_from(a)?,
            timeout: r.timeout.unwrap_or(60),
            boundary: format!("@@minipaas-get-url-{:016x}@@", rand::random::<u64>()),
        })
    }

    /// With a sha256 in the plan, the state of `dest`. With a checksums file, one read-only
    /// script: the checksums file as fetched (or why not), then the same path probe of `dest`.
    pub fn probe(&self) -> Probe {
        match &self.expected {
            Expected::Sha256(_) => Probe::Path {
                path: self.dest.clone(),
                content: false,
            },
            Expected::ChecksumsFile { url, .. } => {
                let mut paths = PathProbes::default();
                paths.add(&self.dest, false);
                let [stat, sums, data] = paths.scripts();
                let b = &self.boundary;
                Probe::Shell(format!(
                    "c=$({fetch} 2>&1); echo \"fetch $?\"; printf '%s\\n' \"$c\"\n\
                     printf '\\n%s\\n' '{b}'\n{{ {stat}\n}}\nprintf '\\n%s\\n' '{b}'\n\
                     {{ {sums}\n}}\nprintf '\\n%s\\n' '{b}'\n{{ {data}\n}}",
                    fetch = fetch_script(url, self.timeout),
                ))
            }
        }
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let (sha256, st) = match &self.expected {
            Expected::Sha256(h) => (h.clone(), files::state(seen)?.clone()),
            Expected::ChecksumsFile { url, file } => self.parse_probe(url, file, seen.output()?)?,
        };
        Ok(match &st.kind {
            Kind::File if st.sha256.as_deref() == Some(sha256.as_str()) => {
                files::attr_changes(&st, &self.attrs)
            }
            Kind::File | Kind::Missing => vec![Change::Download(self.url.clone())],
            other => vec![Change::Replace {
                from: other.label().into(),
            }],
        })
    }

    /// The sum the checksums file gives and the state of `dest`, from the probe's answer.
    fn parse_probe(
        &self,
        url: &str,
        file: &str,
        out: &str,
    ) -> Result<(String, PathState), ModuleError> {
        let unexpected = || ModuleError::Probe {
            message: format!(
                "the answer to the probe of `{}` has the wrong shape",
                self.dest
            ),
        };
        let sep = format!("\n{}\n", self.boundary);
        let parts: Vec<&str> = out.split(sep.as_str()).collect();
        let [fetched, stat, sums, data] = parts[..] else {
            return Err(unexpected());
        };
        let (status, body) = fetched.split_once('\n').unwrap_or((fetched, ""));
        let code = status.strip_prefix("fetch ").ok_or_else(unexpected)?;
        let body = body.strip_suffix('\n').unwrap_or(body);
        if code != "0" {
            return Err(ChecksumsError::Fetch {
                url: url.into(),
                code: code.into(),
                detail: detail(body),
            }
            .into());
        }
        let sha256 = sha256_in(url, file, body)?;
        let mut paths = PathProbes::default();
        paths.add(&self.dest, false);
        let st = paths
            .parse(stat, sums, data)
            .pop()
            .ok_or_else(unexpected)??;
        Ok((sha256, st))
    }

    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        let p = shell_quote(&self.dest);
        let u = shell_quote(&self.url);
        let t = self.timeout;
        let s = if changes
            .iter()
            .any(|c| matches!(c, Change::Download(_) | Change::Replace { .. }))
        {
            // Read again now, not remembered from the check: the download is verified against
            // what the checksums file says at the moment of the download.
            let sha = match &self.expected {
                Expected::Sha256(h) => h.clone(),
                Expected::ChecksumsFile { url, file } => {
                    let out = ctx.run(&fetch_script(url, t), None).await?;
                    if !out.success() {
                        return Err(ChecksumsError::Fetch {
                            url: url.clone(),
                            code: out
                                .code
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "signal".into()),
                            detail: detail(&out.stderr_str()),
                        }
                        .into());
                    }
                    sha256_in(url, file, &out.stdout_str())?
                }
            };
            format!(
                "set -e; t=$(mktemp \"$(dirname {p})/.minipaas.XXXXXX\"); trap 'rm -f \"$t\"' EXIT; \
                 if command -v curl >/dev/null; then curl -fsSL --max-time {t} -o \"$t\" {u}; \
                 elif command -v wget >/dev/null; then wget -q -T {t} -O \"$t\" {u}; \
                 else echo 'neither curl nor wget is installed' >&2; exit 127; fi; \
                 got=$(sha256sum < \"$t\" | cut -c1-64); \
                 if [ \"$got\" != {sha} ]; then echo \"checksum mismatch: expected sha256 {sha}, downloaded $got\" >&2; exit 1; fi; \
                 if [ -e {p} ]; then chmod --reference={p} \"$t\"; chown --reference={p} \"$t\"; else chmod 0644 \"$t\"; fi; \
                 {attrs}if [ -d {p} ] && [ ! -L {p} ]; then rm -rf {p}; fi; mv -f \"$t\" {p}; trap - EXIT",
                attrs = attr_commands("\"$t\"", &self.attrs),
            )
        } else {
            attr_commands(&p, &self.attrs)
        };
        ctx.run_ok(&format!("downloading `{}`", self.url), &s, None)
            .await?;
        Ok(Applied::default())
    }
}

/// A script that prints the document at `url` (curl, else wget).
fn fetch_script(url: &str, timeout: u64) -> String {
    let u = shell_quote(url);
    format!(
        "if command -v curl >/dev/null; then curl -fsSL --max-time {timeout} {u}; \
         elif command -v wget >/dev/null; then wget -q -T {timeout} -O- {u}; \
         else echo 'neither curl nor wget is installed' >&2; exit 127; fi"
    )
}

/// 64 hex digits, lowercased; `None` for anything else.
fn sha256_hex(s: &str) -> Option<String> {
    let h = s.trim().to_ascii_lowercase();
    (h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit())).then_some(h)
}

/// The last segment of a URL's path, without query or fragment: the name a checksums file
/// lists the download under.
fn file_name(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.rsplit('/').next().unwrap_or(path);
    (!name.is_empty() && path.contains("://") && path.matches('/').count() > 2)
        .then(|| name.to_string())
}

/// What the host printed about a failed fetch, short enough for an error message.
fn detail(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &t[..i]),
        None => t.to_string(),
    }
}

/// The sha256 for `file` in a checksums file (`sha256sum`'s format: `<sum>  <name>`, or
/// `<sum> *<name>` for binary mode, names possibly starting with `./`), as Ansible reads it. A
/// file of a single bare sum is that sum. Blank lines and `#` comments are skipped; a line for
/// `file` that is not a sha256 is an error, so are two lines for `file` that disagree.
pub fn sha256_in(url: &str, file: &str, text: &str) -> Result<String, ChecksumsError> {
    if text.len() > MAX_CHECKSUMS_BYTES {
        return Err(ChecksumsError::TooLarge { url: url.into() });
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let malformed = |line: &str| ChecksumsError::Malformed {
        url: url.into(),
        line: detail(line),
    };
    if let [only] = lines[..] {
        if !only.contains(char::is_whitespace) {
            return sha256_hex(only).ok_or_else(|| malformed(only));
        }
    }
    let mut found: Option<String> = None;
    for line in lines {
        let Some((sum, name)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let name = name.trim_start();
        let name = name.strip_prefix('*').unwrap_or(name);
        let name = name.strip_prefix("./").unwrap_or(name);
        if name != file {
            continue;
        }
        let sum = sha256_hex(sum).ok_or_else(|| malformed(line))?;
        match &found {
            Some(f) if *f != sum => {
                return Err(ChecksumsError::Conflict {
                    url: url.into(),
                    file: file.into(),
                })
            }
            _ => found = Some(sum),
        }
    }
    found.ok_or_else(|| ChecksumsError::NoLine {
        url: url.into(),
        file: file.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn checksums_files_are_read_as_ansible_reads_them() {
        let f = "swarm-cronjob_1.14.0_linux_amd64.tar.gz";
        let sum = |text: &str| sha256_in("u", f, text);
        // sha256sum -b, as swarm-cronjob's release writes it.
        let release = format!(
            "{B} *swarm-cronjob_1.14.0_linux_arm64.tar.gz\n{A} *{f}\n{B} *swarm-cronjob_1.14.0_windows_amd64.zip\n"
        );
        let table = [
            (release, Ok(A.to_string())),
            (format!("{A}  {f}\n"), Ok(A.into())),
            (format!("{A}  ./{f}"), Ok(A.into())),
            (
                format!("# sums\n\n{}  {f}\r\n", A.to_uppercase()),
                Ok(A.into()),
            ),
            (format!("{A}\n"), Ok(A.into())),
            (format!("{A}  {f}\n{A} *{f}\n"), Ok(A.into())),
            (
                format!("{B}  other.tar.gz\n"),
                Err(ChecksumsError::NoLine {
                    url: "u".into(),
                    file: f.into(),
                }),
            ),
            (
                // A longer name that ends with the file's is another file.
                format!("{A}  x{f}\n"),
                Err(ChecksumsError::NoLine {
                    url: "u".into(),
                    file: f.into(),
                }),
            ),
            (
                String::new(),
                Err(ChecksumsError::NoLine {
                    url: "u".into(),
                    file: f.into(),
                }),
            ),
            (
                format!("{A}  {f}\n{B}  {f}\n"),
                Err(ChecksumsError::Conflict {
                    url: "u".into(),
                    file: f.into(),
                }),
            ),
            (
                format!("abc  {f}\n"),
                Err(ChecksumsError::Malformed {
                    url: "u".into(),
                    line: format!("abc  {f}"),
                }),
            ),
            (
                "not-a-sum\n".into(),
                Err(ChecksumsError::Malformed {
                    url: "u".into(),
                    line: "not-a-sum".into(),
                }),
            ),
        ];
        for (text, want) in table {
            assert_eq!(sum(&text), want, "{text:?}");
        }
        assert!(matches!(
            sum(&"#".repeat(MAX_CHECKSUMS_BYTES + 1)),
            Err(ChecksumsError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_checksum_is_a_sum_or_the_url_of_a_checksums_file() {
        let build = |url: &str, checksum: &str| {
            GetUrl::new(&json!({"url": url, "dest": "/tmp/x", "checksum": checksum}))
        };
        let m = build(
            "https://h/d/f.tar.gz",
            &format!("sha256:{}", A.to_uppercase()),
        )
        .unwrap();
        assert_eq!(m.expected, Expected::Sha256(A.into()));
        let m = build(
            "https://h/d/f.tar.gz?x=1",
            "sha256:http://h/d/checksums.txt",
        )
        .unwrap();
        assert_eq!(
            m.expected,
            Expected::ChecksumsFile {
                url: "http://h/d/checksums.txt".into(),
                file: "f.tar.gz".into()
            }
        );
        assert!(matches!(m.probe(), Probe::Shell(_)));
        for (url, checksum) in [
            ("https://h/f", "sha256:"),
            ("https://h/f", "sha256:abc"),
            ("https://h/f", A),
            ("https://h/f", "md5:http://h/sums"),
            ("https://h/", "sha256:https://h/sums"),
            ("https://h", "sha256:https://h/sums"),
        ] {
            assert!(
                matches!(build(url, checksum), Err(ModuleError::Args { .. })),
                "{url} {checksum}"
            );
        }
    }

    /// The checksums-file probe through a real shell: a file URL stands in for the mirror
    /// (curl reads it the same way); the sum read and the path's state come back apart.
    #[tokio::test]
    async fn the_checksums_probe_answers_through_a_real_shell() {
        if std::process::Command::new("curl")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("this test needs curl on the machine that runs it");
        }
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.tar.gz");
        std::fs::write(&dest, b"payload").unwrap();
        let sum = files::sha256_hex(b"payload");
        let sums = dir.path().join("checksums.txt");
        let module = |checksums: &str| {
            std::fs::write(&sums, checksums).unwrap();
            let m = GetUrl::new(&json!({
                "url": "https://mirror/d/f.tar.gz",
                "dest": dest.to_str().unwrap(),
                "checksum": "sha256:http://unused/checksums.txt",
                "mode": "0644",
            }))
            .unwrap();
            // The probe fetches a local file instead of the mirror.
            let Probe::Shell(script) = m.probe() else {
                panic!("not a shell probe")
            };
            let script = script.replace(
                "http://unused/checksums.txt",
                &shell_quote(&format!("file://{}", sums.display())),
            );
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            let seen = Seen::Output {
                code: out.status.code().map(|c| c as u32),
                stdout: String::from_utf8(out.stdout).unwrap(),
            };
            m.check(&seen)
        };
        std::fs::set_permissions(&dest, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        assert_eq!(module(&format!("{sum} *f.tar.gz\n")).unwrap(), vec![]);
        assert_eq!(
            module(&format!("{A} *f.tar.gz\n")).unwrap(),
            vec![Change::Download("https://mirror/d/f.tar.gz".into())]
        );
        let err = module(&format!("{sum} *g.tar.gz\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no sha256 for `f.tar.gz`"), "{err}");
        std::fs::remove_file(&sums).unwrap();
        let m = GetUrl::new(&json!({
            "url": "https://mirror/d/f.tar.gz",
            "dest": dest.to_str().unwrap(),
            "checksum": "sha256:http://127.0.0.1:9/checksums.txt",
        }))
        .unwrap();
        let Probe::Shell(script) = m.probe() else {
            panic!("not a shell probe")
        };
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let err = m
            .check(&Seen::Output {
                code: Some(0),
                stdout: String::from_utf8(out.stdout).unwrap(),
            })
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot fetch the checksums file `http://127.0.0.1:9/checksums.txt`"),
            "{err}"
        );
    }
}
