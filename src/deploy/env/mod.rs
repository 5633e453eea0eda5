//! [`Env`]: one env directory loaded, with the questions `deploy` asks of it (stack files,
//! builds, jobs, versioned secret references) and the edits `code` and `secret`/`config` make to
//! it. Every edit writes only the files whose bytes change, atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::caddy::{Route, RouteUrl, Routes};
use super::compose::{AppsFile, Role, UserProject};
use super::runtime;
use super::settings::{Api, EndpointMode, Settings};
use super::{interpolate, DeployError};

mod files;
mod init;
mod objects;

use files::{absolute, load_settings, write_file};
pub use files::{Change, Written};
pub use init::{init, InitOptions};
pub use objects::{versioned_name, ObjectKind};

const SETTINGS_FILE: &str = "minipaas.yaml";
const APPS_FILE: &str = "compose.apps.yaml";
const CADDY_FILE: &str = "caddy.json";
const RUNTIME_DIR: &str = "runtime";
/// The variable compose.apps.yaml's built images are tagged with; `docker stack deploy` must
/// run with it set (see [`Env::stack_env`]).
pub const VERSION_VAR: &str = "MINIPAAS_DEPLOY_VERSION";

/// One image to build for a service with `build:` in the user's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub service: String,
    /// The tag compose.apps.yaml runs, version resolved: `minipaas/web:3`.
    pub image: String,
    /// Absolute.
    pub context: PathBuf,
    /// As given (relative to the context), when given.
    pub dockerfile: Option<PathBuf>,
    /// Interpolated; args with no value and no variable set are left out, as compose does.
    pub args: BTreeMap<String, String>,
}

/// An env directory, loaded.
#[derive(Debug, Clone)]
pub struct Env {
    /// Absolute.
    pub dir: PathBuf,
    pub settings: Settings,
    apps: AppsFile,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_name(what: &'static str, name: &str) -> Result<(), DeployError> {
    if is_name(name) {
        Ok(())
    } else {
        Err(DeployError::BadName {
            what,
            name: name.to_string(),
        })
    }
}

impl Env {
    /// Reads `dir/minipaas.yaml` and `dir/compose.apps.yaml` (missing: empty). Errors when the
    /// settings are missing (naming `code init`) or malformed (file and line).
    pub fn load(dir: &Path) -> Result<Env, DeployError> {
        let abs = absolute(dir)?;
        let settings = load_settings(&abs)?.ok_or_else(|| DeployError::NoSettings {
            dir: dir.to_path_buf(),
        })?;
        Ok(Env {
            apps: AppsFile::load(&abs.join(APPS_FILE))?,
            dir: abs,
            settings,
        })
    }

    pub fn stack_name(&self) -> &str {
        &self.settings.stack
    }

    /// The inventory, resolved against the env dir.
    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join(&self.settings.inventory)
    }

    /// `deploy.version`: the tag of built images.
    pub fn version(&self) -> &str {
        &self.settings.deploy.version
    }

    pub fn api(&self) -> &Api {
        &self.settings.api
    }

    /// The stateful runtime services the env's inventory pins (service -> host), and how
    /// many managers it has; none and 0 while there is no inventory file yet.
    pub fn stateful_pins(
        &self,
    ) -> Result<(std::collections::BTreeMap<String, String>, usize), DeployError> {
        let path = self.inventory_path();
        if !path.exists() {
            return Ok(Default::default());
        }
        let inv = crate::inventory::Inventory::load(&path)?;
        let managers = inv.groups.get("managers").map_or(0, Vec::len);
        Ok((runtime::pins(&inv)?, managers))
    }

    /// The warning for stateful runtime services that may move to an empty volume.
    pub fn placement_warning(&self) -> Result<Option<String>, DeployError> {
        let (pins, managers) = self.stateful_pins()?;
        Ok(runtime::unpinned_warning(
            &self.settings.runtime,
            &pins,
            managers,
        ))
    }

    pub fn caddy_json_path(&self) -> PathBuf {
        self.dir.join(CADDY_FILE)
    }

    /// Files for `docker stack deploy -c ...`, in order: the enabled runtime/*.yaml, the user's
    /// project files, compose.apps.yaml. Absolute. Deploy with [`Env::stack_env`] set: built
    /// images are tagged `${MINIPAAS_DEPLOY_VERSION}` in compose.apps.yaml.
    pub fn stack_files(&self) -> Vec<PathBuf> {
        let runtime_dir = self.dir.join(RUNTIME_DIR);
        runtime::files(&self.settings.runtime, None, &Default::default())
            .into_iter()
            .filter(|f| f.content.is_some())
            .map(|f| runtime_dir.join(f.name))
            .chain(self.project_files())
            .chain([self.dir.join(APPS_FILE)])
            .collect()
    }

    /// The environment `docker stack deploy` (and builds) run with: MINIPAAS_DEPLOY_VERSION.
    pub fn stack_env(&self) -> Vec<(String, String)> {
        vec![(VERSION_VAR.to_string(), self.version().to_string())]
    }

    fn project_files(&self) -> Vec<PathBuf> {
        self.settings
            .project
            .files
            .iter()
            .map(|f| self.dir.join(f))
            .collect()
    }

    /// The user's files, checked against the runtime's reserved service names.
    fn project(&self) -> Result<UserProject, DeployError> {
        let project = UserProject::load(&self.project_files())?;
        for name in runtime::services(&self.settings.runtime) {
            if let Some(svc) = project.services.get(name) {
                return Err(DeployError::ReservedService {
                    path: svc.file.clone(),
                    service: name.to_string(),
                });
            }
        }
        Ok(project)
    }

    /// The image a built service runs, as compose.apps.yaml writes it (version as a variable,
    /// so a new version does not rewrite the file).
    fn image_template(&self, service: &str, user_image: Option<&str>) -> String {
        self.image_repo(service, user_image) + ":${" + VERSION_VAR + "}"
    }

    /// The user's `image:` without its tag (as compose tags what it builds), else
    /// `minipaas/<service>`; under the registry's address when there is one (then `<service>`).
    fn image_repo(&self, service: &str, user_image: Option<&str>) -> String {
        let repo = match user_image {
            Some(image) => {
                let tag_at = image.rfind(':').filter(|&i| !image[i..].contains('/'));
                image[..tag_at.unwrap_or(image.len())].to_string()
            }
            None if self.settings.runtime.registry => service.to_string(),
            None => format!("minipaas/{service}"),
        };
        if self.settings.runtime.registry {
            format!("{}/{repo}", runtime::REGISTRY_ADDR)
        } else {
            repo
        }
    }

    /// Services of the user's files with `build:`, in name order, interpolated from the process
    /// environment plus MINIPAAS_DEPLOY_VERSION. Contexts are relative to the first project
    /// file's directory, as compose resolves them.
    pub fn builds(&self) -> Result<Vec<Build>, DeployError> {
        let project = self.project()?;
        let base = self
            .project_files()
            .first()
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| self.dir.clone());
        let version = self.version().to_string();
        let lookup = move |name: &str| {
            if name == VERSION_VAR {
                Some(version.clone())
            } else {
                std::env::var(name).ok()
            }
        };
        let mut out = Vec::new();
        for (name, svc) in &project.services {
            let Some(build) = &svc.build else { continue };
            let interp = |text: &str| {
                interpolate(text, &lookup).map_err(|problem| DeployError::Interpolation {
                    path: svc.file.clone(),
                    service: name.clone(),
                    problem,
                    text: text.to_string(),
                })
            };
            let mut args = BTreeMap::new();
            for (k, v) in &build.args {
                let value = match v {
                    Some(v) => Some(interp(v)?),
                    None => lookup(k),
                };
                if let Some(value) = value {
                    args.insert(k.clone(), value);
                }
            }
            out.push(Build {
                service: name.clone(),
                image: format!(
                    "{}:{}",
                    self.image_repo(name, svc.image.as_deref()),
                    self.version()
                ),
                context: base.join(interp(&build.context)?),
                dockerfile: build
                    .dockerfile
                    .as_deref()
                    .map(|d| interp(d).map(PathBuf::from))
                    .transpose()?,
                args,
            });
        }
        Ok(out)
    }

    /// Services the user's files or compose.apps.yaml run as swarm jobs (`replicated-job`,
    /// `global-job`; compose.apps.yaml wins), sorted.
    pub fn jobs(&self) -> Result<Vec<String>, DeployError> {
        let project = self.project()?;
        Ok(project
            .services
            .iter()
            .filter(|(name, svc)| {
                let own = matches!(svc.mode.as_deref(), Some("replicated-job" | "global-job"));
                self.apps.is_job(name).unwrap_or(own)
            })
            .map(|(name, _)| name.clone())
            .collect())
    }

    /// Every service the env declares: the user's, then the enabled runtime's, as the stack
    /// names them without the `<stack>_` prefix.
    pub fn services(&self) -> Result<Vec<String>, DeployError> {
        let mut names: Vec<String> = self.project()?.services.into_keys().collect();
        names.extend(self.runtime_services().iter().map(|s| s.to_string()));
        Ok(names)
    }

    /// The enabled runtime services (`caddy`, `postgres`, `registry`).
    pub fn runtime_services(&self) -> Vec<&'static str> {
        runtime::services(&self.settings.runtime)
    }

    /// Records `replicas` for the user's `service` in compose.apps.yaml, so the next rollout
    /// deploys that count (compose.apps.yaml is merged last: it wins over the user's
    /// `deploy.replicas`). Returns whether the file changed.
    pub fn set_replicas(&mut self, service: &str, replicas: u32) -> Result<bool, DeployError> {
        self.check_services(&[service.to_string()], false)?;
        let mut apps = self.apps.clone();
        apps.services
            .entry(service.to_string())
            .or_default()
            .deploy
            .get_or_insert_with(Default::default)
            .replicas = Some(replicas);
        Ok(self.save_apps(apps)?.is_some())
    }

    /// The replica count compose.apps.yaml records for `service`, if any.
    pub fn recorded_replicas(&self, service: &str) -> Option<u32> {
        self.apps.services.get(service)?.deploy.as_ref()?.replicas
    }

    /// Checks that every one of `services` is declared (by the user's files, or, when
    /// `runtime_too`, is an enabled runtime service).
    fn check_services(&self, services: &[String], runtime_too: bool) -> Result<(), DeployError> {
        let project = self.project()?;
        let runtime = runtime::services(&self.settings.runtime);
        for s in services {
            let known =
                project.services.contains_key(s) || (runtime_too && runtime.contains(&s.as_str()));
            if !known {
                let mut names: Vec<&str> = project.services.keys().map(String::as_str).collect();
                if runtime_too {
                    names.extend(&runtime);
                }
                return Err(DeployError::UnknownService {
                    service: s.clone(),
                    known: if names.is_empty() {
                        "none declared".into()
                    } else {
                        format!("known: {}", names.join(", "))
                    },
                });
            }
        }
        Ok(())
    }

    /// Writes `apps` as compose.apps.yaml when its bytes differ; keeps it as the loaded state.
    fn save_apps(&mut self, mut apps: AppsFile) -> Result<Option<Written>, DeployError> {
        let dnsrr = self.settings.runtime.endpoint_mode == EndpointMode::Dnsrr;
        let project = self.project()?;
        for (name, svc) in apps.services.iter_mut() {
            if project
                .services
                .get(name)
                .is_some_and(|u| u.has_healthcheck)
            {
                svc.healthcheck = None;
            }
            if dnsrr {
                svc.deploy
                    .get_or_insert_with(Default::default)
                    .endpoint_mode = Some("dnsrr".into());
            } else if let Some(d) = &mut svc.deploy {
                d.endpoint_mode = None;
            }
            if svc
                .deploy
                .as_ref()
                .is_some_and(|d| d == &Default::default())
            {
                svc.deploy = None;
            }
        }
        let written = write_file(&self.dir.join(APPS_FILE), &apps.render())?;
        self.apps = apps;
        Ok(written)
    }

    fn save_routes(&self, routes: &Routes) -> Result<Option<Written>, DeployError> {
        write_file(
            &self.caddy_json_path(),
            &routes.render(self.settings.runtime.http_port),
        )
    }

    /// Gives each of `services` (the user's) `role`; see [`Role`]. Returns the files changed.
    pub fn set_role(
        &mut self,
        services: &[String],
        role: &Role,
    ) -> Result<Vec<Written>, DeployError> {
        self.check_services(services, false)?;
        if let Role::Cron { schedule } = role {
            check_cron(schedule)?;
        }
        let mut apps = self.apps.clone();
        for s in services {
            apps.services.entry(s.clone()).or_default().set_role(role);
        }
        Ok(self.save_apps(apps)?.into_iter().collect())
    }

    /// Routes `url` (`[http[s]://]HOST[/PATH]` or `/PATH`; a path alone uses `domain` when set)
    /// to `service` on `port`, replacing a route with the same host and path, and makes the
    /// service a [`Role::Web`]. Returns the files changed.
    pub fn route(
        &mut self,
        url: &str,
        service: &str,
        port: u16,
    ) -> Result<Vec<Written>, DeployError> {
        let mut url = RouteUrl::parse(url)?;
        if url.host.is_none() {
            url.host = self.settings.domain.clone();
        }
        check_name("service name", service)?;
        let mut written = self.set_role(&[service.to_string()], &Role::Web { port })?;
        let mut routes = Routes::load(&self.caddy_json_path())?;
        routes.set(
            Route {
                host: url.host,
                path: url.path,
                dial: format!("{}_{service}:{port}", self.stack_name()),
            },
            url.plain_http,
        );
        written.extend(self.save_routes(&routes)?);
        Ok(written)
    }
}

/// swarm-cronjob takes robfig/cron schedules: 5 fields, 6 with seconds, or `@every 1h`,
/// `@daily` and friends.
fn check_cron(expr: &str) -> Result<(), DeployError> {
    let fields = expr.split_whitespace().count();
    let ok = if let Some(descriptor) = expr.trim_start().strip_prefix('@') {
        descriptor.starts_with(|c: char| c.is_ascii_alphabetic()) && (1..=2).contains(&fields)
    } else {
        (5..=6).contains(&fields)
            && expr.split_whitespace().all(|f| {
                f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ",-*/?".contains(c))
            })
    };
    if ok {
        Ok(())
    } else {
        Err(DeployError::BadCron {
            expr: expr.to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
