//! `systemd`: a unit enabled or disabled, started, stopped, restarted or reloaded; systemd's
//! view of unit files reloaded when they changed on disk.
//!
//! Whether they changed is systemd's `NeedDaemonReload`, and, for drop-ins, the `.conf` files in
//! `/etc/systemd/system/UNIT.d` and `/run/systemd/system/UNIT.d` compared with the unit's
//! `DropInPaths`: systemd 252 (Debian 12) says `NeedDaemonReload=no` for a drop-in in a directory
//! created since the last reload, and a restart would run the unit without it.

use serde::Deserialize;
use serde_json::Value;

use crate::template::shell_quote;

use super::context::Context;
use super::{Applied, Change, ModuleError, Seen};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Started,
    Stopped,
    /// Always a change, like Ansible: used by handlers.
    Restarted,
    Reloaded,
}

#[derive(Debug)]
pub struct Systemd {
    name: Option<String>,
    state: Option<State>,
    enabled: Option<bool>,
    masked: Option<bool>,
    daemon_reload: bool,
}

impl Systemd {
    pub fn new(a: &Value) -> Result<Systemd, ModuleError> {
        #[derive(Deserialize)]
        struct A {
            name: Option<String>,
            state: Option<State>,
            enabled: Option<bool>,
            masked: Option<bool>,
            #[serde(default)]
            daemon_reload: bool,
        }
        let r: A = super::args("systemd", a)?;
        if r.name.is_none() && (r.state.is_some() || r.enabled.is_some() || r.masked.is_some()) {
            return Err(ModuleError::Args {
                message: "`systemd` needs `name` with `state`, `enabled` or `masked`".into(),
            });
        }
        Ok(Systemd {
            name: r.name,
            state: r.state,
            enabled: r.enabled,
            masked: r.masked,
            daemon_reload: r.daemon_reload,
        })
    }

    pub fn probe(&self) -> String {
        match &self.name {
            // One `systemctl show` instead of is-enabled + is-active + show: systemctl is the
            // slowest thing a no-op run does on a host.
            Some(n) if self.daemon_reload => format!(
                "show=$(systemctl show -p Id -p UnitFileState -p ActiveState -p NeedDaemonReload \
                 -p DropInPaths {} 2>/dev/null); printf '%s\\n' \"$show\"; \
                 id=$(printf '%s\\n' \"$show\" | sed -n 's/^Id=//p'); \
                 for f in /etc/systemd/system/\"$id\".d/*.conf /run/systemd/system/\"$id\".d/*.conf; do \
                 [ -z \"$id\" ] || [ ! -e \"$f\" ] || printf 'DropInFile=%s\\n' \"$f\"; done",
                shell_quote(n)
            ),
            Some(n) => format!(
                "systemctl show -p UnitFileState -p ActiveState -p NeedDaemonReload {} 2>/dev/null",
                shell_quote(n)
            ),
            None => "echo none".into(),
        }
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let get = |p: &str| {
            seen.stdout
                .lines()
                .find_map(|l| l.strip_prefix(p))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let (enabled, active, need_reload) = (
            get("UnitFileState="),
            get("ActiveState="),
            get("NeedDaemonReload="),
        );
        let loaded = get("DropInPaths=");
        let loaded: Vec<&str> = loaded.split_whitespace().collect();
        let unseen_drop_in = seen
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("DropInFile="))
            .any(|f| !loaded.contains(&f.trim()));
        let mut c = Vec::new();
        if self.daemon_reload && (need_reload == "yes" || unseen_drop_in) {
            c.push(Change::DaemonReload);
        }
        match self.masked {
            Some(true) if enabled != "masked" => c.push(Change::Mask),
            Some(false) if enabled == "masked" => c.push(Change::Unmask),
            _ => {}
        }
        match self.enabled {
            // `static`, `alias` and `generated` units cannot be enabled and count as enabled.
            Some(true)
                if !matches!(
                    enabled.as_str(),
                    "enabled" | "static" | "alias" | "generated" | "enabled-runtime"
                ) =>
            {
                c.push(Change::Enable)
            }
            Some(false) if enabled == "enabled" => c.push(Change::Disable),
            _ => {}
        }
        let running = matches!(active.as_str(), "active" | "activating" | "reloading");
        match self.state {
            Some(State::Started) if !running => c.push(Change::Start),
            Some(State::Stopped) if running => c.push(Change::Stop),
            Some(State::Restarted) => c.push(Change::Restart),
            Some(State::Reloaded) => c.push(Change::Reload),
            _ => {}
        }
        Ok(c)
    }

    pub async fn apply(
        &self,
        ctx: &Context<'_>,
        changes: &[Change],
    ) -> Result<Applied, ModuleError> {
        let n = shell_quote(self.name.as_deref().unwrap_or_default());
        let reset = format!("systemctl reset-failed {n} 2>/dev/null || true; ");
        let mut s = String::from("set -e; ");
        for c in changes {
            s.push_str(&match c {
                Change::DaemonReload => "systemctl daemon-reload; ".to_string(),
                Change::Mask => format!("systemctl mask {n}; "),
                Change::Unmask => format!("systemctl unmask {n}; "),
                Change::Enable => format!("systemctl enable {n}; "),
                Change::Disable => format!("systemctl disable {n}; "),
                // A start asked for by the plan is deliberate, like an operator's: clear the
                // unit's start rate limit first, or a few config changes in a minute (docker
                // allows 3) leave it `start-limit-hit` and refusing.
                Change::Start => format!("{reset}systemctl start {n}; "),
                Change::Stop => format!("systemctl stop {n}; "),
                Change::Restart => format!("{reset}systemctl restart {n}; "),
                Change::Reload => format!("{reset}systemctl reload-or-restart {n}; "),
                _ => continue,
            });
        }
        let what = format!(
            "systemctl on `{}`",
            self.name.as_deref().unwrap_or("daemon")
        );
        ctx.run_ok(&what, &s, None).await?;
        Ok(Applied::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seen(s: &str) -> Seen {
        Seen {
            code: Some(0),
            stdout: s.into(),
        }
    }

    #[test]
    fn daemon_reload_when_systemd_or_the_drop_ins_say_so() {
        let conf = "/etc/systemd/system/docker.service.d/minipaas.conf";
        let run = "/run/systemd/system/docker.service.d/x.conf";
        let both = format!("/usr/lib/systemd/system/docker.service.d/a.conf {conf}");
        let show = |reload: &str, paths: &str| {
            format!(
                "Id=docker.service\nNeedDaemonReload={reload}\nDropInPaths={paths}\n\
                 UnitFileState=enabled\nActiveState=active\n"
            )
        };
        let cases = [
            // (what the probe printed, daemon-reload expected)
            (show("no", conf), false),
            (show("yes", conf), true),
            // systemd 252: a drop-in in a directory made since the last reload goes unseen.
            (format!("{}DropInFile={conf}\n", show("no", "")), true),
            (format!("{}DropInFile={conf}\n", show("no", conf)), false),
            (
                format!("{}DropInFile={conf}\nDropInFile={run}\n", show("no", &both)),
                true,
            ),
        ];
        let s = Systemd::new(&json!({"name": "docker", "daemon_reload": true})).unwrap();
        for (out, want) in cases {
            let got = s
                .check(&seen(&out))
                .unwrap()
                .contains(&Change::DaemonReload);
            assert_eq!(got, want, "{out}");
        }
        // Without daemon_reload a unit's files are not its business.
        let s = Systemd::new(&json!({"name": "docker", "state": "started"})).unwrap();
        let out = format!("{}DropInFile={conf}\n", show("yes", ""));
        assert!(s.check(&seen(&out)).unwrap().is_empty());
    }
}
