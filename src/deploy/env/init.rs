//! `code init`: the env created or refreshed from the user's compose files.

use std::path::{Path, PathBuf};

use crate::deploy::caddy::{RouteUrl, Routes};
use crate::deploy::compose::AppsFile;
use crate::deploy::runtime;
use crate::deploy::settings::{EndpointMode, Settings};
use crate::deploy::DeployError;

use super::files::{absolute, load_settings, remove_file, render_settings, write_file, Written};
use super::objects::drop_unreferenced;
use super::{check_name, Env, APPS_FILE, RUNTIME_DIR, SETTINGS_FILE};

/// What `code init` is given; `None`/empty keeps what minipaas.yaml already says.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// The user's compose files, relative to the env dir; required on the first init.
    pub files: Vec<PathBuf>,
    pub inventory: Option<PathBuf>,
    pub stack: Option<String>,
    pub domain: Option<String>,
    pub endpoint_mode: Option<EndpointMode>,
    pub caddy_image: Option<String>,
    pub postgres_image: Option<String>,
}

/// Creates or refreshes the env in `dir`: minipaas.yaml, compose.apps.yaml, runtime/*.yaml and
/// caddy.json. Keeps what is already recorded (routes, roles, secret and config references,
/// version, runtime choices) and drops entries of services no project file declares any more.
/// Never writes the user's compose files. Returns the files changed, in writing order.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<Vec<Written>, DeployError> {
    let dir = absolute(dir)?;
    // Files are named relative to the env dir (`-c ../compose.yaml`), which the system resolves
    // only through an existing directory.
    std::fs::create_dir_all(&dir).map_err(|source| DeployError::Write {
        path: dir.clone(),
        source,
    })?;
    let loaded = load_settings(&dir)?;
    let old_stack = loaded.as_ref().map(|s| s.stack.clone());
    let mut settings = match loaded {
        Some(s) => s,
        None if opts.files.is_empty() => {
            return Err(DeployError::NoSettings { dir });
        }
        None => Settings::new(Vec::new()),
    };
    if !opts.files.is_empty() {
        settings.project.files = opts.files.clone();
    }
    if let Some(inventory) = &opts.inventory {
        settings.inventory = inventory.clone();
    }
    if let Some(stack) = &opts.stack {
        check_name("stack name", stack)?;
        settings.stack = stack.clone();
    }
    if let Some(mode) = opts.endpoint_mode {
        settings.runtime.endpoint_mode = mode;
    }
    if let Some(image) = &opts.caddy_image {
        settings.runtime.caddy_image = image.clone();
    }
    if let Some(image) = &opts.postgres_image {
        settings.runtime.postgres_image = image.clone();
    }
    if let Some(domain) = &opts.domain {
        let url = RouteUrl::parse(domain)?;
        settings.domain = url.host;
    }
    let mut env = Env {
        apps: AppsFile::load(&dir.join(APPS_FILE))?,
        dir,
        settings,
    };
    let project = env.project()?;
    let mut apps = env.apps.clone();
    apps.version = project.version.clone();
    let runtime_services = runtime::services(&env.settings.runtime);
    apps.services.retain(|name, _| {
        project.services.contains_key(name) || runtime_services.contains(&name.as_str())
    });
    for (name, svc) in &project.services {
        let entry = apps.services.entry(name.clone()).or_default();
        if !entry.networks.iter().any(|n| n == runtime::NETWORK) {
            entry.networks.push(runtime::NETWORK.into());
            entry.networks.sort();
        }
        entry.image = svc
            .build
            .as_ref()
            .map(|_| env.image_template(name, svc.image.as_deref()));
    }
    drop_unreferenced(&mut apps);

    let mut written = Vec::new();
    written.extend(write_file(
        &env.dir.join(SETTINGS_FILE),
        &render_settings(&env.settings),
    )?);
    written.extend(env.save_apps(apps)?);
    let pinned = env.stateful_pins()?.0.into_keys().collect();
    for file in runtime::files(&env.settings.runtime, project.version.as_deref(), &pinned) {
        let path = env.dir.join(RUNTIME_DIR).join(file.name);
        written.extend(match file.content {
            Some(content) => write_file(&path, &content)?,
            None => remove_file(&path)?,
        });
    }
    let mut routes = Routes::load(&env.caddy_json_path())?;
    if let Some(old) = old_stack.filter(|old| *old != env.settings.stack) {
        // Routes dial `<stack>_<service>`: follow a renamed stack.
        let prefix = format!("{old}_");
        for r in &mut routes.routes {
            if let Some(rest) = r.dial.strip_prefix(&prefix) {
                r.dial = format!("{}_{rest}", env.settings.stack);
            }
        }
    }
    written.extend(env.save_routes(&routes)?);
    Ok(written)
}
