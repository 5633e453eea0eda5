//! `minipaas completions` and `minipaas man` as a user runs them: the binary prints a bash script
//! that completes every subcommand, and a man page that `man` renders.

use std::io::Write;
use std::process::Stdio;

use crate::common::{self, Mp};

#[test]
fn bash_completion_names_the_subcommands() {
    let script = Mp::new().args(["completions", "bash"]).run().stdout;
    for name in [
        "provision",
        "deploy",
        "code",
        "lab",
        "certs",
        "sql",
        "completions",
        "man",
    ] {
        assert!(script.contains(name), "`{name}` missing");
    }
    // bash itself reads it and registers the completion.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("minipaas.bash");
    std::fs::write(&file, &script).unwrap();
    let check = common::run_ok(
        std::process::Command::new("bash")
            .arg("-c")
            .arg("source \"$1\" && complete -p minipaas")
            .arg("bash")
            .arg(&file),
    );
    assert!(check.contains("minipaas"), "{check}");
    Mp::new().args(["completions", "powershell"]).code(2).run();
}

#[test]
fn the_man_page_renders() {
    let page = Mp::new().arg("man").run().stdout;
    assert!(page.contains(".TH minipaas 1"), "{page}");
    let mut man = std::process::Command::new("man")
        .args(["-l", "-"])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("this test needs `man` (package man-db)");
    man.stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = man.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NAME") && text.contains("SUBCOMMANDS"),
        "{text}"
    );
    assert!(text.contains("provision"), "{text}");
}
