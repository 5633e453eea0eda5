//! Path states parsed from probe output, and the attribute changes that follow.

use super::*;
use serde_json::json;

#[test]
fn modes() {
    assert_eq!(parse_mode(&json!("0644")).unwrap().unwrap(), "0644");
    assert_eq!(parse_mode(&json!(644)).unwrap().unwrap(), "0644");
    assert_eq!(parse_mode(&json!("755")).unwrap().unwrap(), "0755");
    assert!(parse_mode(&json!("u+x")).is_err());
    assert!(parse_mode(&json!(999)).is_err());
}

fn probes(paths: &[(&str, bool)]) -> PathProbes {
    let mut p = PathProbes::default();
    for (path, content) in paths {
        p.add(path, *content);
    }
    p
}

#[test]
fn parses_one_answer_for_many_paths() {
    let p = probes(&[
        ("/d", false),
        ("/missing", false),
        ("/l", false),
        ("/f", true),
        ("/odd\nname", false),
        ("/fifo", false),
    ]);
    let stat = "41ed 755 root root 0 0 4096 /d\0/d\0\
                a1ff 777 root root 0 0 6 /l\0/l -> /a -> b\0\
                81a4 644 www adm 33 4 2 /f\0/f\0\
                8180 600 root root 0 0 1 /odd\nname\0/odd\nname\0\
                11a4 644 root root 0 0 0 /fifo\0/fifo\0";
    let hi = sha256_hex(b"hi");
    let x = sha256_hex(b"x");
    let sums = format!("{hi}  /f\n\\{x}  /odd\\nname\n");
    let got = p.parse(stat, &sums, " 3\naGk=");
    let st = |i: usize| got[i].clone().unwrap();
    assert_eq!(st(0).kind, Kind::Dir);
    assert_eq!(st(0).mode, "0755");
    assert_eq!(st(1).kind, Kind::Missing);
    assert_eq!(st(2).kind, Kind::Link("/a -> b".into()));
    let f = st(3);
    assert_eq!(
        (&f.kind, f.owner.as_str(), f.gid.as_str()),
        (&Kind::File, "www", "4")
    );
    assert_eq!(f.sha256, Some(hi));
    assert_eq!(f.content.as_deref(), Some(&b"hi"[..]));
    assert_eq!(st(4).sha256, Some(x));
    assert_eq!(st(5).kind, Kind::Other);
    let want = Attrs {
        mode: Some("0600".into()),
        owner: Some("33".into()),
        group: Some("root".into()),
    };
    assert_eq!(attr_changes(&f, &want).len(), 2);
}

#[test]
fn contents_that_changed_while_read_are_errors() {
    let p = probes(&[("/a", true), ("/b", true)]);
    let stat = "81a4 644 root root 0 0 2 /a\0/a\0\
                81a4 644 root root 0 0 1 /b\0/b\0";
    let sums = format!("{}  /a\n{}  /b\n", sha256_hex(b"hi"), sha256_hex(b"x"));
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let ok = p.parse(stat, &sums, &format!(" 0 1\n{}", b64(b"hix")));
    assert_eq!(ok[1].clone().unwrap().content.as_deref(), Some(&b"x"[..]));
    // Same length, other bytes: only that file.
    let one = p.parse(stat, &sums, &format!(" 0 1\n{}", b64(b"hiy")));
    assert!(one[0].is_ok());
    assert!(one[1]
        .clone()
        .unwrap_err()
        .to_string()
        .contains("`/b` changed while it was read"));
    // Another length: the cut cannot be trusted for any file.
    let all = p.parse(stat, &sums, &format!(" 0 1\n{}", b64(b"hixx")));
    assert!(all.iter().all(Result::is_err));
    // Unreadable: no content, as before.
    let none = p.parse(stat, &sums, "\n");
    assert_eq!(none[0].clone().unwrap().content, None);
}

/// The scripts as a host runs them (`sh` here; bash on most hosts), on every kind of path.
#[tokio::test]
async fn scripts_answer_through_a_real_shell() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let at = |n: &str| d.join(n).to_str().unwrap().to_string();
    std::fs::write(at("file"), "a=1\n").unwrap();
    std::fs::write(at("we\\ird 'name'\n"), "").unwrap();
    std::fs::create_dir(at("dir")).unwrap();
    std::os::unix::fs::symlink("target with space", at("link")).unwrap();
    let fifo = at("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let p = probes(&[
        (&at("file"), true),
        (&at("we\\ird 'name'\n"), true),
        (&at("dir"), false),
        (&at("link"), false),
        (&at("missing"), true),
        (&fifo, true),
    ]);
    let t = crate::transport::LocalTransport::new("local");
    let mut outs = Vec::new();
    for s in p.scripts() {
        // A fifo read by mistake would block forever.
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            t.exec(&format!("{{ {s}\n}} </dev/null 2>/dev/null"), None),
        )
        .await
        .unwrap()
        .unwrap();
        outs.push(out.stdout_str());
    }
    let got = p.parse(&outs[0], &outs[1], outs[2].trim_end_matches('\n'));
    let st = |i: usize| got[i].clone().unwrap();
    assert_eq!(st(0).kind, Kind::File);
    assert_eq!(st(0).sha256, Some(sha256_hex(b"a=1\n")));
    assert_eq!(st(0).content.as_deref(), Some(&b"a=1\n"[..]));
    assert_eq!(st(1).sha256, Some(sha256_hex(b"")));
    assert_eq!(st(1).content.as_deref(), Some(&b""[..]));
    assert_eq!(st(2).kind, Kind::Dir);
    assert_eq!(st(3).kind, Kind::Link("target with space".into()));
    assert_eq!(st(4).kind, Kind::Missing);
    assert_eq!((st(5).kind, st(5).sha256), (Kind::Other, None));
}
