//! `certs check`: a report on every certificate in a directory: validity window, names, usage,
//! chain (issuer name and signature checked against the CA certificate) and whether the key file
//! beside it belongs to it. A broken file becomes a problem in the report rather than an error,
//! so one bad file never hides the state of the others. Reads only; never writes.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{files, format_time, key_matches, read_key, CertsError, CA_CERT, WARN_DAYS};

/// How bad a finding is: warnings leave the exit code at 0, problems make it 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Warning,
    Problem,
}

/// One thing wrong (or about to be) with a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

/// What was found about one file. Fields other than `file` and `findings` are empty when the
/// file could not be read as a certificate.
#[derive(Clone, Debug, Default)]
pub struct CertReport {
    /// The file name (the full path when it lies outside the checked directory).
    pub file: String,
    /// `CA`, `server`, `client`, `server+client`, or `private key`.
    pub kind: String,
    pub subject: Option<String>,
    /// Subject alternative names as `DNS:name` and `IP:addr`.
    pub names: Vec<String>,
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
    /// How the chain checked out, when it did.
    pub chain: Option<String>,
    /// The key file that matched, if there was one.
    pub key: Option<String>,
    pub findings: Vec<Finding>,
}

impl CertReport {
    fn problem(&mut self, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Problem,
            message: message.into(),
        });
    }

    fn warning(&mut self, message: impl Into<String>) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            message: message.into(),
        });
    }

    fn has(&self, severity: Severity) -> bool {
        self.findings.iter().any(|f| f.severity == severity)
    }
}

/// The whole check: one entry per certificate (and per stray or broken file).
#[derive(Clone, Debug)]
pub struct Report {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub now: OffsetDateTime,
    pub entries: Vec<CertReport>,
}

impl Report {
    /// True when any file has a problem: the command then exits 1.
    pub fn has_problems(&self) -> bool {
        self.entries.iter().any(|e| e.has(Severity::Problem))
    }

    /// The entry for `file`, if it was checked.
    pub fn entry(&self, file: &str) -> Option<&CertReport> {
        self.entries.iter().find(|e| e.file == file)
    }
}

/// Checks every `*.pem` in `dir` at time `now` against the CA certificate `ca` (default
/// `dir/ca.pem`). Errors only when `dir` cannot be listed; everything else is in the report.
pub fn check_dir(dir: &Path, ca: Option<&Path>, now: OffsetDateTime) -> Result<Report, CertsError> {
    let ca_path = ca.map_or_else(|| dir.join(CA_CERT), Path::to_path_buf);
    let list_err = |source| CertsError::ListDir {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(list_err)? {
        let path = entry.map_err(list_err)?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "pem") {
            paths.push(path);
        }
    }
    paths.sort();
    // The CA goes first, also when it lives elsewhere (`--ca`).
    paths.retain(|p| !same_file(p, &ca_path));
    if ca_path.exists() {
        paths.insert(0, ca_path.clone());
    }

    let display = |p: &Path| -> String {
        if p.parent() == Some(dir) {
            p.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            p.display().to_string()
        }
    };

    // Sort every file into certificates, keys and unusable files first, so certificates can
    // claim their keys.
    let mut certs: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut keys: BTreeSet<PathBuf> = BTreeSet::new();
    let mut entries: Vec<CertReport> = Vec::new();
    for path in &paths {
        let mut entry = CertReport {
            file: display(path),
            ..CertReport::default()
        };
        let bytes = match files::read(path) {
            Ok(b) => b,
            Err(e) => {
                entry.problem(error_text(&e));
                entries.push(entry);
                continue;
            }
        };
        match files::pem_blocks(path, &bytes) {
            Err(_) => {
                entry.problem("not a PEM file");
                entries.push(entry);
            }
            Ok(blocks) if blocks[0].label == "CERTIFICATE" => {
                certs.push((path.clone(), blocks[0].contents.clone()));
            }
            Ok(blocks) if blocks.iter().any(|b| files::is_key_label(&b.label)) => {
                keys.insert(path.clone());
            }
            Ok(blocks) => {
                entry.problem(format!(
                    "holds a `{}` block, neither a certificate nor a private key",
                    blocks[0].label
                ));
                entries.push(entry);
            }
        }
    }

    // The CA every other certificate must chain to.
    let ca_der: Result<Vec<u8>, String> = match certs.iter().find(|(p, _)| *p == ca_path) {
        Some((_, der)) => match X509Certificate::from_der(der) {
            Ok(_) => Ok(der.clone()),
            Err(_) => Err(format!(
                "`{}` is not a valid certificate",
                display(&ca_path)
            )),
        },
        None if ca_path.exists() => Err(format!(
            "`{}` is not a usable certificate file",
            display(&ca_path)
        )),
        None => Err(format!(
            "no CA certificate `{}` to check against (pass `--ca FILE`)",
            display(&ca_path)
        )),
    };
    let ca_cert = match &ca_der {
        Ok(der) => X509Certificate::from_der(der)
            .map(|(_, c)| c)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };

    let mut cert_entries = Vec::new();
    for (path, der) in &certs {
        let mut entry = CertReport {
            file: display(path),
            ..CertReport::default()
        };
        let cert = match X509Certificate::from_der(der) {
            Ok((_, c)) => c,
            Err(e) => {
                entry.problem(format!("not a valid X.509 certificate: {e}"));
                cert_entries.push(entry);
                continue;
            }
        };
        describe(&mut entry, &cert);
        check_validity(&mut entry, &cert, now);
        if *path == ca_path {
            check_ca_itself(&mut entry, &cert);
        } else {
            check_chain(&mut entry, &cert, &ca_cert, &display(&ca_path));
        }
        if let Some(key_path) = key_file_for(path).filter(|k| keys.contains(k)) {
            keys.remove(&key_path);
            check_key(&mut entry, &cert, &key_path, &display(&key_path));
        }
        cert_entries.push(entry);
    }
    if cert_entries.is_empty() {
        let mut entry = CertReport {
            file: dir.display().to_string(),
            ..CertReport::default()
        };
        entry.problem("no certificate (`*.pem`) found");
        cert_entries.push(entry);
    }
    for key_path in keys {
        let mut entry = CertReport {
            file: display(&key_path),
            kind: "private key".into(),
            ..CertReport::default()
        };
        entry.warning("private key with no certificate of its name beside it");
        check_key_mode(&mut entry, &key_path);
        cert_entries.push(entry);
    }
    cert_entries.append(&mut entries);
    Ok(Report {
        dir: dir.to_path_buf(),
        ca: ca_path,
        now,
        entries: cert_entries,
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// The key file a certificate file pairs with: Docker's `cert.pem`/`key.pem`, and
/// `X.pem` or `X-cert.pem` with `X-key.pem` (`ca.pem`/`ca-key.pem`,
/// `server-cert.pem`/`server-key.pem`).
fn key_file_for(cert: &Path) -> Option<PathBuf> {
    let name = cert.file_name()?.to_str()?;
    let stem = name.strip_suffix(".pem")?;
    let key = if stem == "cert" {
        "key.pem".to_string()
    } else {
        format!("{}-key.pem", stem.strip_suffix("-cert").unwrap_or(stem))
    };
    Some(cert.with_file_name(key))
}

fn describe(entry: &mut CertReport, cert: &X509Certificate<'_>) {
    entry.subject = Some(super::common_name(cert)).filter(|s| !s.is_empty());
    entry.kind = if cert.is_ca() {
        "CA".into()
    } else {
        match cert.extended_key_usage() {
            Ok(Some(eku)) => match (eku.value.server_auth, eku.value.client_auth) {
                (true, true) => "server+client".into(),
                (true, false) => "server".into(),
                (false, true) => "client".into(),
                (false, false) => "certificate (no TLS usage)".into(),
            },
            _ => "certificate".into(),
        }
    };
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => entry.names.push(format!("DNS:{n}")),
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    match ip {
                        Some(ip) => entry.names.push(format!("IP:{ip}")),
                        None => entry.names.push("IP:(malformed)".into()),
                    }
                }
                other => entry.names.push(format!("{other:?}")),
            }
        }
    }
    entry.not_before = Some(cert.validity().not_before.to_datetime());
    entry.not_after = Some(cert.validity().not_after.to_datetime());
}

fn check_validity(entry: &mut CertReport, cert: &X509Certificate<'_>, now: OffsetDateTime) {
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    if now < not_before {
        entry.problem(format!(
            "not valid yet: valid from {}",
            format_time(not_before)
        ));
    } else if now > not_after {
        entry.problem(format!("expired on {}", format_time(not_after)));
    } else {
        let days = (not_after - now).whole_days();
        if days < WARN_DAYS {
            entry.warning(format!(
                "expires in {days} days, on {}",
                format_time(not_after)
            ));
        }
    }
}

fn check_ca_itself(entry: &mut CertReport, cert: &X509Certificate<'_>) {
    if !cert.is_ca() {
        entry.problem("is not a CA certificate (no basicConstraints CA:TRUE)");
        return;
    }
    if cert.issuer() != cert.subject() {
        entry.problem(format!(
            "is not self-signed (issuer `{}`); minipaas expects a root CA",
            cert.issuer()
        ));
        return;
    }
    match cert.verify_signature(None) {
        Ok(()) => entry.chain = Some("self-signed root, signature ok".into()),
        Err(e) => entry.problem(format!("self-signature does not verify: {e}")),
    }
}

fn check_chain(
    entry: &mut CertReport,
    cert: &X509Certificate<'_>,
    ca: &Result<X509Certificate<'_>, String>,
    ca_name: &str,
) {
    let ca = match ca {
        Ok(ca) => ca,
        Err(why) => {
            entry.problem(format!("cannot check the chain: {why}"));
            return;
        }
    };
    if cert.issuer() != ca.subject() {
        entry.problem(format!(
            "not issued by the CA `{ca_name}`: issuer is `{}`, the CA is `{}`",
            cert.issuer(),
            ca.subject()
        ));
        return;
    }
    match cert.verify_signature(Some(ca.public_key())) {
        Ok(()) => {
            entry.chain = Some(format!(
                "signed by `{}` ({ca_name}), signature ok",
                super::common_name(ca)
            ));
            let ca_end = ca.validity().not_after.to_datetime();
            if cert.validity().not_after.to_datetime() > ca_end {
                entry.warning(format!(
                    "outlives its CA, which expires on {}",
                    format_time(ca_end)
                ));
            }
        }
        Err(_) => entry.problem(format!(
            "not signed by the CA `{ca_name}`: the signature does not verify against its key \
             (another CA with the same name issued it)"
        )),
    }
}

fn check_key(entry: &mut CertReport, cert: &X509Certificate<'_>, key_path: &Path, key_name: &str) {
    match read_key(key_path) {
        Ok(key) if key_matches(&key, cert) => entry.key = Some(format!("{key_name} matches")),
        Ok(_) => entry.problem(format!("key `{key_name}` does not match this certificate")),
        Err(e) => entry.problem(error_text(&e)),
    }
    check_key_mode(entry, key_path);
}

fn check_key_mode(entry: &mut CertReport, key_path: &Path) {
    if let Ok(meta) = std::fs::metadata(key_path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            entry.warning(format!(
                "key `{}` is readable by others (mode {mode:04o}); run `chmod 600` on it",
                key_path.display()
            ));
        }
    }
}

/// An error with its sources, for a report line.
fn error_text(e: &CertsError) -> String {
    crate::error::chain(e)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "certificates in `{}`, checked against `{}` at {}",
            self.dir.display(),
            self.ca.display(),
            format_time(self.now)
        )?;
        let (mut ok, mut warned, mut failed) = (0, 0, 0);
        for e in &self.entries {
            writeln!(f)?;
            match &e.subject {
                Some(s) => writeln!(f, "{}: {} `{s}`", e.file, e.kind)?,
                None if e.kind.is_empty() => writeln!(f, "{}:", e.file)?,
                None => writeln!(f, "{}: {}", e.file, e.kind)?,
            }
            if !e.names.is_empty() {
                writeln!(f, "  names:   {}", e.names.join(", "))?;
            }
            if let (Some(nb), Some(na)) = (e.not_before, e.not_after) {
                let left = (na - self.now).whole_days();
                let tail = if left >= 0 {
                    format!("{left} days left")
                } else {
                    format!("expired {} days ago", -left)
                };
                writeln!(
                    f,
                    "  valid:   {} to {} ({tail})",
                    format_time(nb),
                    format_time(na)
                )?;
            }
            if let Some(chain) = &e.chain {
                writeln!(f, "  chain:   {chain}")?;
            }
            if let Some(key) = &e.key {
                writeln!(f, "  key:     {key}")?;
            }
            for finding in &e.findings {
                let label = match finding.severity {
                    Severity::Warning => "WARNING",
                    Severity::Problem => "PROBLEM",
                };
                writeln!(f, "  {label}: {}", finding.message)?;
            }
            if e.has(Severity::Problem) {
                failed += 1;
            } else if e.has(Severity::Warning) {
                warned += 1;
            } else {
                ok += 1;
            }
        }
        writeln!(f)?;
        write!(
            f,
            "{} checked: {ok} ok, {warned} with warnings, {failed} with problems",
            self.entries.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Ca, KeyType, Role, Validity};
    use super::*;
    use time::Duration;

    fn client() -> Role {
        Role::Client {
            name: "tester".into(),
        }
    }

    #[test]
    fn key_file_names_pair_up() {
        for (cert, key) in [
            ("d/cert.pem", "d/key.pem"),
            ("d/ca.pem", "d/ca-key.pem"),
            ("d/server-cert.pem", "d/server-key.pem"),
            ("d/foo.pem", "d/foo-key.pem"),
        ] {
            assert_eq!(key_file_for(Path::new(cert)).unwrap(), Path::new(key));
        }
    }

    #[test]
    fn findings_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("t", KeyType::EcdsaP256, Validity::days(100)).unwrap();
        ca.write(dir.path()).unwrap();
        let now = OffsetDateTime::now_utc();
        let cases = [
            (Validity::days(200), None),
            (Validity::days(10), Some((Severity::Warning, "expires in"))),
            (
                Validity::between(now - Duration::days(10), now - Duration::days(1)),
                Some((Severity::Problem, "expired on")),
            ),
            (
                Validity::between(now + Duration::days(1), now + Duration::days(10)),
                Some((Severity::Problem, "not valid yet")),
            ),
        ];
        for (validity, expected) in cases {
            ca.issue(&client(), KeyType::EcdsaP256, validity)
                .unwrap()
                .write(dir.path())
                .unwrap();
            let report = check_dir(dir.path(), None, now).unwrap();
            let entry = report.entry("cert.pem").unwrap();
            assert_eq!(entry.key.as_deref(), Some("key.pem matches"));
            match expected {
                None => assert!(entry.findings.is_empty(), "{report}"),
                Some((severity, text)) => {
                    assert_eq!(entry.findings.len(), 1, "{report}");
                    assert_eq!(entry.findings[0].severity, severity, "{report}");
                    assert!(entry.findings[0].message.contains(text), "{report}");
                }
            }
            assert_eq!(
                report.has_problems(),
                matches!(expected, Some((Severity::Problem, _)))
            );
        }
    }

    #[test]
    fn empty_dir_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let report = check_dir(dir.path(), None, OffsetDateTime::now_utc()).unwrap();
        assert!(report.has_problems());
    }
}
