//! The SSH transport against a real OpenSSH server: each test starts its own `sshd` on a free
//! loopback port with a fresh host key, authorized keys and known_hosts files, and drives
//! `minipaas::transport::SshTransport` directly.

use std::io::{BufRead, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minipaas::transport::{HostKeyPolicy, SshTarget, SshTransport, TransportError};
use sha2::{Digest, Sha256};

const SSHD: &str = "/usr/sbin/sshd";

/// A running `sshd -D` with everything it needs in a temporary directory; killed on drop.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    /// `ssh-ed25519 AAAA...`, the server's host key as known_hosts records it.
    host_key: String,
    /// An ed25519 client key already in authorized_keys.
    key: PathBuf,
    user: String,
}

impl Sshd {
    fn start() -> Sshd {
        Sshd::start_with("")
    }

    /// `extra` goes first in sshd_config, where it wins (sshd keeps the first value it reads).
    fn start_with(extra: &str) -> Sshd {
        Sshd::start_full("ed25519", extra)
    }

    /// A server whose only host key is of type `host_key_kind` (`ssh-keygen -t`).
    fn start_full(host_key_kind: &str, extra: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install it with `apt-get install -y openssh-server`"
        );
        // sshd's privilege separation directory; a package install creates it at boot only.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"), host_key_kind, &[]);
        let host_key = public_key(&d.join("host_key"));
        let key = d.join("id_ed25519");
        keygen(&key, "ed25519", &[]);
        std::fs::write(d.join("authorized_keys"), "").unwrap();
        let port = free_port();
        let config = format!(
            "{extra}\n\
             Port {port}\n\
             ListenAddress 127.0.0.1\n\
             HostKey {host_key}\n\
             AuthorizedKeysFile {authorized}\n\
             PermitRootLogin yes\n\
             UsePAM no\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             StrictModes no\n\
             MaxSessions 10\n\
             PidFile none\n\
             LogLevel VERBOSE\n",
            host_key = d.join("host_key").display(),
            authorized = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let mut sshd = Sshd {
            dir,
            port,
            child,
            host_key,
            key,
            user,
        };
        sshd.authorize(&sshd.key.clone());
        sshd.wait_ready();
        sshd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sshd exited with {status}:\n{}", self.log());
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut banner = [0u8; 4];
                if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "sshd not ready:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Adds `key`'s public half to authorized_keys (sshd rereads it at every login).
    fn authorize(&self, key: &Path) {
        let mut text = std::fs::read_to_string(self.path("authorized_keys")).unwrap();
        text.push_str(&public_key(key));
        text.push('\n');
        std::fs::write(self.path("authorized_keys"), text).unwrap();
    }

    /// The known_hosts name of this server.
    fn name(&self) -> String {
        format!("[127.0.0.1]:{}", self.port)
    }

    /// A known_hosts file recording the server's real key.
    fn known_hosts(&self) -> PathBuf {
        let path = self.path("known_hosts");
        std::fs::write(&path, format!("{} {}\n", self.name(), self.host_key)).unwrap();
        path
    }

    fn target(&self, key: Option<PathBuf>, known_hosts: Vec<PathBuf>) -> SshTarget {
        SshTarget {
            host: "node1".into(),
            address: "127.0.0.1".into(),
            port: self.port,
            user: self.user.clone(),
            key,
            known_hosts,
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(10),
        }
    }

    async fn connect(&self) -> SshTransport {
        let target = self.target(Some(self.key.clone()), vec![self.known_hosts()]);
        match SshTransport::connect(target).await {
            Ok(t) => t,
            Err(e) => panic!("connect: {e:?}\nsshd log:\n{}", self.log()),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path, kind: &str, extra: &[&str]) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", kind, "-N", "", "-C", "", "-f"])
        .arg(path)
        .args(extra)
        .output()
        .expect("ssh-keygen (package openssh-client) is needed");
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// `type base64` of a key pair's `.pub`, without the comment.
fn public_key(key: &Path) -> String {
    let text = std::fs::read_to_string(key.with_extension("pub"))
        .or_else(|_| std::fs::read_to_string(format!("{}.pub", key.display())))
        .unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The SHA256 fingerprint as `ssh-keygen -l` prints it.
fn fingerprint(key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(format!("{}.pub", key.display()))
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Deterministic incompressible-looking bytes.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[tokio::test]
async fn exec_returns_exit_code_stdout_and_stderr() {
    let sshd = Sshd::start();
    let t = sshd.connect().await;

    let out = t
        .exec("echo out; echo err >&2; exit 3", None)
        .await
        .unwrap();
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout_str(), "out\n");
    assert_eq!(out.stderr_str(), "err\n");

    let out = t.exec("true", None).await.unwrap();
    assert!(out.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());

    // Death by signal has no exit status.
    let out = t.exec("kill -9 $$", None).await.unwrap();
    assert_eq!(out.code, None);

    // Without stdin the command still sees EOF instead of hanging.
    let out = t.exec("cat; echo done", None).await.unwrap();
    assert_eq!(out.stdout_str(), "done\n");

    // Commands go through the user's shell.
    let out = t
        .exec("x=$((6*7)); echo \"$x\" | tr 4 X", None)
        .await
        .unwrap();
    assert_eq!(out.stdout_str(), "X2\n");

    t.close().await;
    t.close().await;
    let err = t.exec("true", None).await.unwrap_err();
    assert!(matches!(err, TransportError::Ssh { .. }), "{err:?}");
}

#[tokio::test]
async fn large_stdin_and_stdout_round_trip_byte_exact() {
    let sshd = Sshd::start();
    let t = sshd.connect().await;
    let data = pseudo_random(24 * 1024 * 1024 + 12345);

    let out = t.exec("sha256sum", Some(&data)).await.unwrap();
    assert!(out.success(), "{}", out.stderr_str());
    assert_eq!(
        out.stdout_str().split_whitespace().next().unwrap(),
        sha256_hex(&data)
    );

    // `cat` answers while its input is still arriving: reading and writing must overlap.
    let out = t.exec("cat", Some(&data)).await.unwrap();
    assert!(out.success());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "stdout differs from stdin");

    // A command that ignores its input and exits does not hang the writer.
    let out = t.exec("exit 0", Some(&data)).await.unwrap();
    assert!(out.success());

    // Large output with nothing sent.
    let out = t
        .exec("head -c 30000000 /dev/zero | tr '\\0' a", None)
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), 30_000_000);
    assert!(out.stdout.iter().all(|&b| b == b'a'));
}

#[tokio::test]
async fn fifty_concurrent_execs_share_one_connection() {
    // MaxSessions 10. Each command marks itself running in a directory and reports how many are
    // running: never more than the transport's limit of 8, and the server is never asked for a
    // session it does not have.
    let sshd = Sshd::start();
    let running = sshd.path("running");
    std::fs::create_dir(&running).unwrap();
    let t = Arc::new(sshd.connect().await);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let t = t.clone();
            let running = running.display().to_string();
            tokio::spawn(async move {
                let input = format!("input {i}\n");
                let command = format!(
                    "touch {running}/{i}; ls {running} | wc -l >&2; sleep 1; rm {running}/{i}; cat"
                );
                t.exec(&command, Some(input.as_bytes()))
                    .await
                    .map(|out| (input, out))
            })
        })
        .collect();
    let mut most = 0;
    for task in tasks {
        let (input, out) = task.await.unwrap().unwrap();
        assert!(out.success(), "{}", out.stderr_str());
        assert_eq!(out.stdout_str(), input);
        // The count is the last line: a loaded sshd may print a warning before it.
        let stderr = out.stderr_str();
        let count = stderr
            .lines()
            .rev()
            .find_map(|l| l.trim().parse::<usize>().ok());
        most = most.max(count.unwrap_or_else(|| panic!("no count in stderr: {stderr:?}")));
    }
    // At least some overlap (on a loaded machine sshd starts commands slowly, so not always 8).
    assert!((2..=8).contains(&most), "{most} commands ran at once");
    let log = sshd.log();
    assert!(!log.contains("no more sessions"), "{log}");
    // All of it over the one TCP connection.
    assert_eq!(log.matches("Accepted publickey").count(), 1, "{log}");
}

#[tokio::test]
async fn cancelled_execs_give_their_channels_back() {
    let sshd = Sshd::start();
    let t = Arc::new(sshd.connect().await);
    // Fill every slot with commands that outlive the caller's patience, then abandon them. As
    // root, OpenSSH ignores the transport's SIGTERM and holds each session until its command
    // exits, so for a while the server has only 2 sessions to spare.
    let abandoned: Vec<_> = (0..8)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                tokio::time::timeout(Duration::from_millis(300), t.exec("sleep 4", None)).await
            })
        })
        .collect();
    for task in abandoned {
        assert!(task.await.unwrap().is_err(), "sleep 4 finished early");
    }
    let started = Instant::now();
    // Without the retry, these would fail with "no more sessions" while the sleeps last.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move { t.exec(&format!("sleep 0.5; echo {i}"), None).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.unwrap();
        let out = out.unwrap_or_else(|e| panic!("{e:?}\n{}", sshd.log()));
        assert_eq!(out.stdout_str(), format!("{i}\n"));
    }
    // Not refused, not hung: the abandoned commands' sessions were given back in time.
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[tokio::test]
async fn a_server_with_fewer_sessions_is_waited_for() {
    let sshd = Sshd::start_with("MaxSessions 3");
    let t = Arc::new(sshd.connect().await);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let t = t.clone();
            tokio::spawn(async move { t.exec(&format!("sleep 0.1; echo {i}"), None).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task.await.unwrap();
        let out = out.unwrap_or_else(|e| panic!("{e:?}\n{}", sshd.log()));
        assert_eq!(out.stdout_str(), format!("{i}\n"));
    }
    assert!(
        sshd.log().contains("no more sessions"),
        "the limit was never hit"
    );
}

#[tokio::test]
async fn unknown_host_key_is_refused_with_its_fingerprint() {
    let sshd = Sshd::start();
    let empty = sshd.path("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let missing = sshd.path("missing/known_hosts");
    let target = sshd.target(Some(sshd.key.clone()), vec![empty, missing.clone()]);
    let err = SshTransport::connect(target).await.err().unwrap();
    match &err {
        TransportError::UnknownHostKey {
            host,
            address,
            fingerprint: fp,
        } => {
            assert_eq!(host, "node1");
            assert_eq!(address, &sshd.name());
            assert_eq!(fp, &fingerprint(&sshd.path("host_key")));
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&fingerprint(&sshd.path("host_key"))),
        "{text}"
    );
    // Strict mode writes nothing.
    assert!(!missing.exists());
}

#[tokio::test]
async fn accept_new_records_the_key_then_strict_connects() {
    let sshd = Sshd::start();
    let first = sshd.path("new/dir/known_hosts");
    let second = sshd.path("other_known_hosts");
    let mut target = sshd.target(Some(sshd.key.clone()), vec![first.clone(), second.clone()]);
    target.host_key_policy = HostKeyPolicy::AcceptNew;
    let t = SshTransport::connect(target.clone()).await.unwrap();
    assert!(t.exec("true", None).await.unwrap().success());
    t.close().await;
    assert_eq!(
        std::fs::read_to_string(&first).unwrap(),
        format!("{} {}\n", sshd.name(), sshd.host_key)
    );
    assert!(!second.exists());

    // Accepting an already known key does not record it twice.
    SshTransport::connect(target.clone()).await.unwrap();
    assert_eq!(std::fs::read_to_string(&first).unwrap().lines().count(), 1);

    target.host_key_policy = HostKeyPolicy::Strict;
    let t = SshTransport::connect(target).await.unwrap();
    assert!(t.exec("true", None).await.unwrap().success());
}

#[tokio::test]
async fn changed_host_key_is_refused_naming_file_and_line() {
    let sshd = Sshd::start();
    keygen(&sshd.path("other_host_key"), "ed25519", &[]);
    let recorded = sshd.path("known_hosts");
    std::fs::write(
        &recorded,
        format!(
            "# lab hosts\n\nsomewhere.else {}\n{} {}\n",
            sshd.host_key,
            sshd.name(),
            public_key(&sshd.path("other_host_key"))
        ),
    )
    .unwrap();
    for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
        let mut target = sshd.target(Some(sshd.key.clone()), vec![recorded.clone()]);
        target.host_key_policy = policy;
        match SshTransport::connect(target).await.err().unwrap() {
            TransportError::ChangedHostKey {
                file,
                line,
                fingerprint: fp,
                ..
            } => {
                assert_eq!(file, recorded);
                assert_eq!(line, 4);
                assert_eq!(fp, fingerprint(&sshd.path("host_key")));
            }
            other => panic!("{policy:?}: {other:?}"),
        }
    }
}

/// A man in the middle that has only a key of another type than the one on record (here:
/// ECDSA where Ed25519 was recorded) is a changed key under every policy, as OpenSSH says
/// "REMOTE HOST IDENTIFICATION HAS CHANGED", and nothing is recorded.
#[tokio::test]
async fn key_of_another_type_than_recorded_is_a_changed_key() {
    let sshd = Sshd::start_full("ecdsa", "");
    assert!(
        sshd.host_key.starts_with("ecdsa-sha2-"),
        "{}",
        sshd.host_key
    );
    keygen(&sshd.path("recorded_host_key"), "ed25519", &[]);
    let recorded = sshd.path("known_hosts");
    let text = format!(
        "# the host as first seen\n{} {}\n",
        sshd.name(),
        public_key(&sshd.path("recorded_host_key"))
    );
    std::fs::write(&recorded, &text).unwrap();
    for hashed in [false, true] {
        if hashed {
            let out = Command::new("ssh-keygen")
                .arg("-H")
                .arg("-f")
                .arg(&recorded)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        let text = std::fs::read_to_string(&recorded).unwrap();
        for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
            let mut target = sshd.target(Some(sshd.key.clone()), vec![recorded.clone()]);
            target.host_key_policy = policy;
            let err = SshTransport::connect(target).await.err().unwrap();
            let message = err.to_string();
            match err {
                TransportError::ChangedHostKey { file, line, .. } => {
                    assert_eq!((&file, line), (&recorded, 2), "{message}");
                }
                other => panic!("hashed {hashed}, {policy:?}: {other:?}"),
            }
            assert!(message.contains("has CHANGED"), "{message}");
            assert_eq!(std::fs::read_to_string(&recorded).unwrap(), text);
        }
    }
    // The same server is accepted once its key is on record in its place.
    std::fs::write(&recorded, format!("{} {}\n", sshd.name(), sshd.host_key)).unwrap();
    let target = sshd.target(Some(sshd.key.clone()), vec![recorded]);
    let t = SshTransport::connect(target).await.unwrap();
    assert!(t.exec("true", None).await.unwrap().success());
}

/// OpenSSH refuses a private key that group or others can read; so does minipaas.
#[tokio::test]
async fn private_key_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let sshd = Sshd::start();
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&sshd.key, std::fs::Permissions::from_mode(mode)).unwrap();
        let target = sshd.target(Some(sshd.key.clone()), vec![sshd.known_hosts()]);
        match SshTransport::connect(target).await.err().unwrap() {
            e @ TransportError::Key { .. } => {
                let text = e.to_string();
                assert!(text.contains(&format!("{mode:04o}")), "{text}");
                assert!(text.contains("too open"), "{text}");
            }
            other => panic!("{mode:o}: {other:?}"),
        }
    }
    std::fs::set_permissions(&sshd.key, std::fs::Permissions::from_mode(0o600)).unwrap();
    sshd.connect().await;
}

#[tokio::test]
async fn revoked_host_key_is_refused() {
    let sshd = Sshd::start();
    let path = sshd.path("known_hosts");
    std::fs::write(
        &path,
        format!(
            "{} {}\n@revoked * {}\n",
            sshd.name(),
            sshd.host_key,
            sshd.host_key
        ),
    )
    .unwrap();
    let target = sshd.target(Some(sshd.key.clone()), vec![path.clone()]);
    match SshTransport::connect(target).await.err().unwrap() {
        TransportError::RevokedHostKey { file, line, .. } => {
            assert_eq!((file, line), (path, 2));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn hashed_known_hosts_entry_is_accepted() {
    let sshd = Sshd::start();
    let path = sshd.known_hosts();
    let out = Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );
    let target = sshd.target(Some(sshd.key.clone()), vec![path]);
    let t = SshTransport::connect(target).await.unwrap();
    assert!(t.exec("true", None).await.unwrap().success());
}

#[tokio::test]
async fn ed25519_ecdsa_and_rsa_keys_authenticate() {
    let sshd = Sshd::start();
    for (kind, extra) in [
        ("ed25519", &[][..]),
        ("ecdsa", &["-b", "256"][..]),
        ("ecdsa", &["-b", "384"][..]),
        ("rsa", &["-b", "2048"][..]),
        // The traditional PEM format russh reads through another path.
        ("rsa", &["-b", "2048", "-m", "PEM"][..]),
    ] {
        let key = sshd.path(&format!("id_{kind}_{}", extra.join("")));
        keygen(&key, kind, extra);
        sshd.authorize(&key);
        let target = sshd.target(Some(key.clone()), vec![sshd.known_hosts()]);
        let t = match SshTransport::connect(target).await {
            Ok(t) => t,
            Err(e) => panic!("{kind} {extra:?}: {e:?}\n{}", sshd.log()),
        };
        assert_eq!(t.exec("echo ok", None).await.unwrap().stdout_str(), "ok\n");
        t.close().await;
    }
    // RSA signed with SHA-2, as OpenSSH 8.8+ requires.
    assert!(sshd.log().contains("RSA SHA256:"), "{}", sshd.log());
    assert!(!sshd.log().contains("ssh-rsa"), "{}", sshd.log());
}

#[tokio::test]
async fn wrong_or_unusable_keys_fail_authentication_clearly() {
    let sshd = Sshd::start();
    let stranger = sshd.path("id_stranger");
    keygen(&stranger, "ed25519", &[]);
    let target = sshd.target(Some(stranger.clone()), vec![sshd.known_hosts()]);
    match SshTransport::connect(target).await.err().unwrap() {
        TransportError::Auth { host, user, method } => {
            assert_eq!(
                (host.as_str(), user.as_str()),
                ("node1", sshd.user.as_str())
            );
            assert!(method.contains("id_stranger"), "{method}");
        }
        other => panic!("{other:?}"),
    }

    let locked = sshd.path("id_locked");
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret passphrase", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    sshd.authorize(&locked);
    let target = sshd.target(Some(locked.clone()), vec![sshd.known_hosts()]);
    match SshTransport::connect(target).await.err().unwrap() {
        TransportError::Key { path, reason, .. } => {
            assert_eq!(path, locked);
            assert!(reason.contains("passphrase"), "{reason}");
            assert!(!reason.contains("secret"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let target = sshd.target(Some(sshd.path("no_such_key")), vec![sshd.known_hosts()]);
    let err = SshTransport::connect(target).await.err().unwrap();
    assert!(matches!(err, TransportError::Key { .. }), "{err:?}");
}

/// A target on loopback `port` with no key and no known host, for tests that never get past
/// the TCP connection or the banner.
fn loopback_target(port: u16, connect_timeout: Duration) -> SshTarget {
    SshTarget {
        host: "node1".into(),
        address: "127.0.0.1".into(),
        port,
        user: "root".into(),
        key: None,
        known_hosts: vec![],
        host_key_policy: HostKeyPolicy::Strict,
        connect_timeout,
    }
}

#[tokio::test]
async fn refused_connection_fails_fast() {
    let port = free_port();
    let target = loopback_target(port, Duration::from_secs(10));
    let started = Instant::now();
    let err = SshTransport::connect(target).await.err().unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    match err {
        TransportError::Connect {
            port: p, source, ..
        } => {
            assert_eq!(p, port);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn silent_server_times_out() {
    // Accepts TCP but never sends an SSH banner.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = loopback_target(port, Duration::from_secs(1));
    let started = Instant::now();
    let err = SshTransport::connect(target).await.err().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, TransportError::ConnectTimeout { seconds: 1, .. }),
        "{err:?}"
    );
    drop(listener);
}

/// A real `ssh-agent` holding an authorized key among others, found through `SSH_AUTH_SOCK`.
#[tokio::test]
async fn ssh_agent_authenticates() {
    let sshd = Sshd::start();
    let socket = sshd.path("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ssh-agent (package openssh-client) is needed");
    // `ssh-agent -D` prints its environment once the socket is listening.
    let mut first_line = String::new();
    std::io::BufReader::new(agent.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    assert!(first_line.contains("SSH_AUTH_SOCK"), "{first_line}");

    // An unauthorized key first: the transport has to go on to the next one.
    let stranger = sshd.path("id_stranger");
    keygen(&stranger, "ed25519", &[]);
    let rsa = sshd.path("id_rsa_agent");
    keygen(&rsa, "rsa", &["-b", "2048"]);
    sshd.authorize(&rsa);
    for key in [&stranger, &rsa] {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &socket)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-add: {out:?}");
    }

    // The transport reads the agent's socket from the environment, like ssh does. No other test
    // in this binary reads SSH_AUTH_SOCK.
    std::env::set_var("SSH_AUTH_SOCK", &socket);
    let target = sshd.target(None, vec![sshd.known_hosts()]);
    let result = SshTransport::connect(target).await;
    let _ = agent.kill();
    let _ = agent.wait();
    let t = match result {
        Ok(t) => t,
        Err(e) => panic!("{e:?}\n{}", sshd.log()),
    };
    assert_eq!(
        t.exec("echo agent", None).await.unwrap().stdout_str(),
        "agent\n"
    );
}

/// Remembers what it got and when the first bytes came.
struct Recorder {
    data: Vec<u8>,
    first: Option<Instant>,
}

impl std::io::Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.first.get_or_insert_with(Instant::now);
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn exec_streaming_passes_output_on_as_it_arrives() {
    let sshd = Sshd::start();
    let t = sshd.connect().await;
    let mut out = Recorder {
        data: Vec::new(),
        first: None,
    };
    let mut err = Vec::new();
    let started = Instant::now();
    let code = t
        .exec_streaming(
            "printf early; sleep 3; printf late; printf oops >&2; exit 3",
            &mut out,
            &mut err,
        )
        .await
        .unwrap();
    assert_eq!(code, Some(3));
    assert_eq!(out.data, b"earlylate");
    assert_eq!(err, b"oops");
    let first = out.first.unwrap().duration_since(started);
    // Well before the command ends (3 s), with room for a loaded machine's slow channel
    // open (up to 0.9 s seen beside the lab tests).
    assert!(first < Duration::from_millis(2500), "{first:?}");
    assert!(started.elapsed() >= Duration::from_secs(3));
}

#[tokio::test]
async fn exec_streaming_dropped_closes_the_commands_stdin() {
    let sshd = Sshd::start();
    let t = sshd.connect().await;
    let marker = sshd.dir.path().join("stdin-ended");
    // Stdin stays open while we follow: `cat` only ends once we go away.
    let command = format!("cat >/dev/null; touch {}", marker.display());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let run = t.exec_streaming(&command, &mut out, &mut err);
    assert!(tokio::time::timeout(Duration::from_millis(500), run)
        .await
        .is_err());
    assert!(!marker.exists(), "stdin was closed while following");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the command never saw EOF");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
