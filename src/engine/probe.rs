//! Batched probes: the read-only checks of many tasks run in one shell script, one round trip,
//! and their outputs are split apart again by a random boundary.
//!
//! Shell probes run each in a subshell of its own. Path and unit probes are gathered and
//! answered by one command of each kind for the whole batch (`modules::files::PathProbes`,
//! `modules::systemd::UnitProbes`), so that a no-op run starts a handful of processes on a host
//! rather than a few per task.

use crate::modules::files::PathProbes;
use crate::modules::systemd::UnitProbes;
use crate::modules::{Probe, Seen};

/// Where a probe's answer is found.
enum Slot {
    /// The section of that index.
    Shell(usize),
    /// The path of that index in `paths`; whether this probe asked for the content.
    Path { index: usize, content: bool },
    /// The unit of that index in `units`.
    Unit(usize),
}

pub struct Batch {
    boundary: String,
    slots: Vec<Slot>,
    shell: Vec<String>,
    paths: PathProbes,
    units: UnitProbes,
}

/// What one section of the script printed, and its exit code.
struct Section {
    code: Option<u32>,
    text: String,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            boundary: format!("@@minipaas-{:016x}@@", rand::random::<u64>()),
            slots: Vec::new(),
            shell: Vec::new(),
            paths: PathProbes::default(),
            units: UnitProbes::default(),
        }
    }

    /// Adds a probe and returns its index in the batch.
    pub fn push(&mut self, probe: Probe) -> usize {
        let slot = match probe {
            Probe::Shell(s) => {
                self.shell.push(s);
                Slot::Shell(self.shell.len() - 1)
            }
            Probe::Path { path, content } => Slot::Path {
                index: self.paths.add(&path, content),
                content,
            },
            Probe::Unit(u) => Slot::Unit(self.units.add(&u)),
        };
        self.slots.push(slot);
        self.slots.len() - 1
    }

    /// The whole script: every shell probe, then the three path scripts when any path is
    /// asked about, then the unit script when any unit is, each a section between markers.
    pub fn script(&self) -> String {
        let b = &self.boundary;
        let mut parts: Vec<(String, bool)> = self.shell.iter().map(|s| (s.clone(), true)).collect();
        if !self.paths.is_empty() {
            parts.extend(self.paths.scripts().into_iter().map(|s| (s, false)));
        }
        if !self.units.is_empty() {
            parts.push((self.units.script(), false));
        }
        let mut script = String::new();
        for (i, (part, subshell)) in parts.iter().enumerate() {
            // A subshell per shell probe: its `exit` ends only itself. The scripts of gathered
            // probes exit nowhere and run in this shell, which saves a process each. No stdin,
            // so nothing can block.
            let (open, close) = if *subshell { ("(", ")") } else { ("{", "}") };
            script.push_str(&format!(
                "echo '{b} {i}'; {open} {part}\n{close} </dev/null 2>/dev/null; echo \"\n{b} end $?\"\n"
            ));
        }
        script
    }

    /// Splits the script's stdout into one [`Seen`] per probe, in order. A probe whose part is
    /// missing (the script died) gets `None`.
    pub fn split(&self, stdout: &str) -> Vec<Option<Seen>> {
        let sections = self.sections_of(stdout);
        let section = |i: usize| sections.get(i).and_then(Option::as_ref);
        let n = self.shell.len();
        let paths = if self.paths.is_empty() {
            None
        } else {
            match (section(n), section(n + 1), section(n + 2)) {
                (Some(stat), Some(sums), Some(data)) => {
                    Some(self.paths.parse(&stat.text, &sums.text, &data.text))
                }
                _ => None,
            }
        };
        let units_at = if self.paths.is_empty() { n } else { n + 3 };
        let units = if self.units.is_empty() {
            None
        } else {
            section(units_at).map(|s| self.units.parse(&s.text))
        };
        self.slots
            .iter()
            .map(|slot| match slot {
                Slot::Shell(i) => section(*i).map(|s| Seen::Output {
                    code: s.code,
                    stdout: s.text.clone(),
                }),
                Slot::Path { index, content } => paths.as_ref().map(|p| {
                    let mut st = p[*index].clone();
                    // Another task may have asked for the content of the same path.
                    if let (Ok(st), false) = (&mut st, content) {
                        st.content = None;
                    }
                    Seen::Path(st)
                }),
                Slot::Unit(i) => units.as_ref().map(|u| Seen::Unit(u[*i].clone())),
            })
            .collect()
    }

    /// How many sections the script has: one per shell probe, three for the paths, one for
    /// the units.
    fn section_count(&self) -> usize {
        let paths = if self.paths.is_empty() { 0 } else { 3 };
        let units = usize::from(!self.units.is_empty());
        self.shell.len() + paths + units
    }

    /// What each section printed; `None` for a section whose end is missing. The host's output
    /// is untrusted (it sees the boundary in the script): a marker with an index the script
    /// does not have starts no section, so it can neither overflow nor grow the list.
    fn sections_of(&self, stdout: &str) -> Vec<Option<Section>> {
        let count = self.section_count();
        let mut out: Vec<Option<Section>> = Vec::new();
        out.resize_with(count, || None);
        let mut current: Option<(usize, String)> = None;
        let start = format!("{} ", self.boundary);
        let end = format!("{} end ", self.boundary);
        for line in stdout.split_inclusive('\n') {
            let l = line.trim_end_matches('\n');
            if let Some(code) = l.strip_prefix(&end) {
                if let Some((i, mut text)) = current.take() {
                    // Drop the newline our `echo` added before the end marker.
                    if text.ends_with('\n') {
                        text.pop();
                    }
                    out[i] = Some(Section {
                        code: code.trim().parse().ok(),
                        text,
                    });
                }
            } else if let Some(idx) = l.strip_prefix(&start) {
                current = idx
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&i| i < count)
                    .map(|i| (i, String::new()));
            } else if let Some((_, text)) = current.as_mut() {
                text.push_str(line);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::files::Kind;

    #[tokio::test]
    async fn round_trip_through_a_real_shell() {
        let mut b = Batch::new();
        b.push(Probe::Shell("echo one; echo two".into()));
        b.push(Probe::Shell("printf 'no newline'".into()));
        b.push(Probe::Shell("exit 3".into()));
        b.push(Probe::Shell("echo x; exit 0; echo never".into()));
        let t = crate::transport::LocalTransport::new("local");
        let out = t.exec(&b.script(), None).await.unwrap();
        let parts = b.split(&out.stdout_str());
        let p = |i: usize| match parts[i].clone().unwrap() {
            Seen::Output { code, stdout } => (stdout, code),
            other => panic!("{other:?}"),
        };
        assert_eq!(p(0).0, "one\ntwo\n");
        assert_eq!(p(1).0, "no newline");
        assert_eq!(p(2), ("".into(), Some(3)));
        assert_eq!(p(3), ("x\n".into(), Some(0)));
    }

    /// Shell, path and unit probes in one script: each answer reaches its own probe, and a
    /// path asked about twice is asked once, its content only given where asked for.
    #[tokio::test]
    async fn probes_of_every_kind_in_one_script() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x\n").unwrap();
        let file = file.to_str().unwrap().to_string();
        let mut b = Batch::new();
        b.push(Probe::Path {
            path: file.clone(),
            content: false,
        });
        b.push(Probe::Shell("echo shell".into()));
        b.push(Probe::Unit("minipaas-test-none.service".into()));
        b.push(Probe::Path {
            path: file.clone(),
            content: true,
        });
        b.push(Probe::Path {
            path: format!("{file}.missing"),
            content: true,
        });
        let script = b.script();
        assert_eq!(script.matches("stat --printf").count(), 1);
        let t = crate::transport::LocalTransport::new("local");
        let out = t.exec(&script, None).await.unwrap();
        let parts: Vec<Seen> = b
            .split(&out.stdout_str())
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let path = |i: usize| match &parts[i] {
            Seen::Path(Ok(st)) => st.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(path(0).kind, Kind::File);
        assert_eq!(path(0).content, None);
        assert_eq!(path(3).content.as_deref(), Some(&b"x\n"[..]));
        assert_eq!(path(4).kind, Kind::Missing);
        assert!(matches!(&parts[1], Seen::Output { stdout, .. } if stdout == "shell\n"));
        // systemd may not run here: an unknown unit or no systemctl, an answer either way.
        assert!(matches!(&parts[2], Seen::Unit(Ok(_))), "{:?}", parts[2]);
    }

    /// Markers a hostile host prints itself: indices past the script's sections (once an
    /// overflow or a huge allocation) and sizes that do not add up are errors, not panics.
    #[test]
    fn hostile_markers_and_sizes_are_errors() {
        let mut b = Batch::new();
        b.push(Probe::Shell("true".into()));
        b.push(Probe::Path {
            path: "/a".into(),
            content: true,
        });
        b.push(Probe::Path {
            path: "/b".into(),
            content: true,
        });
        let m = b.boundary.clone();
        for idx in ["18446744073709551615", "99999999999", "5", "-1"] {
            let out = format!("{m} {idx}\nx\n{m} end 0\n");
            let parts = b.split(&out);
            assert!(parts.iter().all(Option::is_none), "{idx}: {parts:?}");
        }
        use base64::Engine;
        let hi = crate::modules::files::sha256_hex(b"hi");
        for size in ["18446744073709551615", "18446744073709551616", "-1", "1e9"] {
            let stat = format!(
                "81a4 644 root root 0 0 2 /a\0/a\0\
                 81a4 644 root root 0 0 {size} /b\0/b\0"
            );
            let sums = format!("{hi}  /a\n{hi}  /b\n");
            let data = format!(
                " 0 1\n{}",
                base64::engine::general_purpose::STANDARD.encode(b"hihi")
            );
            let out = format!(
                "{m} 0\n\n{m} end 0\n{m} 1\n{stat}\n{m} end 0\n{m} 2\n{sums}\n{m} end 0\n\
                 {m} 3\n{data}\n{m} end 0\n"
            );
            let parts = b.split(&out);
            let Some(Seen::Path(Err(e))) = &parts[2] else {
                panic!("{size}: {:?}", parts[2]);
            };
            assert!(e.to_string().contains("/b"), "{size}: {e}");
        }
    }
}
