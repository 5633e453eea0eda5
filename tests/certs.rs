//! `minipaas certs` against the real `openssl` CLI: openssl verifies the TLS purposes and the IP
//! SAN, a real mutual-TLS handshake (`openssl s_server` / `s_client` on 127.0.0.1) accepts our
//! client certificate and refuses another CA's, and `certs check` agrees with openssl about
//! expired and foreign certificates. Expired certificates come from the library's explicit
//! validity window, not from a faked clock.

use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use minipaas::certs::{Ca, KeyType, Role, Validity};

use crate::common::{text, Mp};
use time::OffsetDateTime;

/// Runs minipaas and insists on exit code `code`; returns stdout + stderr.
fn mp(args: &[&str], code: i32) -> String {
    Mp::new().args(args).code(code).run().all()
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl` ({e}): install it with `apt-get install openssl`")
        })
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// `certs client` from the CA in `ca` into `out`, with `extra` flags; must succeed.
fn client_cert(ca: &Path, out: &Path, extra: &[&str]) {
    let args = ["certs", "client", "--dir", p(ca), "--out", p(out)];
    mp(&[&args[..], extra].concat(), 0);
}

/// A CA in `root/ca`, a server certificate for `node1` + 127.0.0.1 beside it, a client
/// certificate in `root/client`.
struct Pki {
    _tmp: tempfile::TempDir,
    ca: PathBuf,
    client: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let tmp = tempfile::tempdir().unwrap();
        let ca = tmp.path().join("ca");
        let client = tmp.path().join("client");
        mp(&["certs", "ca", "--dir", p(&ca)], 0);
        mp(
            &[
                "certs",
                "server",
                "--dir",
                p(&ca),
                "--host",
                "node1",
                "--ip",
                "127.0.0.1",
            ],
            0,
        );
        client_cert(&ca, &client, &["--name", "ops"]);
        Pki {
            _tmp: tmp,
            ca,
            client,
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self._tmp.path().join(rel)
    }
}

fn verify(ca: &Path, purpose: &str, cert: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["verify", "-CAfile", p(ca), "-purpose", purpose];
    args.extend_from_slice(extra);
    args.push(p(cert));
    openssl(&args)
}

/// `openssl s_server` demanding a client certificate from `ca`, killed on drop.
struct TlsServer {
    child: Child,
    port: u16,
}

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{port}"),
                "-cert",
                p(&dir.join("server-cert.pem")),
                "-key",
                p(&dir.join("server-key.pem")),
                "-CAfile",
                p(&dir.join("ca.pem")),
                "-Verify",
                "1",
                "-verify_return_error",
                "-www",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `openssl s_server` ({e}): install it with `apt-get install openssl`")
            });
        let mut server = TlsServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = server.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("openssl s_server exited early ({status}):\n{err}");
            }
            assert!(
                Instant::now() < deadline,
                "openssl s_server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// An HTTP request over mutual TLS; true when the server answered (the handshake and the
    /// client certificate were accepted). `client` holds cert.pem and key.pem, or is None.
    fn handshake(&mut self, ca: &Path, client: Option<&Path>) -> (bool, String) {
        let connect = format!("127.0.0.1:{}", self.port);
        let mut args = vec![
            "s_client",
            "-connect",
            &connect,
            "-CAfile",
            p(ca),
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-quiet",
        ];
        let (cert, key);
        if let Some(dir) = client {
            cert = dir.join("cert.pem");
            key = dir.join("key.pem");
            args.extend_from_slice(&["-cert", p(&cert), "-key", p(&key)]);
        }
        let mut child = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run openssl s_client");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET / HTTP/1.0\r\n\r\n")
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("openssl s_client hung");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        (stdout.contains("HTTP/1.0 200 ok"), all)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn certs_ca_rerun_changes_nothing_and_force_replaces() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let first = mp(&["certs", "ca", "--dir", p(&dir)], 0);
    assert!(first.contains("created CA"), "{first}");
    let cert = fs::read(dir.join("ca.pem")).unwrap();
    let key = fs::read(dir.join("ca-key.pem")).unwrap();
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("ca.pem")), 0o644);
    assert_eq!(mode(&dir), 0o700);

    let again = mp(&["certs", "ca", "--dir", p(&dir)], 0);
    assert!(again.contains("already exists"), "{again}");
    assert_eq!(fs::read(dir.join("ca.pem")).unwrap(), cert);
    assert_eq!(fs::read(dir.join("ca-key.pem")).unwrap(), key);

    let forced = mp(&["certs", "ca", "--dir", p(&dir), "--force"], 0);
    assert!(forced.contains("replaced"), "{forced}");
    assert_ne!(fs::read(dir.join("ca.pem")).unwrap(), cert);
    assert_ne!(fs::read(dir.join("ca-key.pem")).unwrap(), key);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    // Only the two files: no temporary file left behind by the atomic writes.
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 2);
}

#[test]
fn certs_ca_refuses_half_a_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    mp(&["certs", "ca", "--dir", p(&dir)], 0);
    let cert = fs::read(dir.join("ca.pem")).unwrap();
    fs::remove_file(dir.join("ca-key.pem")).unwrap();
    let out = mp(&["certs", "ca", "--dir", p(&dir)], 2);
    assert!(out.contains("`ca-key.pem` does not"), "{out}");
    assert_eq!(fs::read(dir.join("ca.pem")).unwrap(), cert);
    assert!(!dir.join("ca-key.pem").exists());
}

#[test]
fn certs_errors_name_the_broken_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    mp(&["certs", "ca", "--dir", p(&dir)], 0);
    let ca_key = dir.join("ca-key.pem");

    fs::write(&ca_key, "not a key at all\n").unwrap();
    let out = mp(&["certs", "server", "--dir", p(&dir), "--host", "n"], 2);
    assert!(
        out.contains(&format!("`{}` is not a PEM file", ca_key.display())),
        "{out}"
    );

    let other = tmp.path().join("other");
    mp(&["certs", "ca", "--dir", p(&other)], 0);
    fs::copy(other.join("ca-key.pem"), &ca_key).unwrap();
    let out = mp(
        &[
            "certs",
            "client",
            "--dir",
            p(&dir),
            "--out",
            p(&tmp.path().join("c")),
        ],
        2,
    );
    assert!(out.contains("does not match certificate"), "{out}");
    assert!(out.contains("ca-key.pem"), "{out}");
    assert!(
        !tmp.path().join("c").exists(),
        "nothing written on a bad CA"
    );

    fs::copy(other.join("ca-key.pem"), dir.join("ca.pem")).unwrap();
    let out = mp(&["certs", "server", "--dir", p(&dir), "--host", "n"], 2);
    assert!(out.contains("not a certificate"), "{out}");
    assert!(out.contains("ca.pem"), "{out}");

    let out = mp(
        &["certs", "server", "--dir", p(&other), "--host", "bad name"],
        2,
    );
    assert!(out.contains("invalid host name `bad name`"), "{out}");
}

#[test]
fn certs_openssl_verifies_purposes_and_ip_san() {
    let pki = Pki::new();
    let ca = pki.ca.join("ca.pem");
    let server = pki.ca.join("server-cert.pem");
    let client = pki.client.join("cert.pem");
    for (cert, purpose, extra, ok) in [
        (&server, "sslserver", &[][..], true),
        (&server, "sslserver", &["-verify_ip", "127.0.0.1"][..], true),
        (
            &server,
            "sslserver",
            &["-verify_hostname", "node1"][..],
            true,
        ),
        (
            &server,
            "sslserver",
            &["-verify_ip", "127.0.0.2"][..],
            false,
        ),
        (
            &server,
            "sslserver",
            &["-verify_hostname", "node2"][..],
            false,
        ),
        (&server, "sslclient", &[][..], false),
        (&client, "sslclient", &[][..], true),
        (&client, "sslserver", &[][..], false),
    ] {
        let out = verify(&ca, purpose, cert, extra);
        assert_eq!(
            out.status.success(),
            ok,
            "openssl verify {purpose} {extra:?} {}\n{}",
            cert.display(),
            text(&out)
        );
    }
    assert_eq!(mode(&pki.ca.join("server-key.pem")), 0o600);
    assert_eq!(mode(&pki.client.join("key.pem")), 0o600);
    assert_eq!(
        fs::read(pki.client.join("ca.pem")).unwrap(),
        fs::read(&ca).unwrap()
    );
}

#[test]
fn certs_every_key_type_passes_openssl() {
    for key_type in ["ecdsa-p256", "ecdsa-p384", "ed25519"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pki");
        let client = tmp.path().join("client");
        let kt = ["--key-type", key_type];
        mp(&[&["certs", "ca", "--dir", p(&dir)][..], &kt].concat(), 0);
        mp(
            &[
                &["certs", "server", "--dir", p(&dir), "--host", "127.0.0.1"][..],
                &kt,
            ]
            .concat(),
            0,
        );
        client_cert(&dir, &client, &kt);
        let ca = dir.join("ca.pem");
        let out = verify(
            &ca,
            "sslserver",
            &dir.join("server-cert.pem"),
            &["-verify_ip", "127.0.0.1"],
        );
        assert!(out.status.success(), "{key_type}: {}", text(&out));
        let out = verify(&ca, "sslclient", &client.join("cert.pem"), &[]);
        assert!(out.status.success(), "{key_type}: {}", text(&out));
        for key in [
            dir.join("ca-key.pem"),
            dir.join("server-key.pem"),
            client.join("key.pem"),
        ] {
            let out = openssl(&["pkey", "-noout", "-in", p(&key)]);
            assert!(
                out.status.success(),
                "{key_type}: openssl cannot load {}: {}",
                key.display(),
                text(&out)
            );
        }
        let mut server = TlsServer::start(&dir);
        let (ok, log) = server.handshake(&ca, Some(&client));
        assert!(ok, "{key_type}: handshake failed:\n{log}");
    }
}

#[test]
fn certs_mutual_tls_accepts_our_client_and_refuses_others() {
    let pki = Pki::new();
    let ca = pki.ca.join("ca.pem");
    let mut server = TlsServer::start(&pki.ca);

    let (ok, log) = server.handshake(&ca, Some(&pki.client));
    assert!(ok, "our client was refused:\n{log}");

    // A client certificate from another CA, even one with the same name.
    let foreign_ca = pki.path("foreign-ca");
    let foreign_client = pki.path("foreign-client");
    mp(&["certs", "ca", "--dir", p(&foreign_ca)], 0);
    client_cert(&foreign_ca, &foreign_client, &["--name", "ops"]);
    let (ok, log) = server.handshake(&ca, Some(&foreign_client));
    assert!(!ok, "a foreign client certificate was accepted:\n{log}");

    let (ok, log) = server.handshake(&ca, None);
    assert!(!ok, "a client without a certificate was accepted:\n{log}");

    // And the server is still up and serving our client afterwards.
    let (ok, log) = server.handshake(&ca, Some(&pki.client));
    assert!(ok, "our client was refused after the others:\n{log}");
}

#[test]
fn certs_server_rotation_keeps_client_certs_valid() {
    let pki = Pki::new();
    let ca = pki.ca.join("ca.pem");
    let old_server = fs::read(pki.ca.join("server-cert.pem")).unwrap();
    let old_key = fs::read(pki.ca.join("server-key.pem")).unwrap();
    let old_client = fs::read(pki.client.join("cert.pem")).unwrap();

    mp(
        &[
            "certs",
            "server",
            "--dir",
            p(&pki.ca),
            "--host",
            "node1",
            "--ip",
            "127.0.0.1",
        ],
        0,
    );
    assert_ne!(
        fs::read(pki.ca.join("server-cert.pem")).unwrap(),
        old_server
    );
    assert_ne!(fs::read(pki.ca.join("server-key.pem")).unwrap(), old_key);
    assert_eq!(fs::read(pki.client.join("cert.pem")).unwrap(), old_client);

    let out = verify(&ca, "sslclient", &pki.client.join("cert.pem"), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let mut server = TlsServer::start(&pki.ca);
    let (ok, log) = server.handshake(&ca, Some(&pki.client));
    assert!(ok, "old client refused by the rotated server:\n{log}");
    mp(&["certs", "check", "--dir", p(&pki.client)], 0);
    mp(&["certs", "check", "--dir", p(&pki.ca)], 0);
}

#[test]
fn certs_server_out_dir_is_complete_for_docker() {
    let pki = Pki::new();
    let out_dir = pki.path("docker-tls");
    mp(
        &[
            "certs",
            "server",
            "--dir",
            p(&pki.ca),
            "--out",
            p(&out_dir),
            "--host",
            "node1",
            "--ip",
            "127.0.0.1",
        ],
        0,
    );
    let mut names: Vec<_> = fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ca.pem", "server-cert.pem", "server-key.pem"]);
    let mut server = TlsServer::start(&out_dir);
    let (ok, log) = server.handshake(&out_dir.join("ca.pem"), Some(&pki.client));
    assert!(ok, "{log}");
}

#[test]
fn certs_check_reports_a_good_set() {
    let pki = Pki::new();
    let out = mp(&["certs", "check", "--dir", p(&pki.ca)], 0);
    for want in [
        "ca.pem: CA `minipaas CA`",
        "server-cert.pem: server `node1`",
        "DNS:node1, IP:127.0.0.1",
        "signed by `minipaas CA` (ca.pem), signature ok",
        "server-key.pem matches",
        "ca-key.pem matches",
        "0 with problems",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    let out = mp(&["certs", "check", "--dir", p(&pki.client)], 0);
    assert!(out.contains("cert.pem: client `ops`"), "{out}");
    assert!(out.contains("key.pem matches"), "{out}");
}

/// Issues a client certificate from the CA in `ca_dir` with an explicit window, into `out`.
fn issue_client(ca_dir: &Path, out: &Path, validity: Validity) {
    Ca::load(ca_dir)
        .unwrap()
        .issue(
            &Role::Client { name: "ops".into() },
            KeyType::EcdsaP256,
            validity,
        )
        .unwrap()
        .write(out)
        .unwrap();
}

#[test]
fn certs_check_detects_expired_and_not_yet_valid() {
    let pki = Pki::new();
    let now = OffsetDateTime::now_utc();
    let ca = pki.ca.join("ca.pem");

    issue_client(
        &pki.ca,
        &pki.client,
        Validity::between(
            now - time::Duration::days(30),
            now - time::Duration::days(2),
        ),
    );
    // openssl agrees it is expired...
    let out = verify(&ca, "sslclient", &pki.client.join("cert.pem"), &[]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("expired"), "{}", text(&out));
    // ...and so does check, naming the file.
    let out = mp(&["certs", "check", "--dir", p(&pki.client)], 1);
    assert!(out.contains("cert.pem: client `ops`"), "{out}");
    assert!(out.contains("PROBLEM: expired on"), "{out}");
    // The expired certificate is refused in a real handshake, too.
    let mut server = TlsServer::start(&pki.ca);
    let (ok, log) = server.handshake(&ca, Some(&pki.client));
    assert!(!ok, "expired client accepted:\n{log}");

    issue_client(
        &pki.ca,
        &pki.client,
        Validity::between(
            now + time::Duration::days(2),
            now + time::Duration::days(30),
        ),
    );
    let out = mp(&["certs", "check", "--dir", p(&pki.client)], 1);
    assert!(out.contains("PROBLEM: not valid yet"), "{out}");
}

#[test]
fn certs_check_warns_under_30_days_without_failing() {
    let pki = Pki::new();
    issue_client(&pki.ca, &pki.client, Validity::days(10));
    let out = mp(&["certs", "check", "--dir", p(&pki.client)], 0);
    assert!(out.contains("WARNING: expires in"), "{out}");
    assert!(out.contains("1 with warnings"), "{out}");
}

#[test]
fn certs_check_detects_foreign_certificates() {
    let pki = Pki::new();
    let ca = pki.ca.join("ca.pem");
    for (cn, expect) in [
        // Same name as ours: only the signature tells them apart.
        ("minipaas CA", "the signature does not verify"),
        ("someone else", "not issued by the CA"),
    ] {
        let foreign_ca = pki.path("foreign");
        let _ = fs::remove_dir_all(&foreign_ca);
        let foreign_client = pki.path("foreign-client");
        mp(&["certs", "ca", "--dir", p(&foreign_ca), "--cn", cn], 0);
        client_cert(&foreign_ca, &foreign_client, &[]);
        // Put our CA beside the foreign certificate: check must notice it does not chain.
        fs::copy(&ca, foreign_client.join("ca.pem")).unwrap();
        let out = verify(&ca, "sslclient", &foreign_client.join("cert.pem"), &[]);
        assert!(!out.status.success(), "openssl accepted it: {}", text(&out));
        let out = mp(&["certs", "check", "--dir", p(&foreign_client)], 1);
        assert!(out.contains("cert.pem: client"), "{out}");
        assert!(out.contains(expect), "{cn}: {out}");
        // Without a CA beside it there is nothing to chain to: a problem, not a pass.
        fs::remove_file(foreign_client.join("ca.pem")).unwrap();
        let out = mp(&["certs", "check", "--dir", p(&foreign_client)], 1);
        assert!(out.contains("no CA certificate"), "{out}");
        // --ca points check at the right CA file explicitly.
        mp(
            &[
                "certs",
                "check",
                "--dir",
                p(&foreign_client),
                "--ca",
                p(&foreign_ca.join("ca.pem")),
            ],
            0,
        );
    }
}

#[test]
fn certs_check_detects_mismatched_keys_and_broken_files() {
    let pki = Pki::new();
    let other = pki.path("other-client");
    mp(
        &["certs", "client", "--dir", p(&pki.ca), "--out", p(&other)],
        0,
    );
    fs::copy(other.join("key.pem"), pki.client.join("key.pem")).unwrap();
    let out = mp(&["certs", "check", "--dir", p(&pki.client)], 1);
    assert!(
        out.contains("key `key.pem` does not match this certificate"),
        "{out}"
    );

    fs::set_permissions(other.join("key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = mp(&["certs", "check", "--dir", p(&other)], 0);
    assert!(out.contains("readable by others (mode 0644)"), "{out}");

    fs::write(other.join("cert.pem"), "garbage\n").unwrap();
    let out = mp(&["certs", "check", "--dir", p(&other)], 1);
    assert!(
        out.contains("cert.pem:\n  PROBLEM: not a PEM file"),
        "{out}"
    );

    let empty = pki.path("empty");
    fs::create_dir(&empty).unwrap();
    let out = mp(&["certs", "check", "--dir", p(&empty)], 1);
    assert!(out.contains("no certificate"), "{out}");
}
