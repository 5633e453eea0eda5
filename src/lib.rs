//! minipaas: one binary that provisions plain Debian/Ubuntu servers into a Docker Swarm cluster,
//! deploys Compose files onto it, installs durable queues and streams into PostgreSQL, issues the
//! Docker API's certificates and runs throwaway lab clusters.
//!
//! The binary is a thin shell over this library: `main` calls [`run`], which parses the command
//! line and hands it to `cli::dispatch`, which calls [`commands`]. Dependencies point one way:
//! cli -> commands -> deploy|sql|lab|certs|progress -> engine -> plan -> modules -> transport,
//! then the leaves (inventory, role, template, source, error); tests/architecture.rs checks
//! it, and that no module depends on itself through others.

pub mod certs;
pub mod cli;
pub mod commands;
pub mod deploy;
pub mod engine;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod inventory;
pub mod lab;
pub mod modules;
pub mod plan;
pub mod progress;
pub mod role;
pub mod source;
pub mod sql;
pub mod swarm;
pub mod template;
pub mod transport;

pub use commands::Error;

use clap::Parser;

/// Parses the command line, runs the command and returns the process exit code:
/// 0 success, 1 a host or an operation failed, 2 bad usage or bad input found before acting.
pub fn run() -> i32 {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error::chain(&e));
            e.exit_code()
        }
    }
}
