//! The top-level error: one variant per layer, each carrying that layer's own error with its
//! context. Decides the exit code; never formats secrets (layers redact before they get here).

use std::error::Error as StdError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    #[error(transparent)]
    Init(#[from] crate::commands::init::InitError),
    #[error(transparent)]
    Provision(#[from] crate::commands::provision::ProvisionError),
    #[error(transparent)]
    Lab(#[from] crate::commands::lab::LabError),
    #[error(transparent)]
    Certs(#[from] crate::certs::CertsError),
    #[error(transparent)]
    Sql(#[from] crate::commands::sql::SqlCommandError),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
    #[error(transparent)]
    DeployCommand(#[from] crate::commands::deploy::DeployCommandError),
    #[error(transparent)]
    Shell(#[from] crate::commands::shell::ShellError),
    #[error(transparent)]
    Docs(#[from] crate::commands::docs::DocsError),
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

/// `outer: inner: innermost`, skipping a source whose text its parent already contains
/// (thiserror's `transparent` and `{source}` formats would otherwise print it twice).
pub fn chain(err: &dyn StdError) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
