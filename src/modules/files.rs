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
    /// sha256 of a regular file's content.
    pub sha256: Option<String>,
    /// The content itself, when the probe asked for it.
    pub content: Option<Vec<u8>>,
}

/// A probe that prints the state of `path` (no symlink is followed) and, with `content`, the
/// file's bytes in base64.
pub fn probe(path: &str, content: bool) -> String {
    let p = shell_quote(path);
    let mut s = format!(
        "if [ -L {p} ]; then echo \"L $(readlink {p})\"; elif [ -d {p} ]; then echo D; \
         elif [ -f {p} ]; then echo F; elif [ -e {p} ]; then echo O; else echo N; exit 0; fi; \
         stat -c '%a %U %G %u %g' {p}; if [ -f {p} ] && [ ! -L {p} ]; then sha256sum < {p} | cut -c1-64"
    );
    if content {
        s.push_str(&format!("; base64 -w0 < {p}; echo"));
    }
    s.push_str("; fi");
    s
}

pub fn parse(seen: &Seen) -> Result<PathState, ModuleError> {
    let bad = || ModuleError::Probe {
        message: format!("cannot read path state from `{}`", seen.stdout.trim()),
    };
    let mut lines = seen.stdout.lines();
    let first = lines.next().ok_or_else(bad)?;
    let kind = match first {
        "N" => Kind::Missing,
        "D" => Kind::Dir,
        "F" => Kind::File,
        "O" => Kind::Other,
        l => Kind::Link(l.strip_prefix("L ").ok_or_else(bad)?.to_string()),
    };
    let mut st = PathState {
        kind,
        mode: String::new(),
        owner: String::new(),
        group: String::new(),
        uid: String::new(),
        gid: String::new(),
        sha256: None,
        content: None,
    };
    if st.kind == Kind::Missing {
        return Ok(st);
    }
    let attrs: Vec<&str> = lines.next().ok_or_else(bad)?.split_whitespace().collect();
    if attrs.len() != 5 {
        return Err(bad());
    }
    st.mode = normalize_mode_digits(attrs[0]);
    st.owner = attrs[1].into();
    st.group = attrs[2].into();
    st.uid = attrs[3].into();
    st.gid = attrs[4].into();
    if st.kind == Kind::File {
        st.sha256 = lines.next().map(|l| l.trim().to_string());
        if let Some(b64) = lines.next() {
            use base64::Engine;
            st.content = Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|_| bad())?,
            );
        }
    }
    Ok(st)
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
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes() {
        assert_eq!(parse_mode(&json!("0644")).unwrap().unwrap(), "0644");
        assert_eq!(parse_mode(&json!(644)).unwrap().unwrap(), "0644");
        assert_eq!(parse_mode(&json!("755")).unwrap().unwrap(), "0755");
        assert!(parse_mode(&json!("u+x")).is_err());
        assert!(parse_mode(&json!(999)).is_err());
    }

    #[test]
    fn parses_probe_output() {
        let seen = Seen {
            code: Some(0),
            stdout: "F\n644 root root 0 0\nabc\naGk=\n".into(),
        };
        let st = parse(&seen).unwrap();
        assert_eq!(st.kind, Kind::File);
        assert_eq!(st.mode, "0644");
        assert_eq!(st.content.as_deref(), Some(&b"hi"[..]));
        let want = Attrs {
            mode: Some("0600".into()),
            owner: Some("0".into()),
            group: Some("adm".into()),
        };
        assert_eq!(attr_changes(&st, &want).len(), 2);
        let st = parse(&Seen {
            code: Some(0),
            stdout: "L /a b\n777 root root 0 0\n".into(),
        })
        .unwrap();
        assert_eq!(st.kind, Kind::Link("/a b".into()));
    }
}
