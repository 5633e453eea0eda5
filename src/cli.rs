//! The command line: clap definitions and the dispatch to `commands`. Each command's arguments
//! live beside the command in `commands/`, so this file only names them.

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{self, Error};

#[derive(Debug, Parser)]
#[command(
    name = "minipaas",
    version,
    about = "Run a small production cluster on Docker Swarm"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a starter inventory.yaml and group_vars/all.yaml (and, with --playbooks, the
    /// built-in playbooks and templates to edit); never overwrites a file.
    Init(crate::commands::init::InitArgs),
    /// Converge hosts from an inventory with YAML plans, over SSH, in parallel.
    Provision(crate::commands::provision::ProvisionArgs),
    /// Throwaway clusters of real systemd+sshd nodes on the local Docker engine.
    #[command(subcommand)]
    Lab(crate::commands::lab::LabCommand),
    /// Build, ship and roll out an env's Compose files onto the Swarm; load its routes.
    #[command(subcommand)]
    Deploy(crate::commands::deploy::DeployCommand),
    /// Versioned Docker secrets: create, delete, prune.
    #[command(subcommand)]
    Secret(crate::commands::deploy::ObjectCommand),
    /// Versioned Docker configs: create, delete, prune.
    #[command(subcommand)]
    Config(crate::commands::deploy::ObjectCommand),
    /// A shell (or `-- COMMAND`) whose `docker` talks to the env's cluster.
    Shell(crate::commands::shell::ShellArgs),
    /// Certificates for the Docker API's mutual TLS: CA, server and client certificates, checks.
    #[command(subcommand)]
    Certs(crate::commands::certs::CertsCommand),
    /// Durable queues and streams in PostgreSQL: migrate, status, queue and stream administration.
    Sql(crate::commands::sql::SqlArgs),
    /// Write the deploy env: settings, compose override, runtime stack files, Caddy routes.
    #[command(subcommand)]
    Code(crate::commands::code::CodeCommand),
    /// Print the shell completion script for bash, zsh or fish (`minipaas completions bash >
    /// /etc/bash_completion.d/minipaas`).
    Completions(crate::commands::docs::CompletionsArgs),
    /// Print the man page, minipaas(1), in roff (`minipaas man | man -l -`).
    Man,
}

/// Runs one command; `Ok(code)` is the exit code when the command itself ran to its end.
pub async fn dispatch(cli: Cli) -> Result<i32, Error> {
    match cli.command {
        Command::Init(args) => commands::init::run(args),
        Command::Provision(args) => commands::provision::run(args).await,
        Command::Lab(cmd) => commands::lab::run(cmd).await,
        Command::Certs(cmd) => commands::certs::run(cmd),
        Command::Sql(args) => commands::sql::run(args).await,
        Command::Deploy(cmd) => commands::deploy::run(cmd).await,
        Command::Secret(cmd) => {
            commands::deploy::run_objects(crate::deploy::objects::ObjectKind::Secret, cmd).await
        }
        Command::Config(cmd) => {
            commands::deploy::run_objects(crate::deploy::objects::ObjectKind::Config, cmd).await
        }
        Command::Shell(args) => commands::shell::run(args),
        Command::Code(cmd) => commands::code::run(cmd),
        Command::Completions(args) => Ok(commands::docs::run_completions(args, Cli::command())?),
        Command::Man => Ok(commands::docs::run_man(Cli::command())?),
    }
}
