//! Images: built and saved on this machine's Docker engine, then loaded on every swarm node.

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedSender;

use super::cluster::{Cluster, OpsError, SWARM_NODES};
use super::plans::IMAGES;
use crate::engine::{Event, Recap};

/// An image saved on this machine, ready to be loaded on nodes.
#[derive(Debug, Clone)]
pub struct ImageArchive {
    pub name: String,
    pub id: String,
    pub archive: PathBuf,
}

/// What `docker build` needs for one service.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub service: String,
    pub image: String,
    pub context: PathBuf,
    pub dockerfile: Option<PathBuf>,
    pub args: Vec<(String, String)>,
}

async fn docker(args: &[&str]) -> Result<String, OpsError> {
    let out = Command::new("docker")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|source| OpsError::Spawn {
            program: "docker".into(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        return Err(OpsError::Local {
            command: format!("`docker {}`", args.first().copied().unwrap_or_default()),
            stderr: lines[lines.len().saturating_sub(20)..].join("\n"),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds one service's image on this machine's Docker engine and saves it under `cache`
/// (named by image id, so an unchanged image is not saved again). A failed build is an error
/// carrying the build's last lines.
pub async fn build_image(spec: &BuildSpec, cache: &Path) -> Result<ImageArchive, OpsError> {
    let mut args: Vec<String> = vec![
        "build".into(),
        "--quiet".into(),
        "-t".into(),
        spec.image.clone(),
    ];
    if let Some(f) = &spec.dockerfile {
        args.push("-f".into());
        args.push(f.display().to_string());
    }
    for (k, v) in &spec.args {
        args.push("--build-arg".into());
        args.push(format!("{k}={v}"));
    }
    args.push(spec.context.display().to_string());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&argv).await.map_err(|e| match e {
        OpsError::Local { stderr, .. } => OpsError::Local {
            command: format!("the image build of service `{}`", spec.service),
            stderr,
        },
        other => other,
    })?;
    save_image(&spec.image, cache)
        .await?
        .ok_or_else(|| OpsError::Local {
            command: format!("`docker image inspect {}`", spec.image),
            stderr: "the image just built is gone".into(),
        })
}

/// Saves a local image under `cache` (named by image id, so an unchanged image is not saved
/// again); `None` when this machine's engine does not have it.
pub async fn save_image(image: &str, cache: &Path) -> Result<Option<ImageArchive>, OpsError> {
    let id = match docker(&["image", "inspect", "--format", "{{.Id}}", image]).await {
        Ok(id) => id,
        Err(OpsError::Local { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    std::fs::create_dir_all(cache).map_err(|source| OpsError::Io {
        what: "cannot create",
        path: cache.to_path_buf(),
        source,
    })?;
    // One archive per name and id: an archive loads the tags it was saved with.
    let hexid = id.trim_start_matches("sha256:");
    let safe: String = image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let archive = cache.join(format!("{safe}-{}.tar", &hexid[..hexid.len().min(16)]));
    if !archive.exists() {
        let partial = archive.with_extension("tar.partial");
        docker(&["save", "-o", &partial.display().to_string(), image]).await?;
        std::fs::rename(&partial, &archive).map_err(|source| OpsError::Io {
            what: "cannot rename",
            path: partial.clone(),
            source,
        })?;
    }
    Ok(Some(ImageArchive {
        name: image.to_string(),
        id,
        archive,
    }))
}

/// Every swarm node gets each image with the same id; nodes that have it are left alone.
pub async fn ship_images(
    c: &Cluster,
    images: &[ImageArchive],
    events: UnboundedSender<Event>,
) -> Result<Recap, OpsError> {
    let list: Vec<Value> = images
        .iter()
        .map(|i| json!({"name": i.name, "id": i.id, "archive": i.archive}))
        .collect();
    let mut vars = Map::new();
    vars.insert("images".into(), json!(list));
    c.run("images.yaml", IMAGES, SWARM_NODES, vars, events)
        .await
}
