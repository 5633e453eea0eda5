//! `file`: a path's kind (directory, link, absent, empty file) and attributes.

use serde::Deserialize;
use serde_json::Value;

use crate::template::shell_quote;

use super::context::{attr_commands, Attrs, Context};
use super::files::{self, Kind};
use super::{Applied, Change, ModuleError, Probe, Seen};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Directory,
    Absent,
    Link,
    /// An existing file whose attributes are managed; it must exist.
    File,
    /// Create an empty file when missing (never updates times: that would never converge).
    Touch,
}

#[derive(Debug)]
pub struct File {
    pub path: String,
    state: State,
    src: Option<String>,
    attrs: Attrs,
}

impl File {
    pub fn new(a: &Value) -> Result<File, ModuleError> {
        #[derive(Deserialize)]
        struct A {
            path: Option<String>,
            dest: Option<String>,
            state: Option<State>,
            src: Option<String>,
        }
        let raw: A = super::args("file", &strip_attrs(a))?;
        let path = raw.path.or(raw.dest).ok_or_else(|| ModuleError::Args {
            message: "`file` needs `path`".into(),
        })?;
        let state = raw.state.unwrap_or(State::File);
        if state == State::Link && raw.src.is_none() {
            return Err(ModuleError::Args {
                message: "`file` with `state: link` needs `src`".into(),
            });
        }
        Ok(File {
            path,
            state,
            src: raw.src,
            attrs: files::attrs_from(a)?,
        })
    }

    pub fn probe(&self) -> Probe {
        Probe::Path {
            path: self.path.clone(),
            content: false,
        }
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let st = files::state(seen)?;
        let mut c = Vec::new();
        match (self.state, &st.kind) {
            (State::Absent, Kind::Missing) => {}
            (State::Absent, _) => c.push(Change::Remove),
            (State::Directory, Kind::Dir) => c.extend(files::attr_changes(st, &self.attrs)),
            (State::Directory, Kind::Missing) => c.push(Change::Create),
            (State::Directory, k) => c.push(Change::Replace {
                from: k.label().into(),
            }),
            (State::Link, Kind::Link(t)) if Some(t) == self.src.as_ref() => {}
            (State::Link, Kind::Link(t)) => c.push(Change::Link {
                from: Some(t.clone()),
                to: self.src.clone().unwrap_or_default(),
            }),
            (State::Link, Kind::Missing) => c.push(Change::Link {
                from: None,
                to: self.src.clone().unwrap_or_default(),
            }),
            (State::Link, k) => c.push(Change::Replace {
                from: k.label().into(),
            }),
            (State::File, Kind::Missing) => {
                return Err(ModuleError::Args {
                    message: format!(
                        "`{}` does not exist (use `state: touch` to create it)",
                        self.path
                    ),
                })
            }
            (State::File | State::Touch, Kind::File) => {
                c.extend(files::attr_changes(st, &self.attrs))
            }
            (State::Touch, Kind::Missing) => c.push(Change::Create),
            (State::File | State::Touch, k) => {
                return Err(ModuleError::Args {
                    message: format!("`{}` is {}, not a file", self.path, k.label()),
                })
            }
        }
        Ok(c)
    }

    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        let p = shell_quote(&self.path);
        let mut s = String::from("set -e; ");
        let replace = changes.iter().any(|c| matches!(c, Change::Replace { .. }));
        if replace || changes.contains(&Change::Remove) {
            s.push_str(&format!("rm -rf {p}; "));
        }
        match self.state {
            State::Absent => {}
            State::Directory => {
                s.push_str(&format!("mkdir -p {p}; "));
                s.push_str(&attr_commands(&p, &self.attrs));
            }
            State::Link => {
                let src = shell_quote(self.src.as_deref().unwrap_or_default());
                s.push_str(&format!("ln -sfn {src} {p}; "));
                if self.attrs.owner.is_some() || self.attrs.group.is_some() {
                    let owner = format!(
                        "{}:{}",
                        self.attrs.owner.clone().unwrap_or_default(),
                        self.attrs.group.clone().unwrap_or_default()
                    );
                    s.push_str(&format!("chown -h {} {p}; ", shell_quote(&owner)));
                }
            }
            State::File | State::Touch => {
                if changes.contains(&Change::Create) {
                    s.push_str(&format!("touch {p}; "));
                }
                s.push_str(&attr_commands(&p, &self.attrs));
            }
        }
        ctx.run_ok(&format!("`file` on `{}`", self.path), &s, None)
            .await?;
        Ok(Applied::default())
    }
}

fn strip_attrs(a: &Value) -> Value {
    let mut a = a.clone();
    if let Value::Object(m) = &mut a {
        for k in ["mode", "owner", "group"] {
            m.remove(k);
        }
    }
    a
}
