//! The plans and scripts deploy operations run through the engine, embedded in the binary
//! (src/deploy/plans/): each is a YAML plan like the user's, so it reports ok/changed per task,
//! redacts secrets, honours `--check` and is idempotent by construction.

pub(super) const ROLLOUT: &str = include_str!("plans/rollout.yaml");
pub(super) const ROUTING: &str = include_str!("plans/routing.yaml");
pub(super) const IMAGES: &str = include_str!("plans/images.yaml");
pub(super) const OBJECT: &str = include_str!("plans/object.yaml");
pub(super) const PRUNE: &str = include_str!("plans/prune.yaml");
pub(super) const HISTORY: &str = include_str!("plans/history.yaml");
pub(super) const SMOKE: &str = include_str!("plans/smoke.yaml");
pub(super) const RESTART: &str = include_str!("plans/restart.yaml");
pub(super) const SCALE: &str = include_str!("plans/scale.yaml");
pub(super) const REMOVE: &str = include_str!("plans/remove.yaml");
pub(super) const PRUNE_SH: &str = include_str!("plans/prune.sh");
pub(super) const SMOKE_SH: &str = include_str!("plans/smoke.sh");
pub(super) const LIFECYCLE_SH: &str = include_str!("plans/lifecycle.sh");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Plan;

    #[test]
    fn embedded_plans_load() {
        for (name, text) in [
            ("rollout.yaml", ROLLOUT),
            ("routing.yaml", ROUTING),
            ("images.yaml", IMAGES),
            ("object.yaml", OBJECT),
            ("prune.yaml", PRUNE),
            ("history.yaml", HISTORY),
            ("smoke.yaml", SMOKE),
            ("restart.yaml", RESTART),
            ("scale.yaml", SCALE),
            ("remove.yaml", REMOVE),
        ] {
            let plan = Plan::from_text(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!plan.plays.is_empty(), "{name}");
        }
    }
}
