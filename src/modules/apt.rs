//! `apt`: Debian packages present, absent or at the candidate version.
//!
//! One `dpkg-query` for the whole list; the package cache is refreshed only when something must
//! be installed or upgraded and the cache is older than `cache_valid_time`; dpkg's lock is
//! waited for rather than failed on.

use serde::Deserialize;
use serde_json::Value;

use crate::template::shell_quote;

use super::context::Context;
use super::{Applied, Change, ModuleError, Probe, Seen};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Present,
    Absent,
    Latest,
}

#[derive(Debug)]
pub struct Apt {
    packages: Vec<String>,
    state: State,
    update_cache: bool,
    cache_valid_time: u64,
    install_recommends: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Names {
    One(String),
    Many(Vec<String>),
}

impl Apt {
    pub fn new(a: &Value) -> Result<Apt, ModuleError> {
        #[derive(Deserialize)]
        struct A {
            name: Option<Names>,
            pkg: Option<Names>,
            #[serde(default)]
            state: State,
            #[serde(default)]
            update_cache: bool,
            cache_valid_time: Option<u64>,
            install_recommends: Option<bool>,
        }
        let raw: A = super::args("apt", a)?;
        let packages: Vec<String> = match raw.name.or(raw.pkg) {
            None => Vec::new(),
            Some(Names::One(s)) => s.split(',').map(|p| p.trim().to_string()).collect(),
            Some(Names::Many(v)) => v,
        };
        for p in &packages {
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.:_=".contains(c));
            if !ok {
                return Err(ModuleError::Args {
                    message: format!("`{p}` is not a package name"),
                });
            }
        }
        Ok(Apt {
            packages,
            state: raw.state,
            update_cache: raw.update_cache,
            cache_valid_time: raw.cache_valid_time.unwrap_or(3600),
            install_recommends: raw.install_recommends,
        })
    }

    fn names(&self) -> Vec<&str> {
        // `name=version` pins compare by name.
        self.packages
            .iter()
            .map(|p| p.split('=').next().unwrap_or(p))
            .collect()
    }

    pub fn probe(&self) -> Probe {
        let names: Vec<String> = self.names().iter().map(|n| shell_quote(n)).collect();
        let mut s = format!(
            "dpkg-query -W -f='${{Package}}\\t${{db:Status-Abbrev}}\\t${{Version}}\\n' {} 2>/dev/null; ",
            names.join(" ")
        );
        if self.state == State::Latest {
            s.push_str(&format!(
                "apt-cache policy {} 2>/dev/null | awk '/^[^ ]/{{p=$1}} /Candidate:/{{print \"C\\t\" p \"\\t\" $2}}'; ",
                names.join(" ")
            ));
        }
        s.push_str(
            "echo \"T\\t$(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0)\\t$(date +%s)\"",
        );
        Probe::Shell(s)
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let mut installed: Vec<(String, String)> = Vec::new();
        let mut candidate: Vec<(String, String)> = Vec::new();
        for line in seen.output()?.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["C", name, ver] => {
                    candidate.push((name.trim_end_matches(':').into(), ver.to_string()))
                }
                ["T", ..] => {}
                [name, status, ver] if status.starts_with("ii") => {
                    installed.push((name.to_string(), ver.to_string()))
                }
                _ => {}
            }
        }
        let is_installed = |n: &str| installed.iter().any(|(p, _)| p == n);
        let names = self.names();
        let mut out = Vec::new();
        match self.state {
            State::Present => {
                let missing: Vec<String> = names
                    .iter()
                    .filter(|n| !is_installed(n))
                    .map(|n| n.to_string())
                    .collect();
                if !missing.is_empty() {
                    out.push(Change::Install(missing));
                }
            }
            State::Absent => {
                let present: Vec<String> = names
                    .iter()
                    .filter(|n| is_installed(n))
                    .map(|n| n.to_string())
                    .collect();
                if !present.is_empty() {
                    out.push(Change::Uninstall(present));
                }
            }
            State::Latest => {
                let mut missing = Vec::new();
                let mut upgrade = Vec::new();
                for n in &names {
                    match installed.iter().find(|(p, _)| p == n) {
                        None => missing.push(n.to_string()),
                        Some((_, v)) => {
                            let cand = candidate.iter().find(|(p, _)| p == n).map(|(_, c)| c);
                            if cand.is_some_and(|c| c != v && c != "(none)") {
                                upgrade.push(n.to_string());
                            }
                        }
                    }
                }
                if !missing.is_empty() {
                    out.push(Change::Install(missing));
                }
                if !upgrade.is_empty() {
                    out.push(Change::Upgrade(upgrade));
                }
            }
        }
        Ok(out)
    }

    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        let env = "export DEBIAN_FRONTEND=noninteractive; ";
        // Waits up to 5 minutes for another apt/dpkg (unattended-upgrades) instead of failing.
        let opts = "-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -y -q";
        let needs_cache = changes
            .iter()
            .any(|c| matches!(c, Change::Install(_) | Change::Upgrade(_)));
        let mut s = String::from("set -e; ");
        s.push_str(env);
        if needs_cache {
            // Refresh when asked and stale, and always when the lists were never fetched.
            let stale = if self.update_cache {
                format!(
                    "[ $(( $(date +%s) - $(stat -c %Y /var/lib/apt/lists 2>/dev/null || echo 0) )) -gt {} ]",
                    self.cache_valid_time
                )
            } else {
                "false".to_string()
            };
            s.push_str(&format!(
                "if {stale} || ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1; then \
                 for i in 1 2 3 4 5 6 7 8 9 10; do apt-get {opts} update && break; sleep 3; done; \
                 touch /var/lib/apt/lists; fi; "
            ));
        }
        let rec = match self.install_recommends {
            Some(true) => " --install-recommends",
            Some(false) => " --no-install-recommends",
            None => "",
        };
        for c in changes {
            let (verb, pkgs) = match c {
                Change::Install(p) => ("install", p),
                Change::Upgrade(p) => ("install --only-upgrade", p),
                Change::Uninstall(p) => ("remove", p),
                _ => continue,
            };
            let wanted: Vec<String> = if matches!(c, Change::Install(_)) {
                // Keep `name=version` pins for what gets installed.
                self.packages
                    .iter()
                    .filter(|full| pkgs.iter().any(|p| full.split('=').next() == Some(p)))
                    .map(|p| shell_quote(p))
                    .collect()
            } else {
                pkgs.iter().map(|p| shell_quote(p)).collect()
            };
            s.push_str(&format!(
                "apt-get {opts}{rec} {verb} {}; ",
                wanted.join(" ")
            ));
        }
        ctx.run_ok("apt-get", &s, None).await?;
        Ok(Applied::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seen(s: &str) -> Seen {
        Seen::Output {
            code: Some(0),
            stdout: s.into(),
        }
    }

    #[test]
    fn present_absent_latest() {
        let out = "curl\tii \t7.88\njq\tun \t\nT\t1\t2\n";
        let a = Apt::new(&json!({"name": ["curl", "jq"]})).unwrap();
        assert_eq!(
            a.check(&seen(out)).unwrap(),
            [Change::Install(vec!["jq".into()])]
        );
        let a = Apt::new(&json!({"name": "curl,jq", "state": "absent"})).unwrap();
        assert_eq!(
            a.check(&seen(out)).unwrap(),
            [Change::Uninstall(vec!["curl".into()])]
        );
        let a = Apt::new(&json!({"name": ["curl"], "state": "latest"})).unwrap();
        let out2 = format!("{out}C\tcurl:\t7.99\n");
        assert_eq!(
            a.check(&seen(&out2)).unwrap(),
            [Change::Upgrade(vec!["curl".into()])]
        );
        assert!(Apt::new(&json!({"name": "rm -rf /"})).is_err());
    }
}
