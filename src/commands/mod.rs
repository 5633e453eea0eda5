//! Commands: each turns its arguments into work for the engine (or, for `lab` and `certs`, does
//! its own local work) and returns an exit code. `cli` parses the command line and calls them.

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

/// The error of a command: one variant per layer, each carrying that layer's own error with its
/// context. Decides the exit code; never formats secrets (layers redact before they get here).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    #[error(transparent)]
    Init(#[from] init::InitError),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error(transparent)]
    Lab(#[from] lab::LabError),
    #[error(transparent)]
    Certs(#[from] crate::certs::CertsError),
    #[error(transparent)]
    Sql(#[from] sql::SqlCommandError),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
    #[error(transparent)]
    DeployCommand(#[from] deploy::DeployCommandError),
    #[error(transparent)]
    Shell(#[from] shell::ShellError),
    #[error(transparent)]
    Docs(#[from] docs::DocsError),
}

impl Error {
    /// 2 for input the user can fix before anything ran, 1 for failures while acting.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Transport(_) => 1,
            Error::Init(e) => e.exit_code(),
            Error::Provision(_) => 2,
            Error::Lab(e) => e.exit_code(),
            Error::Certs(e) => e.exit_code(),
            Error::Sql(e) => e.exit_code(),
            Error::Deploy(e) => e.exit_code(),
            Error::DeployCommand(e) => e.exit_code(),
            Error::Shell(_) => 2,
            Error::Docs(_) => 1,
        }
    }
}
