//! Certificates issued, read back and checked, with real keys and real tools.

use x509_parser::prelude::{FromDer, X509Certificate};

use super::keys::ed25519_pkcs8_v1;
use super::*;

fn server(hosts: &[&str], ips: &[&str]) -> Role {
    Role::Server {
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

#[test]
fn every_key_type_makes_a_ca_that_signs_verifiable_leaves() {
    for key_type in [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Ed25519] {
        let ca = Ca::generate("test CA", key_type, Validity::days(10)).unwrap();
        let leaf = ca
            .issue(
                &server(&["node1"], &["10.0.0.1"]),
                key_type,
                Validity::days(5),
            )
            .unwrap();
        let ca_der = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes())
            .unwrap()
            .1
            .contents;
        let leaf_der = x509_parser::pem::parse_x509_pem(leaf.cert_pem().as_bytes())
            .unwrap()
            .1
            .contents;
        let ca_cert = X509Certificate::from_der(&ca_der).unwrap().1;
        let leaf_cert = X509Certificate::from_der(&leaf_der).unwrap().1;
        assert!(ca_cert.is_ca(), "{key_type:?}");
        leaf_cert
            .verify_signature(Some(ca_cert.public_key()))
            .unwrap_or_else(|e| panic!("{key_type:?}: {e}"));
        assert_eq!(leaf_cert.issuer(), ca_cert.subject());
    }
}

#[test]
fn ed25519_keys_are_stored_as_pkcs8_v1() {
    let key = KeyType::Ed25519.generate("test key").unwrap();
    let der = key.serialized_der();
    assert_eq!(der.len(), 48);
    assert_eq!(&der[..5], &[0x30, 0x2e, 0x02, 0x01, 0x00]);
    assert_eq!(ed25519_pkcs8_v1(der), None);
    // ECDSA keys are left as ring writes them.
    let ec = KeyType::EcdsaP256.generate("test key").unwrap();
    assert_eq!(ed25519_pkcs8_v1(ec.serialized_der()), None);
}

#[test]
fn ca_round_trips_through_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::generate("round trip", KeyType::Ed25519, Validity::days(10)).unwrap();
    ca.write(dir.path()).unwrap();
    let loaded = Ca::load(dir.path()).unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.common_name(), "round trip");
    assert_eq!(loaded.not_after(), ca.not_after());
}

#[test]
fn leaf_lifetime_is_cut_at_the_ca_expiry() {
    let ca = Ca::generate("short", KeyType::EcdsaP256, Validity::days(3)).unwrap();
    let leaf = ca
        .issue(
            &Role::Client { name: "c".into() },
            KeyType::EcdsaP256,
            Validity::days(365),
        )
        .unwrap();
    assert!(leaf.clamped());
    assert_eq!(leaf.not_after(), ca.not_after());
}

#[test]
fn host_names_are_checked() {
    for ok in [
        "node1",
        "api.example.com",
        "*.example.com",
        "10.1.2.3",
        "::1",
    ] {
        assert!(host_san(ok).is_ok(), "{ok}");
    }
    for bad in ["", "a b", "-x", "x..y", "ünï", "a/b", "*x.example.com"] {
        assert!(
            matches!(host_san(bad), Err(CertsError::BadHost { .. })),
            "{bad}"
        );
    }
}

#[test]
fn empty_window_is_refused() {
    let now = OffsetDateTime::now_utc();
    let err = Ca::generate("x", KeyType::EcdsaP256, Validity::between(now, now)).unwrap_err();
    assert!(matches!(err, CertsError::BadValidity { .. }));
}

#[test]
fn debug_never_shows_key_material() {
    let ca = Ca::generate("dbg", KeyType::EcdsaP256, Validity::days(1)).unwrap();
    let leaf = ca
        .issue(&server(&["n"], &[]), KeyType::EcdsaP256, Validity::days(1))
        .unwrap();
    let text = format!("{ca:?} {leaf:?}");
    assert!(!text.contains("PRIVATE"), "{text}");
}
