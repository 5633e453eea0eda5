//! `cron`: an entry in a file under /etc/cron.d, marked by its name so it can be replaced or
//! removed later. Other entries in the same file are left alone.

use serde::Deserialize;
use serde_json::Value;

use super::context::{Attrs, Context};
use super::files::{self, Kind};
use super::{Applied, Change, ModuleError, Probe, Seen};

#[derive(Debug)]
pub struct Cron {
    pub path: String,
    marker: String,
    /// The entry line; `None` removes the entry.
    entry: Option<String>,
    wanted: files::Edited,
}

impl Cron {
    pub fn new(a: &Value) -> Result<Cron, ModuleError> {
        #[derive(Deserialize)]
        struct A {
            name: String,
            job: Option<String>,
            minute: Option<Value>,
            hour: Option<Value>,
            day: Option<Value>,
            month: Option<Value>,
            weekday: Option<Value>,
            special_time: Option<String>,
            user: Option<String>,
            cron_file: String,
            state: Option<String>,
        }
        let r: A = super::args("cron", a)?;
        let err = |m: String| ModuleError::Args { message: m };
        // cron ignores files in /etc/cron.d whose names hold anything else.
        if r.cron_file.is_empty()
            || !r
                .cron_file
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(err(format!(
                "`cron_file` `{}` may only hold letters, digits, `_` and `-` (cron skips other names)",
                r.cron_file
            )));
        }
        let field = |v: &Option<Value>| match v {
            None => "*".to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let entry = match r.state.as_deref() {
            Some("absent") => None,
            None | Some("present") => {
                let job = r.job.ok_or_else(|| err("`cron` needs `job`".into()))?;
                if job.contains('\n') {
                    return Err(err("`job` must be one line".into()));
                }
                let when = match r.special_time {
                    Some(t) => format!("@{t}"),
                    None => [&r.minute, &r.hour, &r.day, &r.month, &r.weekday]
                        .iter()
                        .map(|v| field(v))
                        .collect::<Vec<_>>()
                        .join(" "),
                };
                Some(format!(
                    "{when} {} {job}",
                    r.user.as_deref().unwrap_or("root")
                ))
            }
            Some(other) => {
                return Err(err(format!(
                    "`state` must be present or absent, found `{other}`"
                )))
            }
        };
        Ok(Cron {
            path: format!("/etc/cron.d/{}", r.cron_file),
            marker: format!("#minipaas: {}", r.name),
            entry,
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

    fn edit(&self, old: &str) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut lines = old.lines().peekable();
        let mut placed = false;
        while let Some(l) = lines.next() {
            if l == self.marker {
                lines.next(); // the entry belonging to this marker
                if let (Some(e), false) = (&self.entry, placed) {
                    out.push(self.marker.clone());
                    out.push(e.clone());
                    placed = true;
                }
                continue;
            }
            out.push(l.to_string());
        }
        if let (Some(e), false) = (&self.entry, placed) {
            out.push(self.marker.clone());
            out.push(e.clone());
        }
        let mut s = out.join("\n");
        if !s.is_empty() {
            s.push('\n');
        }
        s
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let st = files::state(seen)?;
        let old = match &st.kind {
            Kind::File => {
                String::from_utf8_lossy(st.content.as_deref().unwrap_or_default()).into_owned()
            }
            Kind::Missing if self.entry.is_none() => return Ok(Vec::new()),
            Kind::Missing => String::new(),
            other => {
                return Err(ModuleError::Args {
                    message: format!("`{}` is {}, not a file", self.path, other.label()),
                })
            }
        };
        let new = self.edit(&old);
        Ok(self
            .wanted
            .record(st.kind != Kind::Missing, &old, new)
            .into_iter()
            .collect())
    }

    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        _changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        let data = self.wanted.for_apply()?;
        let attrs = Attrs {
            mode: Some("0644".into()),
            owner: Some("root".into()),
            group: Some("root".into()),
        };
        ctx.write_file(&self.path, &data, &attrs, None).await?;
        Ok(Applied::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn adds_replaces_and_removes_its_own_entry() {
        let c = Cron::new(
            &json!({"name": "backup", "job": "/bin/b", "hour": 3, "minute": 0, "cron_file": "mp"}),
        )
        .unwrap();
        let once = c.edit("#minipaas: other\n* * * * * root /bin/o\n");
        assert_eq!(
            once,
            "#minipaas: other\n* * * * * root /bin/o\n#minipaas: backup\n0 3 * * * root /bin/b\n"
        );
        assert_eq!(c.edit(&once), once);
        let gone =
            Cron::new(&json!({"name": "backup", "cron_file": "mp", "state": "absent"})).unwrap();
        assert_eq!(
            gone.edit(&once),
            "#minipaas: other\n* * * * * root /bin/o\n"
        );
        assert!(Cron::new(&json!({"name": "x", "job": "j", "cron_file": "a.b"})).is_err());
    }
}
