//! Renders a lab's inventory file: the shape the provision engine reads, with the lab's key and
//! known_hosts given relative to the inventory's own directory (`inventories/`).
//!
//! Writing only; reading inventories belongs to the inventory library.

use std::fmt::Write as _;

use super::Node;

/// The inventory text for lab `name`: the first `managers` nodes in group `managers`, the rest in
/// `workers`. Deterministic, so an unchanged lab renders byte-identical text.
pub fn render(name: &str, nodes: &[Node], managers: usize) -> String {
    let mut s = format!(
        "# written by `minipaas lab up --name {name}`; `minipaas lab down --name {name}` removes the lab\n\
         all:\n  user: root\n  key: ../.minipaas/lab/{name}/id_ed25519\n  known_hosts: ../.minipaas/lab/{name}/known_hosts\n\
         groups:\n"
    );
    let (heads, rest) = nodes.split_at(managers.min(nodes.len()));
    for (group, members) in [("managers", heads), ("workers", rest)] {
        // `write!` into a String cannot fail.
        let _ = writeln!(s, "  {group}:");
        if members.is_empty() {
            let _ = writeln!(s, "    hosts: {{}}");
            continue;
        }
        let _ = writeln!(s, "    hosts:");
        for n in members {
            let _ = writeln!(
                s,
                "      {}:\n        address: 127.0.0.1\n        port: {}\n        private_address: {}",
                n.name, n.ssh_port, n.private_address
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(i: u16) -> Node {
        Node {
            name: format!("node{i}"),
            container: format!("lab-node{i}"),
            ssh_port: 40000 + i,
            private_address: format!("172.28.0.{}", i + 1),
        }
    }

    #[test]
    fn renders_the_contract_shape() {
        let text = render("lab", &[node(1), node(2), node(3)], 1);
        assert_eq!(
            text,
            "# written by `minipaas lab up --name lab`; `minipaas lab down --name lab` removes the lab
all:
  user: root
  key: ../.minipaas/lab/lab/id_ed25519
  known_hosts: ../.minipaas/lab/lab/known_hosts
groups:
  managers:
    hosts:
      node1:
        address: 127.0.0.1
        port: 40001
        private_address: 172.28.0.2
  workers:
    hosts:
      node2:
        address: 127.0.0.1
        port: 40002
        private_address: 172.28.0.3
      node3:
        address: 127.0.0.1
        port: 40003
        private_address: 172.28.0.4
"
        );
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(parsed["groups"]["workers"]["hosts"]["node3"]["port"], 40003);
    }

    #[test]
    fn an_all_manager_lab_has_an_empty_workers_group() {
        let text = render("x", &[node(1)], 1);
        let parsed: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert!(parsed["groups"]["workers"]["hosts"]
            .as_mapping()
            .unwrap()
            .is_empty());
        assert_eq!(parsed["all"]["key"], "../.minipaas/lab/x/id_ed25519");
    }
}
