//! Versioned secrets and configs in the env: which services use which version of each.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest, Sha256};

use crate::deploy::compose::{AppService, AppsFile, External, ObjectRef};
use crate::deploy::DeployError;

use super::{check_name, is_name, Env};

/// A swarm secret or config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Secret,
    Config,
}

impl ObjectKind {
    /// Also the `docker` subcommand.
    pub fn noun(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

/// `<base>.<first 8 hex digits of sha256(value)>`: a new name per content, because swarm secrets
/// and configs are immutable.
pub fn versioned_name(base: &str, value: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(value));
    format!("{base}.{}", &digest[..8])
}

/// Drops top-level secrets/configs no service references.
pub(super) fn drop_unreferenced(apps: &mut AppsFile) {
    let used = |kind: ObjectKind| -> BTreeSet<String> {
        apps.services
            .values()
            .flat_map(|s| refs(s, kind).iter().map(|r| r.source.clone()))
            .collect()
    };
    let (secrets, configs) = (used(ObjectKind::Secret), used(ObjectKind::Config));
    apps.secrets.retain(|k, _| secrets.contains(k));
    apps.configs.retain(|k, _| configs.contains(k));
}

pub(super) fn refs(s: &AppService, kind: ObjectKind) -> &Vec<ObjectRef> {
    match kind {
        ObjectKind::Secret => &s.secrets,
        ObjectKind::Config => &s.configs,
    }
}

fn refs_mut(s: &mut AppService, kind: ObjectKind) -> &mut Vec<ObjectRef> {
    match kind {
        ObjectKind::Secret => &mut s.secrets,
        ObjectKind::Config => &mut s.configs,
    }
}

pub(super) fn declared(apps: &mut AppsFile, kind: ObjectKind) -> &mut BTreeMap<String, External> {
    match kind {
        ObjectKind::Secret => &mut apps.secrets,
        ObjectKind::Config => &mut apps.configs,
    }
}

impl Env {
    /// Records that `services` use object `name` (e.g. `app_secret.1a2b3c4d`) under target
    /// `base` (`app_secret`): replaces any earlier version with that target in those services,
    /// declares `name` external, drops declarations no service references any more. Services
    /// may be the user's or enabled runtime ones (`postgres` for `postgres_password`). Returns
    /// whether compose.apps.yaml changed.
    pub fn set_object_ref(
        &mut self,
        kind: ObjectKind,
        base: &str,
        name: &str,
        services: &[String],
    ) -> Result<bool, DeployError> {
        check_name(kind.noun(), base)?;
        let version_ok = name
            .strip_prefix(base)
            .and_then(|v| v.strip_prefix('.'))
            .is_some_and(is_name);
        if !version_ok {
            return Err(DeployError::BadName {
                what: "versioned object name (want `BASE.VERSION`)",
                name: name.to_string(),
            });
        }
        self.check_services(services, true)?;
        let mut apps = self.apps.clone();
        for s in services {
            let list = refs_mut(apps.services.entry(s.clone()).or_default(), kind);
            list.retain(|r| r.target != base);
            list.push(ObjectRef {
                source: name.to_string(),
                target: base.to_string(),
            });
            list.sort_by(|a, b| a.target.cmp(&b.target));
        }
        declared(&mut apps, kind).insert(name.to_string(), External { external: true });
        drop_unreferenced(&mut apps);
        Ok(self.save_apps(apps)?.is_some())
    }

    /// Removes every reference to `base` (all versions) from every service; returns whether
    /// compose.apps.yaml changed.
    pub fn remove_object_ref(&mut self, kind: ObjectKind, base: &str) -> Result<bool, DeployError> {
        check_name(kind.noun(), base)?;
        let mut apps = self.apps.clone();
        for svc in apps.services.values_mut() {
            refs_mut(svc, kind).retain(|r| r.target != base);
        }
        // A runtime service with nothing left is only noise.
        apps.services.retain(|_, s| *s != AppService::default());
        drop_unreferenced(&mut apps);
        Ok(self.save_apps(apps)?.is_some())
    }

    /// The object names (`app_secret.1a2b3c4d`) of `kind` that services reference.
    pub fn object_refs(&self, kind: ObjectKind) -> Result<BTreeSet<String>, DeployError> {
        Ok(self
            .apps
            .services
            .values()
            .flat_map(|s| refs(s, kind).iter().map(|r| r.source.clone()))
            .collect())
    }
}
