//! `minipaas deploy` and friends: Compose files onto the Swarm.
pub mod ops;
