//! `minipaas shell`: a shell (or one command) whose `docker` talks to the cluster. By default
//! over SSH to the inventory's main manager (`DOCKER_HOST=ssh://...`), with the inventory's key
//! and known_hosts through a generated ssh config; with `api.host` in minipaas.yaml, over TCP
//! with the env's TLS client certificates; with `api.local`, to this machine's engine.

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;

use crate::deploy::cluster::{Cluster, OpsError};
use crate::deploy::env::Env;
use crate::deploy::DeployError;
use crate::engine::Mode;

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// The env directory (holds minipaas.yaml).
    #[arg(long = "env", default_value = ".")]
    pub env: PathBuf,
    /// Inventory to use instead of the one minipaas.yaml names.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Option<PathBuf>,
    /// A command to run instead of an interactive shell.
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Env(#[from] DeployError),
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("cannot write `{}`", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "host `{host}`: `{value}` cannot go into an ssh config (a quote or a control character)"
    )]
    SshConfigValue { host: String, value: String },
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), ShellError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| ShellError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, text).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

/// Environment variables for `docker`, and the directory to put first on PATH (SSH mode).
fn docker_env(env: &Env, inventory: Option<PathBuf>) -> Result<Vec<(String, String)>, ShellError> {
    let api = env.api();
    if api.local {
        return Ok(Vec::new());
    }
    if !api.host.is_empty() {
        let mut vars = vec![("DOCKER_HOST".to_string(), api.host.clone())];
        if !api.tls.is_empty() {
            vars.push(("DOCKER_TLS_VERIFY".into(), "1".into()));
            vars.push((
                "DOCKER_CERT_PATH".into(),
                env.dir.join(&api.tls).display().to_string(),
            ));
        }
        return Ok(vars);
    }
    let cluster = Cluster::load(
        &inventory.unwrap_or_else(|| env.inventory_path()),
        Mode::Apply,
    )?;
    let host = cluster
        .inventory
        .host(cluster.manager.as_str())
        .expect("the main manager is an inventory host");
    // docker's ssh:// transport runs `ssh` from PATH and takes no options: a wrapper first on
    // PATH adds a config with the inventory's key and known_hosts, checked strictly.
    let dir = env.dir.join(".minipaas").join("shell");
    let config = dir.join("ssh_config");
    let text = ssh_config(host, cluster.inventory.known_hosts.as_deref())?;
    write(&config, &text, 0o600)?;
    let bin = dir.join("bin");
    write(
        &bin.join("ssh"),
        &format!(
            "#!/bin/sh\n# written by `minipaas shell`\nexec /usr/bin/ssh -F {} \"$@\"\n",
            crate::template::shell_quote(&config.display().to_string())
        ),
        0o755,
    )?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok(vec![
        ("DOCKER_HOST".into(), "ssh://minipaas-manager".into()),
        ("PATH".into(), path),
    ])
}

/// The ssh config for the main manager. The inventory checked the address and the user when it
/// loaded; this refuses anyway what could end a value early (a newline starts a new directive,
/// such as a `ProxyCommand` that runs here; a `"` ends a quoted value), double-quotes every
/// value (paths may hold spaces) and doubles `%` where ssh expands tokens.
fn ssh_config(
    host: &crate::inventory::Host,
    known_hosts: Option<&Path>,
) -> Result<String, ShellError> {
    let value = |v: &str, tokens: bool| -> Result<String, ShellError> {
        if v.is_empty() || v.chars().any(|c| c == '"' || c.is_control()) {
            return Err(ShellError::SshConfigValue {
                host: host.name.to_string(),
                value: v.escape_debug().to_string(),
            });
        }
        Ok(format!(
            "\"{}\"",
            if tokens {
                v.replace('%', "%%")
            } else {
                v.to_string()
            }
        ))
    };
    let mut text = format!(
        "Host minipaas-manager\n  HostName {}\n  Port {}\n  User {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
        value(&host.address, true)?,
        host.port,
        value(&host.user, false)?
    );
    if let Some(k) = &host.key {
        text.push_str(&format!(
            "  IdentityFile {}\n  IdentitiesOnly yes\n",
            value(&k.display().to_string(), true)?
        ));
    }
    let mut known = vec![value("~/.ssh/known_hosts", true)?];
    if let Some(kh) = known_hosts {
        known.insert(0, value(&kh.display().to_string(), true)?);
    }
    text.push_str(&format!("  UserKnownHostsFile {}\n", known.join(" ")));
    Ok(text)
}

pub fn run(args: ShellArgs) -> Result<i32, crate::commands::Error> {
    let env = Env::load(&args.env).map_err(ShellError::from)?;
    let vars = docker_env(&env, args.inventory.clone())?;
    let (program, rest) = match args.command.split_first() {
        Some((p, rest)) => (p.clone(), rest.to_vec()),
        None => (
            std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()),
            Vec::new(),
        ),
    };
    if args.command.is_empty() {
        eprintln!(
            "minipaas shell: `docker` now talks to stack `{}`'s cluster; exit to leave",
            env.stack_name()
        );
    }
    let status = Command::new(&program)
        .args(&rest)
        .envs(vars)
        .env("MINIPAAS_DEPLOY_VERSION", env.version())
        .status()
        .map_err(|source| ShellError::Spawn {
            program: program.clone(),
            source,
        })?;
    Ok(status.code().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::inventory::{Connection, Host, HostName};

    fn host(address: &str, user: &str, key: Option<&str>) -> Host {
        Host {
            name: HostName("m1".into()),
            address: address.into(),
            private_address: address.into(),
            port: 22,
            user: user.into(),
            key: key.map(PathBuf::from),
            connection: Connection::Ssh,
            groups: vec!["managers".into()],
            vars: Default::default(),
        }
    }

    /// Every line of the config is one of the directives minipaas writes.
    fn directives(text: &str) -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    }

    const WRITTEN: &[&str] = &[
        "Host",
        "HostName",
        "Port",
        "User",
        "StrictHostKeyChecking",
        "BatchMode",
        "IdentityFile",
        "IdentitiesOnly",
        "UserKnownHostsFile",
    ];

    #[test]
    fn ssh_config_quotes_values_and_refuses_what_would_end_them() {
        let text = ssh_config(
            &host("203.0.113.10", "root", Some("/keys/my key%h")),
            Some(Path::new("/inv/known hosts")),
        )
        .unwrap();
        assert!(text.contains("  HostName \"203.0.113.10\"\n"), "{text}");
        assert!(
            text.contains("  IdentityFile \"/keys/my key%%h\"\n"),
            "{text}"
        );
        assert!(
            text.contains("  UserKnownHostsFile \"/inv/known hosts\" \"~/.ssh/known_hosts\"\n"),
            "{text}"
        );
        assert!(directives(&text)
            .iter()
            .all(|d| WRITTEN.contains(&d.as_str())));

        let hostile = [
            host("10.0.0.1\n  ProxyCommand touch /tmp/pwned", "root", None),
            host("10.0.0.1\r\nProxyCommand touch /tmp/pwned", "root", None),
            host("10.0.0.1\" ProxyCommand \"x", "root", None),
            host("10.0.0.1", "root\n  ProxyCommand touch /tmp/pwned", None),
            host(
                "10.0.0.1",
                "root",
                Some("/k\nProxyCommand touch /tmp/pwned"),
            ),
        ];
        for h in hostile {
            match ssh_config(&h, None) {
                Err(e) => assert!(e.to_string().contains("host `m1`"), "{e}"),
                Ok(text) => panic!("a hostile value was written:\n{text}"),
            }
        }
    }
}
