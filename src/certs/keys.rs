//! Keys for new certificates: the algorithms offered, and keys stored as OpenSSL and Go
//! write them.

use rcgen::{KeyPair, SignatureAlgorithm};

use super::CertsError;

/// Key algorithm for a new key. RSA is not offered: rcgen's ring backend cannot generate RSA
/// keys, and Docker (Go's crypto/tls) and OpenSSL accept all three of these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256.
    #[default]
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    #[value(name = "ecdsa-p384")]
    EcdsaP384,
    /// Ed25519.
    #[value(name = "ed25519")]
    Ed25519,
}

impl KeyType {
    fn algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }

    pub(super) fn generate(self, what: &'static str) -> Result<KeyPair, CertsError> {
        let err = |source| CertsError::Generate { what, source };
        let key = KeyPair::generate_for(self.algorithm()).map_err(err)?;
        match ed25519_pkcs8_v1(key.serialized_der()) {
            Some(v1) => KeyPair::try_from(v1.as_slice()).map_err(err),
            None => Ok(key),
        }
    }
}

/// ring writes Ed25519 keys as PKCS#8 v2 (RFC 5958, with the public key appended), which
/// OpenSSL 3.0 refuses to load ("unsupported"). The v1 form holds the same 32-byte seed and is
/// what OpenSSL and Go write, so Ed25519 keys are stored as v1. `None` for anything that is not
/// ring's exact v2 Ed25519 layout.
pub(super) fn ed25519_pkcs8_v1(der: &[u8]) -> Option<Vec<u8>> {
    // SEQUENCE(81) { INTEGER 1, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING(32) } ...
    const V2_PREFIX: &[u8] = &[
        0x30, 0x51, 0x02, 0x01, 0x01, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    // ... and the same with INTEGER 0 and no public key, 46 bytes long.
    const V1_PREFIX: &[u8] = &[
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    if der.len() != 83 {
        return None;
    }
    let seed = der.strip_prefix(V2_PREFIX)?.get(..32)?;
    Some([V1_PREFIX, seed].concat())
}
