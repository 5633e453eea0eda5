//! `minipaas completions SHELL` and `minipaas man`: the shell completion script and the man page,
//! generated from the clap definitions `cli.rs` hands over (`Cli::command()`), so they always
//! list the commands and flags this binary has. They write to standard output and touch nothing
//! else.

use std::io::Write;

/// A shell `minipaas completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: Shell,
}

#[derive(Debug, thiserror::Error)]
pub enum DocsError {
    #[error("cannot write the {what} to standard output")]
    Write {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// The completion script for `shell`, for `minipaas` as `cli` (clap) defines it.
pub fn completions(shell: Shell, mut cli: clap::Command) -> Vec<u8> {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cli, "minipaas", &mut out);
    out
}

/// The man page, minipaas(1), in roff; every subcommand is listed in it.
pub fn man_page(cli: clap::Command) -> Result<Vec<u8>, std::io::Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cli).render(&mut out)?;
    Ok(out)
}

pub fn run_completions(args: CompletionsArgs, cli: clap::Command) -> Result<i32, DocsError> {
    write("completion script", &completions(args.shell, cli))
}

pub fn run_man(cli: clap::Command) -> Result<i32, DocsError> {
    let page = man_page(cli).map_err(|source| DocsError::Write {
        what: "man page",
        source,
    })?;
    write("man page", &page)
}

fn write(what: &'static str, bytes: &[u8]) -> Result<i32, DocsError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|source| DocsError::Write { what, source })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::CommandFactory;

    #[test]
    fn completions_name_every_subcommand() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.len() > 5, "{names:?}");
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let script = String::from_utf8(completions(shell, Cli::command())).unwrap();
            for name in &names {
                assert!(script.contains(name.as_str()), "{shell:?}: `{name}`");
            }
        }
    }

    #[test]
    fn the_man_page_is_roff_for_minipaas_1() {
        let page = String::from_utf8(man_page(Cli::command()).unwrap()).unwrap();
        assert!(
            page.contains(".TH minipaas 1"),
            "{}",
            &page[..200.min(page.len())]
        );
        assert!(page.contains("provision"));
    }
}
