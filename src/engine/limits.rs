//! Parallelism limits, named so every place that waits says what it waits for.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// The most hosts in flight at once, whatever `--forks` asks.
pub const MAX_FORKS: usize = 64;

#[derive(Clone)]
pub struct Limits {
    /// Hosts being worked on at once (`--forks`).
    pub hosts: Arc<Semaphore>,
}

impl Limits {
    /// `forks` of 0 means every host, capped at [`MAX_FORKS`].
    pub fn new(forks: usize, host_count: usize) -> Limits {
        let n = if forks == 0 { host_count } else { forks };
        Limits {
            hosts: Arc::new(Semaphore::new(n.clamp(1, MAX_FORKS))),
        }
    }
}
