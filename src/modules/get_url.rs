//! `get_url`: a file downloaded on the host, verified against a required sha256 before it is
//! renamed into place, so a wrong or truncated download never replaces the previous file.

use serde::Deserialize;
use serde_json::Value;

use crate::template::shell_quote;

use super::context::{attr_commands, Attrs, Context};
use super::files::{self, Kind};
use super::{Applied, Change, ModuleError, Probe, Seen};

#[derive(Debug)]
pub struct GetUrl {
    url: String,
    pub dest: String,
    sha256: String,
    attrs: Attrs,
    timeout: u64,
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
        let sha = r
            .checksum
            .strip_prefix("sha256:")
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| ModuleError::Args {
                message: format!(
                    "`get_url` needs `checksum: sha256:<64 hex digits>`, found `{}`",
                    r.checksum
                ),
            })?;
        Ok(GetUrl {
            url: r.url,
            dest: r.dest,
            sha256: sha,
            attrs: files::attrs_from(a)?,
            timeout: r.timeout.unwrap_or(60),
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
            Kind::File if st.sha256.as_deref() == Some(self.sha256.as_str()) => {
                files::attr_changes(st, &self.attrs)
            }
            Kind::File | Kind::Missing => vec![Change::Download(self.url.clone())],
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
        let p = shell_quote(&self.dest);
        let u = shell_quote(&self.url);
        let t = self.timeout;
        let s = if changes
            .iter()
            .any(|c| matches!(c, Change::Download(_) | Change::Replace { .. }))
        {
            format!(
                "set -e; t=$(mktemp \"$(dirname {p})/.minipaas.XXXXXX\"); trap 'rm -f \"$t\"' EXIT; \
                 if command -v curl >/dev/null; then curl -fsSL --max-time {t} -o \"$t\" {u}; \
                 elif command -v wget >/dev/null; then wget -q -T {t} -O \"$t\" {u}; \
                 else echo 'neither curl nor wget is installed' >&2; exit 127; fi; \
                 got=$(sha256sum < \"$t\" | cut -c1-64); \
                 if [ \"$got\" != {sha} ]; then echo \"checksum mismatch: expected sha256 {sha}, downloaded $got\" >&2; exit 1; fi; \
                 if [ -e {p} ]; then chmod --reference={p} \"$t\"; chown --reference={p} \"$t\"; else chmod 0644 \"$t\"; fi; \
                 {attrs}if [ -d {p} ] && [ ! -L {p} ]; then rm -rf {p}; fi; mv -f \"$t\" {p}; trap - EXIT",
                sha = self.sha256,
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
