//! A play's `serial` and failure budget, as Ansible reads them.

use serde_json::Value;

/// One `serial` entry: a count of hosts or a percentage of the play's hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Hosts(usize),
    Percent(u8),
}

impl BatchSize {
    /// The hosts this entry takes out of a play of `total`: a percentage rounds down, and a
    /// batch never has fewer than one host.
    pub fn of(self, total: usize) -> usize {
        match self {
            BatchSize::Hosts(n) => n.max(1),
            BatchSize::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

/// Splits `hosts` into the batches `serial` asks for, in order.
pub fn batches<T: Clone>(hosts: &[T], serial: &[BatchSize]) -> Vec<Vec<T>> {
    if serial.is_empty() {
        return vec![hosts.to_vec()];
    }
    let mut out = Vec::new();
    let mut at = 0;
    let mut sizes = serial.iter();
    let mut size = serial[0];
    while at < hosts.len() {
        if let Some(s) = sizes.next() {
            size = *s;
        }
        let n = size.of(hosts.len()).min(hosts.len() - at);
        out.push(hosts[at..at + n].to_vec());
        at += n;
    }
    out
}

fn batch_size(v: &Value) -> Result<BatchSize, String> {
    let percent = |t: &str| -> Option<BatchSize> {
        let n: u8 = t.strip_suffix('%')?.trim().parse().ok()?;
        (1..=100).contains(&n).then_some(BatchSize::Percent(n))
    };
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(n) if n >= 1 => Ok(BatchSize::Hosts(n as usize)),
            _ => Err(format!("`serial` sizes are at least 1, found `{n}`")),
        },
        Value::String(t) => percent(t)
            .or_else(|| {
                t.trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(BatchSize::Hosts)
            })
            .ok_or_else(|| format!("`serial` takes a number or a percentage (`30%`), found `{t}`")),
        other => Err(format!(
            "`serial` takes a number or a percentage (`30%`), found `{other}`"
        )),
    }
}

pub(super) fn serial(v: Option<&Value>) -> Result<Vec<BatchSize>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) if a.is_empty() => Err("`serial` lists at least one size".into()),
        Some(Value::Array(a)) => a.iter().map(batch_size).collect(),
        Some(one) => Ok(vec![batch_size(one)?]),
    }
}

pub(super) fn max_fail_percentage(v: Option<&Value>) -> Result<Option<u8>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let n = match v {
                Value::Number(n) => n.as_u64(),
                Value::String(t) => t.trim().trim_end_matches('%').parse().ok(),
                _ => None,
            };
            match n {
                Some(n) if n <= 100 => Ok(Some(n as u8)),
                _ => Err(format!(
                    "`max_fail_percentage` is a number from 0 to 100, found `{v}`"
                )),
            }
        }
    }
}
