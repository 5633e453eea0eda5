//! Commands: each turns its arguments into work for the engine (or, for `lab` and `certs`, does
//! its own local work) and returns an exit code.

pub mod certs;
pub mod code;
pub mod deploy;
pub mod docs;
pub mod init;
pub mod lab;
pub mod provision;
pub mod release;
pub mod shell;
pub mod sql;

use crate::cli::{Cli, Command};
use crate::Error;

/// Runs one command; `Ok(code)` is the exit code when the command itself ran to its end.
pub async fn dispatch(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Provision(args) => provision::run(args).await,
        Command::Lab(cmd) => lab::run(cmd).await,
        Command::Certs(cmd) => certs::run(cmd),
        Command::Sql(args) => sql::run(args).await,
        Command::Deploy(cmd) => deploy::run(cmd).await,
        Command::Secret(cmd) => {
            deploy::run_objects(crate::deploy::ops::ObjectKind::Secret, cmd).await
        }
        Command::Config(cmd) => {
            deploy::run_objects(crate::deploy::ops::ObjectKind::Config, cmd).await
        }
        Command::Shell(args) => shell::run(args),
        Command::Code(cmd) => code::run(cmd),
        Command::Completions(args) => Ok(docs::run_completions(args)?),
        Command::Man => Ok(docs::run_man()?),
    }
}
