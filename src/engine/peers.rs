//! Connections to the hosts tasks are delegated to (`delegate_to`), opened on first use and
//! kept for the run: one SSH connection per delegate, however many hosts delegate to it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use crate::inventory::{Host, Inventory};
use crate::transport::{HostKeyPolicy, Transport};

use super::Options;

pub struct Peers {
    hosts: HashMap<String, Host>,
    known_hosts: Vec<PathBuf>,
    policy: HostKeyPolicy,
    connect_timeout: Duration,
    open: Mutex<HashMap<String, Arc<Transport>>>,
}

impl Peers {
    pub fn new(inventory: &Inventory, known_hosts: Vec<PathBuf>, opts: &Options) -> Peers {
        Peers {
            hosts: inventory
                .hosts
                .iter()
                .map(|h| (h.name.0.clone(), h.clone()))
                .collect(),
            known_hosts,
            policy: opts.host_key_policy,
            connect_timeout: opts.connect_timeout,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The inventory's host of that name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }

    /// The connection to `name`, opened now if it is not yet. Only hosts of the inventory:
    /// a rendered `delegate_to` cannot reach an address the inventory does not name.
    pub async fn get(&self, name: &str) -> Result<Arc<Transport>, String> {
        let host = self
            .hosts
            .get(name)
            .ok_or_else(|| format!("`delegate_to: {name}`: no such host in the inventory"))?;
        let mut open = self.open.lock().await;
        if let Some(t) = open.get(name) {
            return Ok(t.clone());
        }
        let t = super::open(host, &self.known_hosts, self.policy, self.connect_timeout)
            .await
            .map_err(|e| {
                format!(
                    "delegate `{name}` is unreachable: {}",
                    crate::error::chain(&e)
                )
            })?;
        let t = Arc::new(t);
        open.insert(name.to_string(), t.clone());
        Ok(t)
    }

    pub async fn close(&self) {
        for t in self.open.lock().await.values() {
            t.close().await;
        }
    }
}
