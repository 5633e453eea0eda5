//! Reading certificates and keys back from their PEM files.

use std::path::Path;

use rcgen::{KeyPair, PublicKeyData};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{files, CertsError};

/// A PEM certificate file: its text (kept verbatim, so copies are byte-identical) and the DER of
/// its first block, which must be a certificate.
pub(super) fn read_cert(path: &Path) -> Result<(String, Vec<u8>), CertsError> {
    let bytes = files::read(path)?;
    let mut blocks = files::pem_blocks(path, &bytes)?;
    let first = blocks.remove(0);
    if first.label != "CERTIFICATE" {
        return Err(CertsError::NotCert {
            path: path.to_path_buf(),
            label: first.label,
        });
    }
    // pem_blocks decoded it, so the text is ASCII armour around base64.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok((text, first.contents))
}

pub(super) fn parse_cert<'a>(
    path: &Path,
    der: &'a [u8],
) -> Result<X509Certificate<'a>, CertsError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| CertsError::BadCert {
            path: path.to_path_buf(),
            source: match e {
                x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e,
                x509_parser::nom::Err::Incomplete(_) => {
                    x509_parser::error::X509Error::InvalidCertificate
                }
            },
        })
}

/// A PKCS#8 private key from a PEM file.
pub(super) fn read_key(path: &Path) -> Result<KeyPair, CertsError> {
    let bytes = files::read(path)?;
    let blocks = files::pem_blocks(path, &bytes)?;
    let Some(block) = blocks.iter().find(|b| files::is_key_label(&b.label)) else {
        return Err(CertsError::NotKey {
            path: path.to_path_buf(),
            label: blocks[0].label.clone(),
        });
    };
    KeyPair::try_from(block.contents.as_slice()).map_err(|source| CertsError::BadKey {
        path: path.to_path_buf(),
        source,
    })
}

/// True when `key`'s public half is the one in `cert`.
pub(super) fn key_matches(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.der_bytes() == cert.public_key().subject_public_key.data.as_ref()
}

pub(super) fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or("")
        .to_string()
}
