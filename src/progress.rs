//! Progress: the only writer to the terminal during a run. Consumes engine events: on a TTY an
//! indicatif line per host with its current task, otherwise plain lines; then the recap table.
//! With `--format json` it stays silent and the command prints the recap as JSON.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::engine::{Event, Recap, Status, TaskReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub struct Progress {
    format: Format,
    /// Print ok and skipped tasks too, not only changes and failures.
    verbose: bool,
}

impl Progress {
    pub fn new(format: Format, verbose: bool) -> Progress {
        Progress { format, verbose }
    }

    /// Consumes events until the engine drops its sender.
    pub async fn render(self, mut rx: UnboundedReceiver<Event>) {
        let tty = std::io::stderr().is_terminal() && self.format == Format::Human;
        let multi = MultiProgress::new();
        let mut bars: HashMap<String, ProgressBar> = HashMap::new();
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        while let Some(ev) = rx.recv().await {
            if let Event::Notice(text) = &ev {
                self.print(&multi, tty, text);
                continue;
            }
            if self.format == Format::Json {
                continue;
            }
            match ev {
                Event::RunStart { hosts } if tty => {
                    for h in hosts {
                        let b = multi.add(ProgressBar::new_spinner());
                        b.set_style(style.clone());
                        b.set_prefix(h.0.clone());
                        b.enable_steady_tick(std::time::Duration::from_millis(120));
                        bars.insert(h.0, b);
                    }
                }
                Event::PlayStart { name, hosts } => {
                    let line = format!("play `{name}` on {} host(s)", hosts.len());
                    self.print(&multi, tty, &line);
                }
                Event::TaskStart { host, task } => {
                    if let Some(b) = bars.get(&host.0) {
                        b.set_message(task.0);
                    }
                }
                Event::TaskDone(r) => {
                    if let Some(line) = self.task_line(&r) {
                        self.print(&multi, tty, &line);
                    }
                }
                Event::Unreachable { host, error } => {
                    self.print(&multi, tty, &format!("{host}: UNREACHABLE: {error}"));
                    if let Some(b) = bars.get(&host.0) {
                        b.finish_with_message("unreachable");
                    }
                }
                Event::HostDone { host } => {
                    if let Some(b) = bars.remove(&host.0) {
                        b.finish_and_clear();
                    }
                }
                Event::BatchStart {
                    play,
                    number,
                    of,
                    hosts,
                } => {
                    let names: Vec<&str> = hosts.iter().map(|h| h.0.as_str()).collect();
                    let line = format!(
                        "play `{play}`: batch {number} of {of}: {}",
                        names.join(", ")
                    );
                    self.print(&multi, tty, &line);
                }
                Event::RunStopped { why, not_started } => {
                    let mut line = format!("run stopped: {why}");
                    if !not_started.is_empty() {
                        let names: Vec<&str> = not_started.iter().map(|h| h.0.as_str()).collect();
                        line.push_str(&format!("; never started: {}", names.join(", ")));
                    }
                    self.print(&multi, tty, &line);
                    for h in &not_started {
                        if let Some(b) = bars.remove(&h.0) {
                            b.finish_and_clear();
                        }
                    }
                }
                _ => {}
            }
        }
        for b in bars.values() {
            b.finish_and_clear();
        }
    }

    fn print(&self, multi: &MultiProgress, tty: bool, line: &str) {
        if tty {
            let _ = multi.println(line);
        } else {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }

    fn task_line(&self, r: &TaskReport) -> Option<String> {
        let handler = if r.handler { " (handler)" } else { "" };
        let mut line = match r.status {
            Status::Changed => format!(
                "{}: {}{handler}: changed: {}",
                r.host,
                r.task,
                r.changes.join(", ")
            ),
            Status::Failed => format!(
                "{}: task `{}`{handler} ({}): {}: {}",
                r.host,
                r.task,
                r.at,
                if r.ignored {
                    "failed (ignored)"
                } else {
                    "FAILED"
                },
                r.error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            Status::Ok if self.verbose || r.message.is_some() => {
                let msg = r
                    .message
                    .clone()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                format!("{}: {}{handler}: ok{msg}", r.host, r.task)
            }
            Status::Skipped if self.verbose => format!("{}: {}: skipped", r.host, r.task),
            _ => return None,
        };
        if let Some(d) = &r.diff {
            line.push('\n');
            line.push_str(d.trim_end());
        }
        Some(line)
    }
}

/// The recap table, as a string (so callers choose the stream).
pub fn recap_table(recap: &Recap) -> String {
    let w = recap
        .hosts
        .keys()
        .map(|h| h.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut s = format!(
        "\n{:<w$}  {:>4}  {:>7}  {:>6}  {:>7}  {:>11}  {:>7}\n",
        "host", "ok", "changed", "failed", "skipped", "unreachable", "time"
    );
    for (h, r) in &recap.hosts {
        s.push_str(&format!(
            "{:<w$}  {:>4}  {:>7}  {:>6}  {:>7}  {:>11}  {:>6.1}s\n",
            h,
            r.ok,
            r.changed,
            r.failed,
            r.skipped,
            if r.unreachable { "yes" } else { "no" },
            r.duration_ms as f64 / 1000.0
        ));
    }
    if let Some(why) = &recap.stopped {
        s.push_str(&format!("run stopped: {why}\n"));
        let names = |f: fn(&crate::engine::HostRecap) -> bool| -> Vec<&str> {
            recap
                .hosts
                .iter()
                .filter(|(_, r)| f(r))
                .map(|(h, _)| h.as_str())
                .collect()
        };
        for (what, hosts) in [
            ("never started", names(|r| r.not_started)),
            ("later plays not run on", names(|r| r.unfinished)),
        ] {
            if !hosts.is_empty() {
                s.push_str(&format!("{what}: {}\n", hosts.join(", ")));
            }
        }
    }
    s.push_str(&format!(
        "{} host(s), {} changed, {:.1}s\n",
        recap.hosts.len(),
        recap.changed(),
        recap.duration_ms as f64 / 1000.0
    ));
    s
}
