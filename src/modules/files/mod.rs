//! What a path on a host looks like, as one probe reports it, and the attribute changes that
//! make it match. Shared by every module that manages a path.

use std::sync::Mutex;

use serde_json::Value;

use crate::template::shell_quote;

use super::context::Attrs;
use super::{Change, ModuleError, Seen};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Missing,
    File,
    Dir,
    Link(String),
    Other,
}

impl Kind {
    pub fn label(&self) -> &'static str {
        match self {
            Kind::Missing => "nothing",
            Kind::File => "a file",
            Kind::Dir => "a directory",
            Kind::Link(_) => "a link",
            Kind::Other => "a special file",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PathState {
    pub kind: Kind,
    pub mode: String,
    pub owner: String,
    pub group: String,
    pub uid: String,
    pub gid: String,
    /// In bytes.
    pub size: u64,
    /// sha256 of a regular file's content.
    pub sha256: Option<String>,
    /// The content itself, when the probe asked for it.
    pub content: Option<Vec<u8>>,
}

/// Why a path's state could not be read from what the host printed. A host's output is
/// untrusted: whatever it prints is one of these, never a panic or an overflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathProbeError {
    #[error("cannot read a path's state from `stat`: `{record}`")]
    Stat { record: String },
    #[error("`stat` printed `{size}` as the size of `{path}`, not a byte count")]
    Size { path: String, size: String },
    #[error("cannot read where link `{path}` points: `{answer}`")]
    Link { path: String, answer: String },
    #[error("`stat` answered for `{path}`, which was not asked")]
    Unasked { path: String },
    #[error("cannot read the list of files read: `{list}`")]
    List { list: String },
    #[error("cannot decode the contents of the files read")]
    Base64,
    #[error("`{path}` changed while it was read; run again")]
    Changed { path: String },
    #[error("the files read changed while they were read; run again")]
    AllChanged,
}

/// The path probes of one batch, answered with one `stat` for every path, one `sha256sum` for
/// every regular file and one `base64` for the contents asked for, rather than a few processes
/// per path: on a no-op run these processes are most of the work a host does.
///
/// Each path is asked about once however many tasks ask; links are never followed.
#[derive(Debug, Default)]
pub struct PathProbes {
    /// Distinct paths in the order first asked, and whether any asker wants the content.
    paths: Vec<(String, bool)>,
}

/// How a path is named on the command line: `stat`, `sha256sum` and `base64` read a lone `-` as
/// standard input. The tools print the name as given, which is how answers are matched.
fn arg(path: &str) -> String {
    if path == "-" {
        "./-".into()
    } else {
        path.into()
    }
}

impl PathProbes {
    /// Adds a probe of `path` (with its bytes when `content`); returns the path's index.
    pub fn add(&mut self, path: &str, content: bool) -> usize {
        if let Some(i) = self.paths.iter().position(|(p, _)| p == path) {
            self.paths[i].1 |= content;
            return i;
        }
        self.paths.push((path.to_string(), content));
        self.paths.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Three read-only scripts whose outputs [`PathProbes::parse`] takes, in this order: the
    /// `stat` of every path (missing ones print nothing), the `sha256sum` of the regular files,
    /// and the indices of the readable files whose content is asked for, then their bytes
    /// concatenated, in base64 on one line. Only builtins besides those three commands.
    pub fn scripts(&self) -> [String; 3] {
        let quoted: Vec<String> = self
            .paths
            .iter()
            .map(|(p, _)| shell_quote(&arg(p)))
            .collect();
        let stat = format!(
            "QUOTING_STYLE=literal stat --printf '%f %a %U %G %u %g %s %n\\0%N\\0' -- {}",
            quoted.join(" ")
        );
        let mut sums = String::from("set --\n");
        for p in &quoted {
            sums.push_str(&format!(
                "if [ -f {p} ] && [ ! -L {p} ]; then set -- \"$@\" {p}; fi\n"
            ));
        }
        sums.push_str("if [ $# -gt 0 ]; then sha256sum -- \"$@\"; fi");
        let mut data = String::from("set --; l=\n");
        for (i, p) in quoted.iter().enumerate() {
            if self.paths[i].1 {
                data.push_str(&format!(
                    "if [ -f {p} ] && [ ! -L {p} ] && [ -r {p} ]; then l=\"$l {i}\"; set -- \"$@\" {p}; fi\n"
                ));
            }
        }
        data.push_str(
            "echo \"$l\"\ncase $# in 0) ;; 1) base64 -w0 -- \"$1\" ;; *) cat -- \"$@\" | base64 -w0 ;; esac\necho",
        );
        [stat, sums, data]
    }

    /// The state of every path, in [`PathProbes::add`] order, from what the three scripts
    /// printed. A path whose answer cannot be read, or whose bytes do not match the hash read
    /// beside them (it changed meanwhile), gets an error message instead.
    pub fn parse(
        &self,
        stat: &str,
        sums: &str,
        data: &str,
    ) -> Vec<Result<PathState, PathProbeError>> {
        let n = self.paths.len();
        let states = match self.parse_stat(stat) {
            Ok(s) => s,
            Err(e) => return vec![Err(e); n],
        };
        let mut out: Vec<Result<PathState, PathProbeError>> = states.into_iter().map(Ok).collect();
        let mut sums = parse_sums(sums).into_iter().peekable();
        for (i, (path, _)) in self.paths.iter().enumerate() {
            if let Ok(st) = &mut out[i] {
                if st.kind == Kind::File && sums.peek().is_some_and(|(name, _)| *name == arg(path))
                {
                    st.sha256 = sums.next().map(|(_, sum)| sum);
                }
            }
        }
        if let Err((indices, e)) = self.parse_data(data, &mut out) {
            for i in indices {
                out[i] = Err(e.clone());
            }
        }
        out
    }

    /// One state per path; missing paths are those `stat` printed nothing for.
    fn parse_stat(&self, text: &str) -> Result<Vec<PathState>, PathProbeError> {
        let bad = |r: &str| PathProbeError::Stat {
            record: r.trim().to_string(),
        };
        let mut fields = text.split('\0');
        let mut records = Vec::new();
        while let Some(head) = fields.next() {
            if head.trim().is_empty() {
                continue;
            }
            let quoted = fields.next().ok_or_else(|| bad(head))?;
            let f: Vec<&str> = head.trim_start().splitn(8, ' ').collect();
            if f.len() != 8 {
                return Err(bad(head));
            }
            let raw = u32::from_str_radix(f[0], 16).map_err(|_| bad(head))?;
            records.push((raw, f, quoted));
        }
        let mut records = records.into_iter().peekable();
        let mut out = Vec::new();
        for (path, _) in &self.paths {
            let name = arg(path);
            let Some((raw, f, quoted)) = records.next_if(|(_, f, _)| f[7] == name) else {
                out.push(PathState::missing());
                continue;
            };
            // The file type bits of st_mode.
            let kind = match raw & 0o170000 {
                0o120000 => Kind::Link(
                    quoted
                        .strip_prefix(&format!("{name} -> "))
                        .ok_or_else(|| PathProbeError::Link {
                            path: path.clone(),
                            answer: quoted.to_string(),
                        })?
                        .to_string(),
                ),
                0o040000 => Kind::Dir,
                0o100000 => Kind::File,
                _ => Kind::Other,
            };
            out.push(PathState {
                kind,
                mode: normalize_mode_digits(f[1]),
                owner: f[2].into(),
                group: f[3].into(),
                uid: f[4].into(),
                gid: f[5].into(),
                size: f[6].parse().map_err(|_| PathProbeError::Size {
                    path: path.clone(),
                    size: f[6].to_string(),
                })?,
                sha256: None,
                content: None,
            });
        }
        if let Some((_, f, _)) = records.next() {
            return Err(PathProbeError::Unasked {
                path: f[7].to_string(),
            });
        }
        Ok(out)
    }

    /// Cuts the concatenated contents into the files they came from. On failure: the paths
    /// concerned and why.
    fn parse_data(
        &self,
        text: &str,
        out: &mut [Result<PathState, PathProbeError>],
    ) -> Result<(), (Vec<usize>, PathProbeError)> {
        let asked: Vec<usize> = (0..self.paths.len()).filter(|i| self.paths[*i].1).collect();
        let fail = |e: PathProbeError| (asked.clone(), e);
        let (list, b64) = text.split_once('\n').unwrap_or((text, ""));
        let mut read = Vec::new();
        for i in list.split_whitespace() {
            match i.parse::<usize>() {
                Ok(i) if i < self.paths.len() => read.push(i),
                _ => {
                    return Err(fail(PathProbeError::List {
                        list: list.to_string(),
                    }))
                }
            }
        }
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| fail(PathProbeError::Base64))?;
        let changed = |path: &str| PathProbeError::Changed {
            path: path.to_string(),
        };
        let mut at: usize = 0;
        for &i in &read {
            let path = &self.paths[i].0;
            let Ok(st) = &mut out[i] else { continue };
            // The size came from the host: checked, so a hostile one is an error, not an overflow.
            let end = usize::try_from(st.size)
                .ok()
                .and_then(|size| at.checked_add(size))
                .filter(|&end| end <= bytes.len());
            let Some(end) = end.filter(|_| st.kind == Kind::File) else {
                return Err(fail(changed(path)));
            };
            let part = &bytes[at..end];
            at = end;
            if st.sha256.as_deref() != Some(sha256_hex(part).as_str()) {
                out[i] = Err(changed(path));
                continue;
            }
            st.content = Some(part.to_vec());
        }
        if at != bytes.len() {
            return Err(fail(PathProbeError::AllChanged));
        }
        Ok(())
    }
}

/// `(name, sha256)` per line of `sha256sum` output; names holding `\` or a newline are escaped
/// and the line then starts with `\`.
fn parse_sums(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let (escaped, line) = match line.strip_prefix('\\') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Some((sum, name)) = line.split_once("  ") else {
            continue;
        };
        let name = if escaped {
            unescape(name)
        } else {
            name.to_string()
        };
        out.push((name, sum.to_string()));
    }
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

impl PathState {
    fn missing() -> PathState {
        PathState {
            kind: Kind::Missing,
            mode: String::new(),
            owner: String::new(),
            group: String::new(),
            uid: String::new(),
            gid: String::new(),
            size: 0,
            sha256: None,
            content: None,
        }
    }
}

/// The path state a module asked for, or why the host's answer could not be read.
pub fn state(seen: &Seen) -> Result<&PathState, ModuleError> {
    match seen {
        Seen::Path(Ok(st)) => Ok(st),
        Seen::Path(Err(e)) => Err(ModuleError::PathProbe { source: e.clone() }),
        other => Err(ModuleError::Probe {
            message: format!("a path's state was asked for, the answer was {other:?}"),
        }),
    }
}

fn normalize_mode_digits(m: &str) -> String {
    format!("{:0>4}", m)
}

/// Parses a mode as written in a plan: a string of octal digits (`"0644"`, `"644"`) or a YAML
/// integer whose digits are read as octal (`0644` and `644` both mean rw-r--r--).
pub fn parse_mode(v: &Value) -> Result<Option<String>, ModuleError> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(ModuleError::Args {
                message: format!("`mode` must be octal digits like \"0644\", found `{other}`"),
            })
        }
    };
    let digits = s.strip_prefix("0o").unwrap_or(&s);
    if digits.is_empty() || digits.len() > 4 || !digits.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(ModuleError::Args {
            message: format!("`mode` must be octal digits like \"0644\", found `{s}`"),
        });
    }
    Ok(Some(format!("{:0>4}", digits)))
}

/// Reads `mode`, `owner` and `group` from module arguments.
pub fn attrs_from(a: &Value) -> Result<Attrs, ModuleError> {
    let s = |k: &str| -> Option<String> {
        a.get(k).and_then(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    Ok(Attrs {
        mode: parse_mode(a.get("mode").unwrap_or(&Value::Null))?,
        owner: s("owner"),
        group: s("group"),
    })
}

/// Attribute changes for an existing path.
pub fn attr_changes(st: &PathState, want: &Attrs) -> Vec<Change> {
    let mut out = Vec::new();
    if let Some(m) = &want.mode {
        if *m != st.mode {
            out.push(Change::Mode {
                from: st.mode.clone(),
                to: m.clone(),
            });
        }
    }
    if let Some(o) = &want.owner {
        if *o != st.owner && *o != st.uid {
            out.push(Change::Owner {
                from: st.owner.clone(),
                to: o.clone(),
            });
        }
    }
    if let Some(g) = &want.group {
        if *g != st.group && *g != st.gid {
            out.push(Change::Group {
                from: st.group.clone(),
                to: g.clone(),
            });
        }
    }
    out
}

/// The content an editing module (lineinfile, cron) computed in `check` from the content the
/// probe read, kept for `apply` and `--diff`.
#[derive(Debug, Default)]
pub struct Edited(Mutex<Option<Vec<u8>>>);

impl Edited {
    /// Keeps `new` and returns the content change it means, if any.
    pub fn record(&self, exists: bool, old: &str, new: String) -> Option<Change> {
        let change = if !exists {
            Some(Change::Create)
        } else if new != old {
            Some(Change::Content)
        } else {
            None
        };
        if let Ok(mut w) = self.0.lock() {
            *w = Some(new.into_bytes());
        }
        change
    }

    pub fn get(&self) -> Option<Vec<u8>> {
        self.0.lock().ok().and_then(|w| w.clone())
    }

    /// The content to write; an error when `check` did not run first.
    pub fn for_apply(&self) -> Result<Vec<u8>, ModuleError> {
        self.get().ok_or_else(|| ModuleError::Probe {
            message: "apply before check".into(),
        })
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests;
