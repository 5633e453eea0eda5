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
use super::{Applied, Change, ModuleError, Probe, Seen};

/// The properties a check reads. One `systemctl show` answers for every unit of a batch:
/// systemctl is the slowest thing a no-op run starts on a host.
const PROPERTIES: &str = "-p Id -p UnitFileState -p ActiveState -p NeedDaemonReload -p DropInPaths";

/// Lists the drop-in files on disk, one `DropInFile=PATH` line each, with shell builtins only.
const DROP_INS_ON_DISK: &str =
    "for f in /etc/systemd/system/*.d/*.conf /run/systemd/system/*.d/*.conf; \
     do if [ -e \"$f\" ]; then echo \"DropInFile=$f\"; fi; done";

/// systemd's view of a unit; empty strings where systemd has no value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// `enabled`, `disabled`, `static`, `masked`, ...
    pub file_state: String,
    /// `active`, `inactive`, `failed`, ...
    pub active: String,
    /// `yes` when the unit's files changed on disk since systemd read them.
    pub need_reload: String,
    /// A drop-in on disk that systemd has not loaded, which `need_reload` misses in systemd 252.
    pub unseen_drop_in: bool,
}

impl UnitState {
    /// Reads `Key=value` lines as `systemctl show` prints them for one unit; `on_disk`: the
    /// drop-in files found in /etc/systemd/system and /run/systemd/system.
    pub fn parse(text: &str, on_disk: &[&str]) -> UnitState {
        let get = |p: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(p))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let id = get("Id=");
        let loaded = get("DropInPaths=");
        let loaded: Vec<&str> = loaded.split_whitespace().collect();
        let dirs = [
            format!("/etc/systemd/system/{id}.d/"),
            format!("/run/systemd/system/{id}.d/"),
        ];
        let unseen_drop_in = !id.is_empty()
            && on_disk
                .iter()
                .any(|f| dirs.iter().any(|d| f.starts_with(d.as_str())) && !loaded.contains(f));
        UnitState {
            file_state: get("UnitFileState="),
            active: get("ActiveState="),
            need_reload: get("NeedDaemonReload="),
            unseen_drop_in,
        }
    }
}

/// The unit probes of one batch, answered by one `systemctl show` for all of them.
#[derive(Debug, Default)]
pub struct UnitProbes {
    units: Vec<String>,
}

/// Precedes each unit's answer when the units are asked one by one: no `Key=value` line
/// starts with it.
const ONE_BY_ONE: &str = "#unit";

impl UnitProbes {
    /// Adds a probe of `unit` (a name, not a pattern); returns its index.
    pub fn add(&mut self, unit: &str) -> usize {
        if let Some(i) = self.units.iter().position(|u| u == unit) {
            return i;
        }
        self.units.push(unit.to_string());
        self.units.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.units.is_empty()
    }

    /// A read-only script for [`UnitProbes::parse`]: the drop-in files on disk, then
    /// `systemctl show`, which answers in the order asked, a blank line between units; a name
    /// it refuses fails the whole call, and then each unit is asked on its own, as a probe of
    /// one unit would have been.
    pub fn script(&self) -> String {
        let units: Vec<String> = self.units.iter().map(|u| shell_quote(u)).collect();
        let units = units.join(" ");
        format!(
            "{DROP_INS_ON_DISK}; systemctl show {PROPERTIES} -- {units} || for u in {units}; \
             do echo '{ONE_BY_ONE}'; systemctl show {PROPERTIES} -- \"$u\"; done"
        )
    }

    /// Each unit's state, in [`UnitProbes::add`] order.
    pub fn parse(&self, text: &str) -> Vec<Result<UnitState, String>> {
        let n = self.units.len();
        let on_disk: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("DropInFile="))
            .collect();
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("DropInFile="))
            .map(|l| format!("{l}\n"))
            .collect();
        let blocks: Vec<&str> = if text.lines().any(|l| l == ONE_BY_ONE) {
            // What the failed call printed before the first marker is not an answer.
            text.split(&format!("{ONE_BY_ONE}\n")).skip(1).collect()
        } else {
            text.split("\n\n")
                .filter(|b| !b.trim().is_empty())
                .collect()
        };
        if blocks.len() != n {
            let e = format!(
                "`systemctl show` answered {} times for {n} units: `{}`",
                blocks.len(),
                text.trim()
            );
            return vec![Err(e); n];
        }
        blocks
            .into_iter()
            .map(|b| Ok(UnitState::parse(b, &on_disk)))
            .collect()
    }
}

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

    pub fn probe(&self) -> Probe {
        match &self.name {
            // A pattern may stand for several units, which `systemctl show` answers after all
            // the plain names, so it is asked on its own.
            Some(n) if n.contains(['*', '?', '[']) => {
                Probe::Shell(format!("systemctl show {PROPERTIES} -- {}", shell_quote(n)))
            }
            Some(n) => Probe::Unit(n.clone()),
            None => Probe::Shell("echo none".into()),
        }
    }

    pub fn check(&self, seen: &Seen) -> Result<Vec<Change>, ModuleError> {
        let st = match seen {
            Seen::Unit(Ok(st)) => st.clone(),
            Seen::Unit(Err(message)) => {
                return Err(ModuleError::Probe {
                    message: message.clone(),
                })
            }
            // A pattern's units: no drop-in is read for them.
            other => UnitState::parse(other.output()?, &[]),
        };
        let UnitState {
            file_state: enabled,
            active,
            need_reload,
            unseen_drop_in,
        } = st;
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

    fn units(names: &[&str]) -> UnitProbes {
        let mut u = UnitProbes::default();
        for n in names {
            u.add(n);
        }
        u
    }

    #[test]
    fn one_answer_for_many_units() {
        let u = units(&["a.service", "b", "a.service"]);
        assert_eq!(u.units.len(), 2);
        let text = "ActiveState=active\nUnitFileState=enabled\nNeedDaemonReload=no\n\n\
                    ActiveState=inactive\nUnitFileState=\nNeedDaemonReload=yes\n";
        let got = u.parse(text);
        assert_eq!(
            got[0].clone().unwrap(),
            UnitState {
                file_state: "enabled".into(),
                active: "active".into(),
                need_reload: "no".into(),
                unseen_drop_in: false,
            }
        );
        assert_eq!(got[1].clone().unwrap().need_reload, "yes");
        // Too few answers: none can be placed.
        assert!(u.parse("ActiveState=active\n").iter().all(Result::is_err));
    }

    #[test]
    fn units_asked_one_by_one_after_a_refused_name() {
        let u = units(&["good", "bad@"]);
        let text = "#unit\nActiveState=active\nUnitFileState=enabled\nNeedDaemonReload=no\n#unit\n";
        let got = u.parse(text);
        assert_eq!(got[0].clone().unwrap().active, "active");
        assert_eq!(got[1].clone().unwrap(), UnitState::default());
        let s = u.script();
        assert!(s.contains("-- good bad@ ||"), "{s}");
    }

    #[test]
    fn checks_the_state_it_was_given() {
        let m = Systemd::new(&json!({"name": "x", "enabled": true, "state": "started",
                                     "daemon_reload": true}))
        .unwrap();
        assert_eq!(m.probe(), Probe::Unit("x".into()));
        let seen = Seen::Unit(Ok(UnitState {
            file_state: "disabled".into(),
            active: "inactive".into(),
            need_reload: "yes".into(),
            unseen_drop_in: false,
        }));
        assert_eq!(
            m.check(&seen).unwrap(),
            [Change::DaemonReload, Change::Enable, Change::Start]
        );
        let seen = Seen::Unit(Ok(UnitState {
            file_state: "static".into(),
            active: "active".into(),
            need_reload: "no".into(),
            unseen_drop_in: false,
        }));
        assert!(m.check(&seen).unwrap().is_empty());
        let pattern = Systemd::new(&json!({"name": "x@*", "state": "started"})).unwrap();
        assert!(matches!(pattern.probe(), Probe::Shell(_)));
    }

    /// What the batched probe of one unit answers, given what its script printed.
    fn seen(s: &str) -> Seen {
        Seen::Unit(units(&["docker"]).parse(s).remove(0))
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
