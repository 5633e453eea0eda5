//! Errors as text, for the edges that print them (the CLI, the engine's reports): a leaf that
//! every layer may use. Each layer has its own error enum with typed context; the command-level
//! enum that gathers them, and decides exit codes, is [`crate::commands::Error`].

use std::error::Error as StdError;

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
