//! `template` and `copy`: a file whose whole content is known before touching the host.
//! Compared by sha256 (local vs the host's `sha256sum`), written atomically.

use serde_json::Value;

use super::context::{Attrs, Context};
use super::files::{self, Kind};
use super::{Applied, BuildCtx, Change, ModuleError, Probe, Seen};

#[derive(Debug)]
pub struct Content {
    pub dest: String,
    pub content: Vec<u8>,
    sha256: String,
    attrs: Attrs,
    validate: Option<String>,
}

fn str_arg(a: &Value, k: &str) -> Option<String> {
    a.get(k).and_then(Value::as_str).map(str::to_string)
}

fn need(a: &Value, k: &str, kind: &str) -> Result<String, ModuleError> {
    str_arg(a, k).ok_or_else(|| ModuleError::Args {
        message: format!("`{kind}` needs `{k}` as a string"),
    })
}

impl Content {
    pub fn template(a: &Value, ctx: &BuildCtx) -> Result<Content, ModuleError> {
        let src = need(a, "src", "template")?;
        let text = ctx.templates.render(&src, ctx.vars)?;
        Self::new(a, text.into_bytes(), "template")
    }

    pub fn copy(a: &Value, ctx: &BuildCtx) -> Result<Content, ModuleError> {
        let data = match (a.get("content"), str_arg(a, "src")) {
            (Some(Value::String(s)), None) => s.clone().into_bytes(),
            (Some(other), None) => serde_json::to_string_pretty(other)
                .unwrap_or_default()
                .into_bytes(),
            (None, Some(src)) => {
                let path = ctx
                    .file_dirs
                    .iter()
                    .map(|d| d.join(&src))
                    .find(|p| p.is_file())
                    .unwrap_or_else(|| crate::source::SourcePath::disk(&src));
                path.read()
                    .map_err(|source| ModuleError::LocalFile { path, source })?
            }
            _ => {
                return Err(ModuleError::Args {
                    message: "`copy` takes exactly one of `content` and `src`".into(),
                })
            }
        };
        Self::new(a, data, "copy")
    }

    fn new(a: &Value, content: Vec<u8>, kind: &str) -> Result<Content, ModuleError> {
        Ok(Content {
            dest: need(a, "dest", kind)?,
            sha256: files::sha256_hex(&content),
            content,
            attrs: files::attrs_from(a)?,
            validate: str_arg(a, "validate"),
        })
    }

    pub fn probe(&self) -> Probe {
        Probe::Path {
            path: self.dest.clone(),
            content: false,
        }
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let st = files::state(seen)?;
        Ok(match &st.kind {
            Kind::Missing => vec![Change::Create],
            Kind::File => {
                let mut c = Vec::new();
                if st.sha256.as_deref() != Some(self.sha256.as_str()) {
                    c.push(Change::Content);
                }
                c.extend(files::attr_changes(st, &self.attrs));
                c
            }
            other => vec![Change::Replace {
                from: other.label().into(),
            }],
        })
    }

    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        let content_changes = changes
            .iter()
            .any(|c| matches!(c, Change::Create | Change::Content | Change::Replace { .. }));
        if content_changes {
            if changes.iter().any(|c| matches!(c, Change::Replace { .. })) {
                ctx.run_ok(
                    &format!("removing what stands at `{}`", self.dest),
                    &format!("rm -rf {}", crate::template::shell_quote(&self.dest)),
                    None,
                )
                .await?;
            }
            ctx.write_file(
                &self.dest,
                &self.content,
                &self.attrs,
                self.validate.as_deref(),
            )
            .await?;
        } else {
            let script = super::context::attr_commands(
                &crate::template::shell_quote(&self.dest),
                &self.attrs,
            );
            ctx.run_ok(
                &format!("setting attributes of `{}`", self.dest),
                &script,
                None,
            )
            .await?;
        }
        Ok(Applied::default())
    }
}
