//! `lineinfile`: one line present (replacing what `regexp` matches) or absent in a file.
//! The new content is computed here from the probed content and written atomically.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::context::{Attrs, Context};
use super::files::{self, Kind};
use super::{Applied, Change, ModuleError, Probe, Seen};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum State {
    #[default]
    Present,
    Absent,
}

#[derive(Debug)]
enum Insert {
    Eof,
    Bof,
    After(Regex),
    Before(Regex),
}

#[derive(Debug)]
pub struct LineInFile {
    pub path: String,
    line: Option<String>,
    regexp: Option<Regex>,
    state: State,
    insert: Insert,
    create: bool,
    attrs: Attrs,
    /// The content `check` computed, for `apply` and `--diff`.
    wanted: files::Edited,
}

fn regex(s: &str, key: &str) -> Result<Regex, ModuleError> {
    Regex::new(s).map_err(|e| ModuleError::Args {
        message: format!("`{key}` is not a valid regular expression: {e}"),
    })
}

impl LineInFile {
    pub fn new(a: &Value) -> Result<LineInFile, ModuleError> {
        #[derive(Deserialize)]
        struct A {
            path: Option<String>,
            dest: Option<String>,
            line: Option<String>,
            regexp: Option<String>,
            #[serde(default)]
            state: State,
            insertafter: Option<String>,
            insertbefore: Option<String>,
            #[serde(default)]
            create: bool,
        }
        let mut stripped = a.clone();
        if let Value::Object(m) = &mut stripped {
            for k in ["mode", "owner", "group"] {
                m.remove(k);
            }
        }
        let r: A = super::args("lineinfile", &stripped)?;
        let path = r.path.or(r.dest).ok_or_else(|| ModuleError::Args {
            message: "`lineinfile` needs `path`".into(),
        })?;
        if r.state == State::Present && r.line.is_none() {
            return Err(ModuleError::Args {
                message: "`lineinfile` with `state: present` needs `line`".into(),
            });
        }
        if r.state == State::Absent && r.line.is_none() && r.regexp.is_none() {
            return Err(ModuleError::Args {
                message: "`lineinfile` with `state: absent` needs `line` or `regexp`".into(),
            });
        }
        let insert = match (r.insertafter.as_deref(), r.insertbefore.as_deref()) {
            (Some(_), Some(_)) => {
                return Err(ModuleError::Args {
                    message: "`insertafter` and `insertbefore` exclude each other".into(),
                })
            }
            (Some("EOF") | None, None) => Insert::Eof,
            (None, Some("BOF")) => Insert::Bof,
            (Some(a), None) => Insert::After(regex(a, "insertafter")?),
            (None, Some(b)) => Insert::Before(regex(b, "insertbefore")?),
        };
        Ok(LineInFile {
            path,
            line: r.line,
            regexp: r
                .regexp
                .as_deref()
                .map(|s| regex(s, "regexp"))
                .transpose()?,
            state: r.state,
            insert,
            create: r.create,
            attrs: files::attrs_from(a)?,
            wanted: files::Edited::default(),
        })
    }

    pub fn probe(&self) -> Probe {
        Probe::Path {
            path: self.path.clone(),
            content: true,
        }
    }

    pub fn wanted_content(&self) -> Option<Vec<u8>> {
        self.wanted.get()
    }

    /// The file's lines after the edit.
    fn edit(&self, old: &str) -> String {
        let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
        let matches = |l: &str| match (&self.regexp, &self.line) {
            (Some(re), _) => re.is_match(l),
            (None, Some(line)) => l == line,
            (None, None) => false,
        };
        match self.state {
            State::Absent => lines.retain(|l| !matches(l)),
            State::Present => {
                let line = self.line.clone().unwrap_or_default();
                if let Some(i) = lines.iter().rposition(|l| matches(l)) {
                    lines[i] = line;
                } else if !lines.contains(&line) {
                    let at = match &self.insert {
                        Insert::Eof => lines.len(),
                        Insert::Bof => 0,
                        Insert::After(re) => lines
                            .iter()
                            .rposition(|l| re.is_match(l))
                            .map(|i| i + 1)
                            .unwrap_or(lines.len()),
                        Insert::Before(re) => lines
                            .iter()
                            .position(|l| re.is_match(l))
                            .unwrap_or(lines.len()),
                    };
                    lines.insert(at, line);
                }
            }
        }
        let mut s = lines.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let st = files::state(seen)?;
        let (old, exists) = match &st.kind {
            Kind::File => (
                String::from_utf8_lossy(st.content.as_deref().unwrap_or_default()).into_owned(),
                true,
            ),
            Kind::Missing if self.create || self.state == State::Absent => (String::new(), false),
            Kind::Missing => {
                return Err(ModuleError::Args {
                    message: format!("`{}` does not exist (set `create: true`)", self.path),
                })
            }
            other => {
                return Err(ModuleError::Args {
                    message: format!("`{}` is {}, not a file", self.path, other.label()),
                })
            }
        };
        if !exists && self.state == State::Absent {
            return Ok(Vec::new());
        }
        let new = self.edit(&old);
        let mut c: Vec<Change> = self.wanted.record(exists, &old, new).into_iter().collect();
        if exists {
            c.extend(files::attr_changes(st, &self.attrs));
        }
        Ok(c)
    }

    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        _changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        let data = self.wanted.for_apply()?;
        ctx.write_file(&self.path, &data, &self.attrs, None).await?;
        Ok(Applied::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edit(args: Value, old: &str) -> String {
        LineInFile::new(&args).unwrap().edit(old)
    }

    #[test]
    fn edits() {
        let f = "a=1\n#b=2\nc=3\n";
        assert_eq!(
            edit(json!({"path": "/f", "regexp": "^#?b=", "line": "b=5"}), f),
            "a=1\nb=5\nc=3\n"
        );
        assert_eq!(edit(json!({"path": "/f", "line": "c=3"}), f), f);
        assert_eq!(
            edit(json!({"path": "/f", "line": "d=4"}), f),
            "a=1\n#b=2\nc=3\nd=4\n"
        );
        assert_eq!(
            edit(json!({"path": "/f", "line": "x", "insertafter": "^a="}), f),
            "a=1\nx\n#b=2\nc=3\n"
        );
        assert_eq!(
            edit(json!({"path": "/f", "line": "x", "insertbefore": "BOF"}), f),
            "x\na=1\n#b=2\nc=3\n"
        );
        assert_eq!(
            edit(json!({"path": "/f", "regexp": "^#", "state": "absent"}), f),
            "a=1\nc=3\n"
        );
        // Idempotent: a second edit of the result changes nothing.
        let once = edit(json!({"path": "/f", "regexp": "^#?b=", "line": "b=5"}), f);
        assert_eq!(
            edit(
                json!({"path": "/f", "regexp": "^#?b=", "line": "b=5"}),
                &once
            ),
            once
        );
    }
}
