//! `docker_image`: an image present in the host's Docker engine with exactly the wanted id,
//! loaded from a local `docker save` archive when it is missing or different. This is how
//! images reach nodes when no registry is configured.

use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use crate::template::shell_quote;

use super::context::Context;
use super::{Applied, Change, ModuleError, Probe, Seen};

#[derive(Debug)]
pub struct DockerImage {
    pub name: String,
    /// `sha256:...` as `docker image inspect` prints it.
    id: String,
    /// A `docker save` archive on the machine running minipaas.
    archive: PathBuf,
}

impl DockerImage {
    pub fn new(a: &Value) -> Result<DockerImage, ModuleError> {
        #[derive(Deserialize)]
        struct A {
            name: String,
            id: String,
            archive: PathBuf,
        }
        let r: A = super::args("docker_image", a)?;
        if !r.id.starts_with("sha256:") {
            return Err(ModuleError::Args {
                message: format!("`docker_image` needs `id: sha256:...`, found `{}`", r.id),
            });
        }
        Ok(DockerImage {
            name: r.name,
            id: r.id,
            archive: r.archive,
        })
    }

    pub fn probe(&self) -> Probe {
        Probe::Shell(format!(
            "docker image inspect --format '{{{{.Id}}}}' {} 2>/dev/null || true",
            shell_quote(&self.name)
        ))
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        Ok(if seen.output()?.trim() == self.id {
            Vec::new()
        } else {
            vec![Change::LoadImage(self.name.clone())]
        })
    }

    pub async fn apply(&self, ctx: &Context<'_>) -> Result<Applied, ModuleError> {
        let archive =
            tokio::fs::read(&self.archive)
                .await
                .map_err(|source| ModuleError::LocalFile {
                    path: self.archive.clone().into(),
                    source,
                })?;
        ctx.run_ok(
            &format!("loading image `{}`", self.name),
            "docker load --quiet",
            Some(&archive),
        )
        .await?;
        Ok(Applied::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loads_only_when_the_id_differs() {
        let m = DockerImage::new(
            &json!({"name": "app:1", "id": "sha256:abc", "archive": "/tmp/app.tar"}),
        )
        .unwrap();
        let seen = |s: &str| Seen::Output {
            code: Some(0),
            stdout: s.into(),
        };
        assert!(m.check(&seen("sha256:abc\n")).unwrap().is_empty());
        assert_eq!(
            m.check(&seen("sha256:old\n")).unwrap(),
            vec![Change::LoadImage("app:1".into())]
        );
        assert_eq!(m.check(&seen("")).unwrap().len(), 1);
        assert!(matches!(m.probe(), Probe::Shell(s) if s.contains("'{{.Id}}'")));
        assert!(DockerImage::new(&json!({"name": "a", "id": "abc", "archive": "/x"})).is_err());
    }
}
