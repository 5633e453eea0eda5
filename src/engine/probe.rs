//! Batched probes: the read-only checks of many tasks run in one shell script, one round trip,
//! and their outputs are split apart again by a random boundary.

use crate::modules::Seen;

pub struct Batch {
    boundary: String,
    count: usize,
    script: String,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            boundary: format!("@@minipaas-{:016x}@@", rand::random::<u64>()),
            count: 0,
            script: String::new(),
        }
    }

    /// Adds a probe and returns its index in the batch.
    pub fn push(&mut self, probe: &str) -> usize {
        let i = self.count;
        let b = &self.boundary;
        // A subshell per probe: its `exit` ends only itself; no stdin, so nothing can block.
        self.script.push_str(&format!(
            "echo '{b} {i}'; ( {probe}\n) </dev/null 2>/dev/null; echo \"\n{b} end $?\"\n"
        ));
        self.count += 1;
        i
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn script(&self) -> &str {
        &self.script
    }

    /// Splits the script's stdout into one [`Seen`] per probe, in order. A probe whose part is
    /// missing (the script died) gets `None`.
    pub fn split(&self, stdout: &str) -> Vec<Option<Seen>> {
        let mut out: Vec<Option<Seen>> = vec![None; self.count];
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
                    if i < out.len() {
                        out[i] = Some(Seen {
                            code: code.trim().parse().ok(),
                            stdout: text,
                        });
                    }
                }
            } else if let Some(idx) = l.strip_prefix(&start) {
                current = idx.trim().parse().ok().map(|i| (i, String::new()));
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

    #[tokio::test]
    async fn round_trip_through_a_real_shell() {
        let mut b = Batch::new();
        b.push("echo one; echo two");
        b.push("printf 'no newline'");
        b.push("exit 3");
        b.push("echo x; exit 0; echo never");
        let t = crate::transport::LocalTransport::new("local");
        let out = t.exec(b.script(), None).await.unwrap();
        let parts = b.split(&out.stdout_str());
        let p = |i: usize| parts[i].clone().unwrap();
        assert_eq!(p(0).stdout, "one\ntwo\n");
        assert_eq!(p(1).stdout, "no newline");
        assert_eq!((p(2).stdout.as_str(), p(2).code), ("", Some(3)));
        assert_eq!(p(3).stdout, "x\n");
        assert_eq!(p(3).code, Some(0));
    }
}
