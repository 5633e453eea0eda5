//! playbooks/site.yaml: the plan loads (every key, module and import checked), and, on lab nodes
//! (tests named `lab_`), converges a real cluster.

use std::path::PathBuf;

use minipaas::plan::Plan;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn site_plan_loads_with_every_play() {
    let plan = Plan::load(
        &[root().join("playbooks/site.yaml")],
        &root().join("templates"),
    )
    .unwrap_or_else(|e| panic!("{}", minipaas::error::chain(&e)));
    let names: Vec<&str> = plan.plays.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "facts and defaults",
            "base system, logging, monitoring, Docker",
            "firewall",
            "firewall confirmation",
            "swarm init",
            "swarm join",
            "node labels, Caddy, swarm-cronjob",
        ]
    );
    // The confirmation must come over a new connection, right after the firewall play.
    assert!(plan.plays[3].reset_connection);
    assert!(plan.plays.iter().filter(|p| p.reset_connection).count() == 1);
    // Facts and defaults run whatever --tags selects.
    assert!(plan.plays[0]
        .tasks
        .iter()
        .all(|t| t.tags.iter().any(|x| x == "always")));
}
