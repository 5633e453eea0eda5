//! The node image: a Debian root with systemd as PID 1, OpenSSH and Python, tuned to boot as an
//! unprivileged container on this kind of host. Built once per tag and reused by every lab.
//!
//! Two ways to a base, one recipe on top: the `debian:RELEASE` image when a registry answers,
//! otherwise a debootstrap root imported with `docker import`. Either base then runs
//! [`SETUP_SCRIPT`] in a throwaway container, committed as the node image. Host keys are NOT in
//! the image: each node makes its own at first boot.
//!
//! Also owns the application base image ([`ensure_base`]): a plain minbase Debian root with
//! ca-certificates, for building Dockerfiles (`FROM ${BASE}`) where no registry answers. It is
//! what `debian:RELEASE-slim` is elsewhere; it has no systemd and nothing of the node recipe.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use super::{docker, LabError, Release};

/// Packages every node has: what Debian cloud images carry and what provisioning expects.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "ca-certificates",
    "sudo",
    "python3",
];

/// Runs inside the base image as root; `$1` is the Debian release, `$2` the package list.
/// Idempotent: installs only missing packages, so a debootstrap base needs no network here.
const SETUP_SCRIPT: &str = r#"set -eu
release="$1"; packages="$2"
export DEBIAN_FRONTEND=noninteractive
# The sources a Debian cloud image has: the release, its updates and its security archive.
rm -f /etc/apt/sources.list
cat > /etc/apt/sources.list.d/debian.sources <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update
  apt-get install -y --no-install-recommends $missing
fi
apt-get clean
rm -rf /var/lib/apt/lists/*

# Each node makes its own host keys at first boot; keys baked in here would be shared by all.
rm -f /etc/ssh/ssh_host_*
cat > /etc/systemd/system/minipaas-host-keys.service <<'UNIT'
[Unit]
Description=Generate this node's SSH host keys at first boot
Before=ssh.service ssh.socket
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target ssh.service
UNIT
mkdir -p /etc/systemd/system/multi-user.target.wants /etc/systemd/system/ssh.service.wants
ln -sf /etc/systemd/system/minipaas-host-keys.service /etc/systemd/system/multi-user.target.wants/
ln -sf /etc/systemd/system/minipaas-host-keys.service /etc/systemd/system/ssh.service.wants/
ln -sf /lib/systemd/system/ssh.service /etc/systemd/system/multi-user.target.wants/ssh.service

# A container cannot load kernel modules; the failed unit would leave the system `degraded`.
ln -sf /dev/null /etc/systemd/system/systemd-modules-load.service
# Docker 26 inside a node cannot set up IPv6 on container interfaces in this kind of sandbox.
mkdir -p /etc/systemd/system/docker.service.d
printf '[Service]\nEnvironment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\n' \
  > /etc/systemd/system/docker.service.d/minipaas-lab.conf

# Root logs in with the lab key only.
mkdir -p /etc/ssh/sshd_config.d /root/.ssh
chmod 700 /root/.ssh
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\n' \
  > /etc/ssh/sshd_config.d/minipaas-lab.conf

# An empty machine-id makes every node generate its own at first boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id
"#;

/// Packages of the application base image on top of debootstrap's minbase: what
/// `debian:RELEASE-slim` lacks for fetching over HTTPS.
pub const BASE_PACKAGES: &[&str] = &["ca-certificates"];

/// The apt sources a Debian container image has: the release, its updates and its security
/// archive (debootstrap writes only the release). `{release}` is replaced.
const DEBIAN_SOURCES: &str = "Types: deb
URIs: http://deb.debian.org/debian
Suites: {release} {release}-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: {release}-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

/// The application base image's tag: `minipaas-base:trixie`.
pub fn base_tag(release: Release) -> String {
    format!("minipaas-base:{}", release.codename())
}

/// Makes sure the application base image [`base_tag`]`(release)` exists, building it with
/// debootstrap (`--variant=minbase` plus [`BASE_PACKAGES`]) and `docker import` when it does not.
/// Never pulls: it exists for machines where no registry answers. Returns true when it had to
/// be built; errors with [`LabError::NoDebootstrap`] when debootstrap is missing.
pub async fn ensure_base(release: Release, progress: &dyn Fn(&str)) -> Result<bool, LabError> {
    docker::ping().await?;
    let tag = base_tag(release);
    if docker::image_exists(&tag).await? {
        return Ok(false);
    }
    if !has_debootstrap().await {
        return Err(LabError::NoDebootstrap { image: tag });
    }
    progress(&format!(
        "building `{tag}` with debootstrap (under a minute)"
    ));
    let root = std::env::temp_dir().join(format!(
        "minipaas-base-root-{}-{}",
        release.codename(),
        std::process::id()
    ));
    let result = async {
        debootstrap(&root, release, BASE_PACKAGES).await?;
        slim(&root, release)?;
        import(&root, &tag, &[r#"CMD ["bash"]"#]).await
    }
    .await;
    // The root is only scaffolding for the import; leaving it would waste a few hundred MB.
    let _ = tokio::fs::remove_dir_all(&root).await;
    result.map(|_| true)
}

/// Gives a debootstrap root the apt sources of a Debian container image and drops what an image
/// does not need: downloaded packages and package lists (a Dockerfile runs `apt-get update`).
fn slim(root: &Path, release: Release) -> Result<(), LabError> {
    let file_err = |path: std::path::PathBuf| move |source| LabError::File { path, source };
    let list = root.join("etc/apt/sources.list");
    if list.exists() {
        std::fs::remove_file(&list).map_err(file_err(list.clone()))?;
    }
    let sources = root.join("etc/apt/sources.list.d/debian.sources");
    std::fs::write(
        &sources,
        DEBIAN_SOURCES.replace("{release}", release.codename()),
    )
    .map_err(file_err(sources.clone()))?;
    for dir in ["var/lib/apt/lists", "var/cache/apt/archives"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                std::fs::remove_file(&path).map_err(file_err(path.clone()))?;
            }
        }
    }
    Ok(())
}

/// The image tag used when the user names none: `minipaas-node:trixie`.
pub fn default_tag(release: Release) -> String {
    format!("minipaas-node:{}", release.codename())
}

/// Makes sure `image` exists, building it from Debian `release` when it does not. Returns true
/// when it had to be built. `progress` receives one line per step.
pub async fn ensure(
    image: &str,
    release: Release,
    progress: &dyn Fn(&str),
) -> Result<bool, LabError> {
    if docker::image_exists(image).await? {
        return Ok(false);
    }
    let base = base_image(image, release, progress).await?;
    progress(&format!("configuring node image `{image}`"));
    let builder = format!("minipaas-image-build-{}", std::process::id());
    let packages = PACKAGES.join(" ");
    // A build container left by a crashed run with the same pid would block the name.
    let _ = docker::try_run(&["rm", "-f", &builder]).await;
    let ran = docker::try_run(&[
        "run",
        "--name",
        &builder,
        &base,
        "/bin/sh",
        "-c",
        SETUP_SCRIPT,
        "setup",
        release.codename(),
        &packages,
    ])
    .await?;
    let committed = if ran.success {
        docker::run(&[
            "commit",
            "--change",
            r#"CMD ["/sbin/init"]"#,
            "--change",
            "ENV container=docker",
            &builder,
            image,
        ])
        .await
        .map(|_| ())
    } else {
        Err(LabError::ImageSetup {
            image: image.to_string(),
            output: tail(&format!("{}\n{}", ran.stdout, ran.stderr), 15),
        })
    };
    // The build container is ours alone; a failure to remove it must not hide the real result.
    let _ = docker::try_run(&["rm", "-f", &builder]).await;
    committed?;
    Ok(true)
}

/// A base image with Debian `release` in it: `debian:RELEASE` when present or pullable,
/// otherwise a debootstrap root imported as `minipaas-node-base:RELEASE` (kept, so a failed
/// setup or another node image does not debootstrap again).
async fn base_image(
    image: &str,
    release: Release,
    progress: &dyn Fn(&str),
) -> Result<String, LabError> {
    let official = format!("debian:{}", release.codename());
    let imported = format!("minipaas-node-base:{}", release.codename());
    for local in [&official, &imported] {
        if docker::image_exists(local).await? {
            return Ok(local.clone());
        }
    }
    progress(&format!("pulling `{official}`"));
    let pulled = docker::try_run(&["pull", "--quiet", &official]).await?;
    if pulled.success {
        return Ok(official);
    }
    let registry = pulled
        .stderr
        .lines()
        .next()
        .unwrap_or("pull failed")
        .to_string();
    if !has_debootstrap().await {
        return Err(LabError::NoImageBuilder {
            image: image.to_string(),
            release: release.codename().to_string(),
            registry,
        });
    }
    progress(&format!(
        "no registry answers; building `{image}` with debootstrap (about a minute)"
    ));
    let root = std::env::temp_dir().join(format!(
        "minipaas-node-root-{}-{}",
        release.codename(),
        std::process::id()
    ));
    let result = async {
        debootstrap(&root, release, PACKAGES).await?;
        import(&root, &imported, &[]).await
    }
    .await;
    // The root is only scaffolding for the import; leaving it would waste a few hundred MB.
    let _ = tokio::fs::remove_dir_all(&root).await;
    result
}

async fn has_debootstrap() -> bool {
    Command::new("debootstrap")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `debootstrap --variant=minbase --include=PACKAGES RELEASE ROOT` from deb.debian.org.
async fn debootstrap(root: &Path, release: Release, packages: &[&str]) -> Result<(), LabError> {
    let include = format!("--include={}", packages.join(","));
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", &include, release.codename()])
        .arg(root)
        .arg("http://deb.debian.org/debian")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| LabError::Spawn {
            program: "debootstrap".into(),
            source,
        })?;
    if !out.status.success() {
        let log =
            std::fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        return Err(LabError::Debootstrap {
            release: release.codename().to_string(),
            output: tail(
                &format!(
                    "{}\n{}\n{log}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
                15,
            ),
        });
    }
    Ok(())
}

/// `tar -C ROOT -c . | docker import [--change C]... - TAG`, returning the tag.
async fn import(root: &Path, tag: &str, changes: &[&str]) -> Result<String, LabError> {
    let spawn_err = |program: &str| {
        let program = program.to_string();
        move |source| LabError::Spawn { program, source }
    };
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["--numeric-owner", "-c", "."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err("tar"))?;
    let Some(tar_out) = tar.stdout.take() else {
        // Cannot happen: stdout was asked to be piped just above.
        return Err(LabError::Spawn {
            program: "tar".into(),
            source: std::io::Error::other("no stdout pipe"),
        });
    };
    let tar_stdio: Stdio = tar_out.try_into().map_err(spawn_err("tar"))?;
    let mut import = Command::new("docker");
    import.arg("import");
    for change in changes {
        import.args(["--change", change]);
    }
    let imported = import
        .args(["-", tag])
        .stdin(tar_stdio)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(spawn_err("docker"))?;
    let tar_status = tar.wait().await.map_err(spawn_err("tar"))?;
    if !imported.status.success() || !tar_status.success() {
        return Err(LabError::Docker {
            command: format!("tar -C {} -c . | docker import - {tag}", root.display()),
            stderr: String::from_utf8_lossy(&imported.stderr).trim().to_string(),
        });
    }
    Ok(tag.to_string())
}

/// The last `n` non-empty lines of `text`, enough to show why a build failed.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tags_name_the_release() {
        assert_eq!(default_tag(Release::Trixie), "minipaas-node:trixie");
        assert_eq!(default_tag(Release::Bookworm), "minipaas-node:bookworm");
        assert_eq!(base_tag(Release::Trixie), "minipaas-base:trixie");
        assert_eq!(base_tag(Release::Bookworm), "minipaas-base:bookworm");
    }

    #[test]
    fn base_sources_name_the_release_and_its_security_archive() {
        let sources = DEBIAN_SOURCES.replace("{release}", "trixie");
        assert!(sources.contains("Suites: trixie trixie-updates\n"));
        assert!(sources.contains("Suites: trixie-security\n"));
        assert!(!sources.contains("{release}"));
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
