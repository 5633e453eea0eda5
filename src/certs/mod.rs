//! Certificates for the Docker API's mutual TLS: one long-lived CA per cluster, server
//! certificates for the API node (`server-cert.pem`, `server-key.pem`, with a SAN for every name
//! and address) and client certificates under Docker's `DOCKER_CERT_PATH` names (`cert.pem`,
//! `key.pem`, `ca.pem`), plus [`check_dir`], which reports on what a directory holds.
//!
//! Owns key generation (rcgen over ring), signing, and the files' names, modes and atomic
//! writes. It never overwrites an existing CA unless asked to ([`init_ca`] with `force`),
//! because a new CA invalidates every certificate the old one issued. It never prints: the
//! command prints what these functions return. Private keys never appear in errors or `Debug`.

mod check;
mod files;
mod keys;
mod pem;

pub use files::write_atomic;
pub use keys::KeyType;
use pem::{common_name, key_matches, parse_cert, read_cert, read_key};

pub use check::{check_dir, CertReport, Finding, Report, Severity};

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// The CA certificate, in the CA directory and copied next to every leaf.
pub const CA_CERT: &str = "ca.pem";
/// The CA's private key; stays in the CA directory.
pub const CA_KEY: &str = "ca-key.pem";
/// The Docker daemon's certificate (`tlscert` in daemon.json).
pub const SERVER_CERT: &str = "server-cert.pem";
/// The Docker daemon's key (`tlskey` in daemon.json).
pub const SERVER_KEY: &str = "server-key.pem";
/// A client certificate, under the name Docker's `DOCKER_CERT_PATH` expects.
pub const CLIENT_CERT: &str = "cert.pem";
/// A client key, under the name Docker's `DOCKER_CERT_PATH` expects.
pub const CLIENT_KEY: &str = "key.pem";

/// Default CA lifetime: 10 years.
pub const CA_DAYS: u32 = 3650;
/// Default server and client certificate lifetime: 1 year.
pub const LEAF_DAYS: u32 = 365;
/// [`check_dir`] warns about certificates that expire within this many days.
pub const WARN_DAYS: i64 = 30;

/// Errors of the certificate layer; each names the file or directory concerned.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("cannot read `{path}`")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}` is not a PEM file")]
    NotPem { path: PathBuf },
    #[error("`{path}` holds a `{label}` block, not a certificate")]
    NotCert { path: PathBuf, label: String },
    #[error("`{path}` does not hold a valid X.509 certificate")]
    BadCert {
        path: PathBuf,
        #[source]
        source: x509_parser::error::X509Error,
    },
    #[error("`{path}` holds a `{label}` block, not a private key")]
    NotKey { path: PathBuf, label: String },
    /// Also raised for SEC1 (`EC PRIVATE KEY`) and PKCS#1 keys: the ring backend reads PKCS#8 only.
    #[error("`{path}` is not a PKCS#8 private key minipaas can use")]
    BadKey {
        path: PathBuf,
        #[source]
        source: rcgen::Error,
    },
    #[error("key `{key}` does not match certificate `{cert}`")]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("`{path}` is not a CA certificate (no basicConstraints CA:TRUE)")]
    NotCa { path: PathBuf },
    #[error("no CA in `{dir}`: create one with `minipaas certs ca --dir {dir}`")]
    NoCa { dir: PathBuf },
    #[error(
        "incomplete CA in `{dir}`: `{present}` exists but `{missing}` does not; restore it, or \
         replace the CA with `minipaas certs ca --force` (this invalidates every certificate it issued)"
    )]
    IncompleteCa {
        dir: PathBuf,
        present: &'static str,
        missing: &'static str,
    },
    #[error(
        "CA `{common_name}` expired on {not_after}; replace it with `minipaas certs ca --force` \
         and issue every certificate again"
    )]
    CaExpired {
        common_name: String,
        not_after: String,
    },
    #[error("invalid host name `{name}`: use letters, digits, `-` and `.` (or an IP address)")]
    BadHost { name: String },
    #[error("invalid validity: not_after {not_after} is not after not_before {not_before}")]
    BadValidity {
        not_before: String,
        not_after: String,
    },
    #[error("cannot create directory `{path}`")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write `{path}`")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot list `{path}`")]
    ListDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate the {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
}

impl CertsError {
    /// 1 when writing or generating failed, 2 for input the user can fix (missing or broken
    /// files, bad names) found before anything was written.
    pub fn exit_code(&self) -> i32 {
        match self {
            CertsError::CreateDir { .. }
            | CertsError::Write { .. }
            | CertsError::Generate { .. } => 1,
            _ => 2,
        }
    }
}

/// When a new certificate is valid. The command line only offers [`Validity::days`]; the
/// library also takes any window ([`Validity::between`]), which is how tests make expired and
/// not-yet-valid certificates without touching the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From an hour ago (clocks of the machines involved are rarely in perfect step) until
    /// `days` days from now.
    pub fn days(days: u32) -> Self {
        Self::days_from(OffsetDateTime::now_utc(), days)
    }

    /// Like [`Validity::days`], counted from `now`.
    pub fn days_from(now: OffsetDateTime, days: u32) -> Self {
        Self::between(
            now - Duration::hours(1),
            now + Duration::days(i64::from(days)),
        )
    }

    /// Exactly this window, truncated to whole seconds (X.509 times have no fractions).
    pub fn between(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        Self {
            not_before: not_before.replace_nanosecond(0).unwrap_or(not_before),
            not_after: not_after.replace_nanosecond(0).unwrap_or(not_after),
        }
    }

    fn checked(self) -> Result<Self, CertsError> {
        if self.not_after <= self.not_before {
            return Err(CertsError::BadValidity {
                not_before: format_time(self.not_before),
                not_after: format_time(self.not_after),
            });
        }
        Ok(self)
    }
}

/// What a leaf certificate is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// A TLS server (the Docker daemon): serverAuth, a SAN for every host and address; the
    /// first host is the subject's common name.
    Server {
        hosts: Vec<String>,
        ips: Vec<IpAddr>,
    },
    /// A TLS client (the docker CLI, minipaas): clientAuth, `name` as the common name.
    Client { name: String },
}

impl Role {
    /// The certificate and key file names for this role.
    pub fn file_names(&self) -> (&'static str, &'static str) {
        match self {
            Role::Server { .. } => (SERVER_CERT, SERVER_KEY),
            Role::Client { .. } => (CLIENT_CERT, CLIENT_KEY),
        }
    }
}

/// A certificate authority loaded from (or about to be written to) a directory.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
    common_name: String,
    not_after: OffsetDateTime,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// What [`init_ca`] did.
#[derive(Debug)]
pub enum CaInit {
    /// There was no CA; a new one was written.
    Created(Ca),
    /// `force` replaced an existing CA: every certificate the old one issued is now invalid.
    Replaced(Ca),
    /// A complete CA was already there and nothing was written.
    Exists(Ca),
}

/// Creates the CA in `dir` (ca.pem 0644, ca-key.pem 0600) unless one is already there.
/// Idempotent: with an existing CA it loads and returns it, changing no byte; only `force`
/// replaces it. A half-present CA (one of the two files) is an error, since guessing would
/// either destroy a key or leave an unusable pair.
pub fn init_ca(
    dir: &Path,
    common_name: &str,
    key_type: KeyType,
    validity: Validity,
    force: bool,
) -> Result<CaInit, CertsError> {
    let cert_exists = dir.join(CA_CERT).exists();
    let key_exists = dir.join(CA_KEY).exists();
    if !force {
        match (cert_exists, key_exists) {
            (true, true) => return Ca::load(dir).map(CaInit::Exists),
            (true, false) | (false, true) => {
                let (present, missing) = if cert_exists {
                    (CA_CERT, CA_KEY)
                } else {
                    (CA_KEY, CA_CERT)
                };
                return Err(CertsError::IncompleteCa {
                    dir: dir.to_path_buf(),
                    present,
                    missing,
                });
            }
            (false, false) => {}
        }
    }
    let ca = Ca::generate(common_name, key_type, validity)?;
    ca.write(dir)?;
    Ok(if cert_exists || key_exists {
        CaInit::Replaced(ca)
    } else {
        CaInit::Created(ca)
    })
}

impl Ca {
    /// A new self-signed CA: basicConstraints CA:TRUE with path length 0 (it signs leaves only),
    /// keyCertSign and cRLSign.
    pub fn generate(
        common_name: &str,
        key_type: KeyType,
        validity: Validity,
    ) -> Result<Ca, CertsError> {
        let validity = validity.checked()?;
        let key = key_type.generate("CA key")?;
        let mut params = base_params(common_name, validity);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|source| CertsError::Generate {
                what: "CA certificate",
                source,
            })?;
        Ok(Ca {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            common_name: common_name.to_string(),
            not_after: validity.not_after,
        })
    }

    /// Loads `ca.pem` and `ca-key.pem` from `dir`, checking that the certificate is a CA and
    /// that the key is its key.
    pub fn load(dir: &Path) -> Result<Ca, CertsError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        match (cert_path.exists(), key_path.exists()) {
            (false, false) => {
                return Err(CertsError::NoCa {
                    dir: dir.to_path_buf(),
                })
            }
            (true, false) => {
                return Err(CertsError::IncompleteCa {
                    dir: dir.to_path_buf(),
                    present: CA_CERT,
                    missing: CA_KEY,
                })
            }
            (false, true) => {
                return Err(CertsError::IncompleteCa {
                    dir: dir.to_path_buf(),
                    present: CA_KEY,
                    missing: CA_CERT,
                })
            }
            (true, true) => {}
        }
        let (cert_text, cert_der) = read_cert(&cert_path)?;
        let cert = parse_cert(&cert_path, &cert_der)?;
        if !cert.is_ca() {
            return Err(CertsError::NotCa { path: cert_path });
        }
        let key = read_key(&key_path)?;
        if !key_matches(&key, &cert) {
            return Err(CertsError::KeyMismatch {
                key: key_path,
                cert: cert_path,
            });
        }
        let common_name = common_name(&cert);
        let not_after = cert.validity().not_after.to_datetime();
        let issuer = Issuer::from_ca_cert_der(&cert_der.clone().into(), key).map_err(|_| {
            CertsError::NotCa {
                path: cert_path.clone(),
            }
        })?;
        Ok(Ca {
            cert_pem: cert_text,
            issuer,
            common_name,
            not_after,
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The subject's common name.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// When the CA expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Writes ca-key.pem (0600) then ca.pem (0644) into `dir`, creating it as 0700 if missing.
    pub fn write(&self, dir: &Path) -> Result<(), CertsError> {
        files::create_dir(dir)?;
        files::write_atomic(
            &dir.join(CA_KEY),
            self.issuer.key().serialize_pem().as_bytes(),
            files::KEY_MODE,
        )?;
        files::write_atomic(
            &dir.join(CA_CERT),
            self.cert_pem.as_bytes(),
            files::CERT_MODE,
        )
    }

    /// Issues a leaf certificate with a fresh key of `key_type`. A window reaching past the CA's
    /// own expiry is cut at the CA's `not_after` (a verifier rejects the leaf then anyway);
    /// [`Issued::clamped`] says so. Refuses when the CA itself has expired.
    pub fn issue(
        &self,
        role: &Role,
        key_type: KeyType,
        validity: Validity,
    ) -> Result<Issued, CertsError> {
        if OffsetDateTime::now_utc() > self.not_after {
            return Err(CertsError::CaExpired {
                common_name: self.common_name.clone(),
                not_after: format_time(self.not_after),
            });
        }
        let mut validity = validity.checked()?;
        let clamped = validity.not_after > self.not_after;
        if clamped {
            validity.not_after = self.not_after;
            validity = validity.checked()?;
        }
        let (common_name, sans, eku) = match role {
            Role::Server { hosts, ips } => {
                let mut sans = Vec::new();
                for host in hosts {
                    let san = host_san(host)?;
                    if !sans.contains(&san) {
                        sans.push(san);
                    }
                }
                for ip in ips {
                    let san = SanType::IpAddress(*ip);
                    if !sans.contains(&san) {
                        sans.push(san);
                    }
                }
                let cn = hosts.first().cloned().unwrap_or_default();
                (cn, sans, ExtendedKeyUsagePurpose::ServerAuth)
            }
            Role::Client { name } => (
                name.clone(),
                Vec::new(),
                ExtendedKeyUsagePurpose::ClientAuth,
            ),
        };
        let key = key_type.generate("certificate key")?;
        let mut params = base_params(&common_name, validity);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| CertsError::Generate {
                what: "certificate",
                source,
            })?;
        Ok(Issued {
            role: role.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
            not_after: validity.not_after,
            clamped,
        })
    }
}

/// A freshly issued certificate with its key and the CA certificate that signed it.
pub struct Issued {
    role: Role,
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
    not_after: OffsetDateTime,
    clamped: bool,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("role", &self.role)
            .field("not_after", &self.not_after)
            .field("clamped", &self.clamped)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// When the certificate expires.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// True when the requested lifetime was cut at the CA's expiry.
    pub fn clamped(&self) -> bool {
        self.clamped
    }

    /// Writes the key (0600), the certificate and `ca.pem` (0644) into `out`, creating it as
    /// 0700 if missing, under the role's names ([`Role::file_names`]). Existing files are
    /// replaced (that is how a certificate is rotated); `ca.pem` is left alone when it already
    /// holds this CA. Returns the paths written.
    pub fn write(&self, out: &Path) -> Result<Vec<PathBuf>, CertsError> {
        files::create_dir(out)?;
        let (cert_name, key_name) = self.role.file_names();
        let mut written = Vec::new();
        let key_path = out.join(key_name);
        files::write_atomic(&key_path, self.key_pem.as_bytes(), files::KEY_MODE)?;
        written.push(key_path);
        let cert_path = out.join(cert_name);
        files::write_atomic(&cert_path, self.cert_pem.as_bytes(), files::CERT_MODE)?;
        written.push(cert_path);
        let ca_path = out.join(CA_CERT);
        let same_ca = std::fs::read(&ca_path)
            .map(|b| b == self.ca_pem.as_bytes())
            .unwrap_or(false);
        if !same_ca {
            files::write_atomic(&ca_path, self.ca_pem.as_bytes(), files::CERT_MODE)?;
            written.push(ca_path);
        }
        Ok(written)
    }
}

/// Parameters shared by the CA and leaves: subject CN, window and a random serial number.
fn base_params(common_name: &str, validity: Validity) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    // 128 random bits, top bit clear so the DER integer stays positive within 16 bytes.
    let mut serial = rand::random::<[u8; 16]>();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params
}

/// An IP address given as `--host` becomes an IP SAN; anything else must look like a DNS name.
fn host_san(host: &str) -> Result<SanType, CertsError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let bad = || CertsError::BadHost {
        name: host.to_string(),
    };
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').enumerate().all(|(i, label)| {
            (i == 0 && label == "*")
                || (!label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        });
    if !labels_ok {
        return Err(bad());
    }
    let name = host.to_string().try_into().map_err(|_| bad())?;
    Ok(SanType::DnsName(name))
}

/// `2026-03-01 12:00 UTC`: readable, unambiguous, no locale.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests;
