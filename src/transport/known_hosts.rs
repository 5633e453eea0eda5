//! known_hosts files: deciding whether a server's host key is the one recorded for it, and
//! recording a new one. Owns the OpenSSH file format (plain, `[host]:port`, hashed `|1|salt|hash`
//! and wildcard/negated host patterns, `@revoked` and `@cert-authority` markers); does not decide
//! what to do with a verdict (the SSH transport does, with the target's policy).
//!
//! russh has known_hosts helpers, but they count lines wrongly after a comment, ignore markers
//! (so a revoked key would pass), split fields on single spaces only and stop at the first
//! mismatching line even when a later line holds the right key, so this parser is our own.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::PublicKey;
use sha1::Sha1;

/// What the known_hosts files say about a host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line for this host records exactly this key.
    Known,
    /// No line for this host records a key of this type.
    Unknown,
    /// Lines for this host record other keys, and none records this one (the first such line).
    /// A key of a type not on record counts too: a man in the middle need only offer a type
    /// the real host never had.
    Changed { file: PathBuf, line: usize },
    /// An `@revoked` line names this key.
    Revoked { file: PathBuf, line: usize },
}

/// The contents of a target's known_hosts files, read once per connection.
#[derive(Debug, Default)]
pub(crate) struct KnownHosts {
    files: Vec<(PathBuf, String)>,
}

impl KnownHosts {
    /// Reads `paths` in order; a file that does not exist counts as empty (a first run has no
    /// known_hosts yet), any other read failure is returned with its path.
    pub(crate) fn load(paths: &[PathBuf]) -> Result<KnownHosts, (PathBuf, io::Error)> {
        let mut files = Vec::with_capacity(paths.len());
        for path in paths {
            match std::fs::read(path) {
                Ok(bytes) => files.push((path.clone(), String::from_utf8_lossy(&bytes).into())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err((path.clone(), e)),
            }
        }
        Ok(KnownHosts { files })
    }

    fn entries(&self) -> impl Iterator<Item = (&Path, usize, Entry<'_>)> {
        self.files.iter().flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter_map(move |(i, line)| parse_line(line).map(|e| (path.as_path(), i + 1, e)))
        })
    }

    /// Checks `key` presented by the host known as `name` (see [`host_name`]). Like OpenSSH, a
    /// matching line anywhere wins over a mismatching one elsewhere, and a revoked key is refused
    /// whatever else is recorded. Any key on record for the host makes every other key a changed
    /// one, whatever its type: only a host with nothing on record is `Unknown`.
    pub(crate) fn check(&self, name: &str, key: &PublicKey) -> Verdict {
        let mut known = false;
        let mut changed = None;
        for (path, line, entry) in self.entries() {
            let same_key = entry.key.key_data() == key.key_data();
            match entry.marker {
                // A revocation is about the key itself, so it applies to every host.
                Marker::Revoked if same_key => {
                    return Verdict::Revoked {
                        file: path.to_path_buf(),
                        line,
                    }
                }
                // Host certificates are not negotiated, so CA lines say nothing here.
                Marker::Revoked | Marker::CertAuthority => {}
                Marker::None => {
                    if !hosts_match(entry.hosts, name) {
                        continue;
                    }
                    if same_key {
                        known = true;
                    } else if changed.is_none() {
                        changed = Some((path.to_path_buf(), line));
                    }
                }
            }
        }
        match (known, changed) {
            (true, _) => Verdict::Known,
            (false, Some((file, line))) => Verdict::Changed { file, line },
            (false, None) => Verdict::Unknown,
        }
    }

    /// The key types recorded for `name`, in file order: the connection offers only these in
    /// the handshake, so a host with keys on record is asked for one it has shown before.
    pub(crate) fn recorded_algorithms(&self, name: &str) -> Vec<russh::keys::Algorithm> {
        let mut out = Vec::new();
        for (_, _, entry) in self.entries() {
            if entry.marker == Marker::None && hosts_match(entry.hosts, name) {
                let alg = entry.key.key_data().algorithm();
                if !out.contains(&alg) {
                    out.push(alg);
                }
            }
        }
        out
    }
}

impl KnownHosts {
    /// The first line that records a key for `name`: where a changed key is said to differ from
    /// the record when the server had no key of a recorded type to show.
    pub(crate) fn first_recorded(&self, name: &str) -> Option<(PathBuf, usize)> {
        self.entries()
            .find(|(_, _, e)| e.marker == Marker::None && hosts_match(e.hosts, name))
            .map(|(path, line, _)| (path.to_path_buf(), line))
    }
}

/// The name a host is recorded under: `address` for port 22, `[address]:port` otherwise,
/// lowercased as OpenSSH does.
pub(crate) fn host_name(address: &str, port: u16) -> String {
    let address = address.to_ascii_lowercase();
    if port == 22 {
        address
    } else {
        format!("[{address}]:{port}")
    }
}

/// Serialises appends from concurrent connections of one run to the same file.
static APPEND: Mutex<()> = Mutex::new(());

/// Appends `name keytype base64` to `path`, creating the file and its parents. The line is written
/// with one `write` on an `O_APPEND` file so concurrent writers never interleave inside a line.
pub(crate) fn append(path: &Path, name: &str, key: &PublicKey) -> io::Result<()> {
    let _guard = APPEND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)?;
    let mut line = String::new();
    if file.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8; 1];
        file.read_exact(&mut last)?;
        if last[0] != b'\n' {
            line.push('\n');
        }
    }
    let bare = PublicKey::new(key.key_data().clone(), "");
    let openssh = bare
        .to_openssh()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    line.push_str(name);
    line.push(' ');
    line.push_str(openssh.trim_end());
    line.push('\n');
    file.write_all(line.as_bytes())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

struct Entry<'a> {
    marker: Marker,
    hosts: &'a str,
    key: PublicKey,
}

/// One line of a known_hosts file; `None` for blank lines, comments and lines that do not parse
/// (OpenSSH skips those too, and one bad line must not hide the others).
fn parse_line(line: &str) -> Option<Entry<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_ascii_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?;
    let base64 = fields.next()?;
    let key = PublicKey::from_openssh(&format!("{key_type} {base64}")).ok()?;
    Some(Entry {
        marker,
        hosts: first,
        key,
    })
}

/// OpenSSH host list semantics: comma-separated patterns, any negated (`!`) match excludes the
/// host, otherwise any positive match includes it.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob_match(&negated.to_ascii_lowercase(), name) {
                return false;
            }
        } else if let Some(hashed) = pattern.strip_prefix("|1|") {
            matched |= hashed_match(hashed, name);
        } else {
            matched |= glob_match(&pattern.to_ascii_lowercase(), name);
        }
    }
    matched
}

/// `salt|hash` (both base64): the entry is HMAC-SHA1(key = salt, message = name).
fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    let Ok(mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.chain_update(name.as_bytes())
        .verify_slice(&hash)
        .is_ok()
}

/// `*` matches any run of characters, `?` exactly one; everything else literally.
fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0, 0);
    // Where the last `*` was and which name position it is currently standing in for.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIIIrQs5Ov4ENLmnGMqL9MtsNkJOPYA8TM6TqA2sguu+N";
    const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOAyXpnscWeVsy3+iBWcCtM5GpAlg7F6cs3zlzYmloay";

    fn key(b64: &str) -> PublicKey {
        PublicKey::from_openssh(&format!("ssh-ed25519 {b64}")).unwrap()
    }

    fn hosts(files: &[&str]) -> KnownHosts {
        KnownHosts {
            files: files
                .iter()
                .enumerate()
                .map(|(i, text)| (PathBuf::from(format!("kh{i}")), text.to_string()))
                .collect(),
        }
    }

    /// `|1|salt|hash` for `name`, as `ssh-keygen -H` writes it.
    fn hashed(name: &str) -> String {
        let salt = [7u8; 20];
        let mac = Hmac::<Sha1>::new_from_slice(&salt)
            .unwrap()
            .chain_update(name.as_bytes())
            .finalize()
            .into_bytes();
        format!("|1|{}|{}", BASE64.encode(salt), BASE64.encode(mac))
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("Node1.Example", 22), "node1.example");
        assert_eq!(host_name("10.0.0.1", 2222), "[10.0.0.1]:2222");
    }

    #[test]
    fn host_patterns() {
        let cases = [
            ("node1", "node1", true),
            ("node1", "node2", false),
            ("node2,node1", "node1", true),
            ("NODE1", "node1", true),
            ("*.example", "a.example", true),
            ("*.example", "example", false),
            ("node?", "node7", true),
            ("node?", "node17", false),
            ("*,!bad", "bad", false),
            ("*,!bad", "good", true),
            ("[10.0.0.1]:2222", "[10.0.0.1]:2222", true),
            ("[10.0.0.1]:2222", "10.0.0.1", false),
            ("10.0.0.1", "[10.0.0.1]:2222", false),
            ("[10.0.0.*]:2222", "[10.0.0.9]:2222", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(hosts_match(pattern, name), want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn hashed_entries_match_only_their_name() {
        let entry = hashed("[127.0.0.1]:2222");
        assert!(hosts_match(&entry, "[127.0.0.1]:2222"));
        assert!(!hosts_match(&entry, "127.0.0.1"));
        assert!(!hosts_match("|1|garbage", "127.0.0.1"));
        assert!(!hosts_match("|1|!!!|???", "127.0.0.1"));
    }

    #[test]
    fn parses_fields_markers_and_skips_junk() {
        assert!(parse_line("").is_none());
        assert!(parse_line("   # comment").is_none());
        assert!(parse_line("host ssh-ed25519").is_none());
        assert!(parse_line("host ssh-ed25519 notbase64").is_none());
        // The type in the text must agree with the type in the blob.
        assert!(parse_line(&format!("host ssh-rsa {ED_A}")).is_none());
        assert!(parse_line(&format!("@unknown host ssh-ed25519 {ED_A}")).is_none());
        let cases = [
            (
                format!("a,b\tssh-ed25519   {ED_A} some comment"),
                Marker::None,
                "a,b",
            ),
            (
                format!("@revoked * ssh-ed25519 {ED_A}"),
                Marker::Revoked,
                "*",
            ),
            (
                format!("@cert-authority *.x ssh-ed25519 {ED_A}"),
                Marker::CertAuthority,
                "*.x",
            ),
        ];
        for (line, marker, hosts) in &cases {
            let e = parse_line(line).unwrap();
            assert_eq!((e.marker, e.hosts), (*marker, *hosts), "{line}");
            assert_eq!(e.key, key(ED_A));
        }
    }

    #[test]
    fn verdicts() {
        let name = "[127.0.0.1]:2222";
        let a = key(ED_A);
        let b = key(ED_B);

        let kh = hosts(&[&format!("# c\n\n{name} ssh-ed25519 {ED_A}\n")]);
        assert_eq!(kh.check(name, &a), Verdict::Known);
        // Line numbers count comments and blank lines.
        assert_eq!(
            kh.check(name, &b),
            Verdict::Changed {
                file: "kh0".into(),
                line: 3
            }
        );
        assert_eq!(kh.check("127.0.0.1", &a), Verdict::Unknown);

        // A matching line in a later file wins over a mismatch in an earlier one.
        let kh = hosts(&[
            &format!("{name} ssh-ed25519 {ED_B}\n"),
            &format!("{} ssh-ed25519 {ED_A}\n", hashed(name)),
        ]);
        assert_eq!(kh.check(name, &a), Verdict::Known);

        // A key of another type than the one recorded for the host is a changed key too.
        let ecdsa = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHIJ2R+gpGfUyMF0sAXR5XIu8zJpjiQzFDT3PW2F/d5oXplO97qB3+O+2JyDmoLUcybv/gGpwFtCRjT/c7cPeII=";
        let kh = hosts(&[&format!("{name} ecdsa-sha2-nistp256 {ecdsa}\n")]);
        assert_eq!(
            kh.check(name, &a),
            Verdict::Changed {
                file: "kh0".into(),
                line: 1
            }
        );
        assert_eq!(
            kh.recorded_algorithms(name),
            vec![russh::keys::Algorithm::Ecdsa {
                curve: russh::keys::EcdsaCurve::NistP256
            }]
        );

        // Revoked wins even over a matching line, whatever the host pattern.
        let kh = hosts(&[
            &format!("{name} ssh-ed25519 {ED_A}\n"),
            &format!("@revoked other ssh-ed25519 {ED_A}\n"),
        ]);
        assert_eq!(
            kh.check(name, &a),
            Verdict::Revoked {
                file: "kh1".into(),
                line: 1
            }
        );

        // Negation excludes the host from a wildcard line.
        let kh = hosts(&[&format!("*,!{name} ssh-ed25519 {ED_B}\n")]);
        assert_eq!(kh.check(name, &a), Verdict::Unknown);
        // CA lines are neither a match nor a change.
        let kh = hosts(&[&format!("@cert-authority * ssh-ed25519 {ED_B}\n")]);
        assert_eq!(kh.check(name, &a), Verdict::Unknown);
    }

    #[test]
    fn append_creates_parents_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/known_hosts");
        let a = key(ED_A);
        append(&path, "[127.0.0.1]:2222", &a).unwrap();
        // A file without a final newline gets one before the new line.
        std::fs::write(
            &path,
            std::fs::read_to_string(&path)
                .unwrap()
                .trim_end()
                .as_bytes(),
        )
        .unwrap();
        append(&path, "node1", &a).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("[127.0.0.1]:2222 ssh-ed25519 {ED_A}\nnode1 ssh-ed25519 {ED_A}\n")
        );
        let kh = KnownHosts::load(&[dir.path().join("missing"), path]).unwrap();
        assert_eq!(kh.check("[127.0.0.1]:2222", &a), Verdict::Known);
        assert_eq!(kh.check("node1", &a), Verdict::Known);
    }

    #[test]
    fn unreadable_file_is_an_error_missing_is_not() {
        let dir = tempfile::tempdir().unwrap();
        assert!(KnownHosts::load(&[dir.path().join("nope")]).is_ok());
        // A directory cannot be read as a file.
        let (path, _) = KnownHosts::load(&[dir.path().to_path_buf()]).unwrap_err();
        assert_eq!(path, dir.path());
    }
}
