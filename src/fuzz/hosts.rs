//! What hosts hand back: known_hosts files, and a host's answers to the batched path probes.

use super::*;

const ED_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIIIrQs5Ov4ENLmnGMqL9MtsNkJOPYA8TM6TqA2sguu+N";

const ED_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOAyXpnscWeVsy3+iBWcCtM5GpAlg7F6cs3zlzYmloay";

#[test]
fn fuzz_known_hosts() {
    let dir = tempfile::tempdir().unwrap();
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    // `|1|salt|hash` of `node1`, as `ssh-keygen -H` writes it.
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mac = Hmac::<sha1::Sha1>::new_from_slice(&[7u8; 20])
        .unwrap()
        .chain_update(b"node1")
        .finalize()
        .into_bytes();
    let hashed = format!("|1|{}|{}", b64(&[7u8; 20]), b64(&mac));
    let text = format!(
        "# known hosts\nnode1 ssh-ed25519 {ED_A}\n[127.0.0.1]:40001 ssh-ed25519 {ED_B} comment\n\
         *.example,!bad.example ssh-ed25519 {ED_A}\n@revoked * ssh-ed25519 {ED_B}\n\
         @cert-authority *.example ssh-ed25519 {ED_A}\n{hashed} ssh-ed25519 {ED_A}\n\
         node?,[10.0.0.*]:2222  ssh-ed25519\t{ED_B}\n\n"
    );
    write(dir.path(), "known_hosts", &text);
    let key = |b64: &str| russh::keys::PublicKey::from_openssh(&format!("ssh-ed25519 {b64}"));
    let keys = [key(ED_A).unwrap(), key(ED_B).unwrap()];
    run(Target {
        name: "known_hosts",
        seeds: vec![(PathBuf::from("known_hosts"), text.into_bytes())],
        dir,
        cases: CASES_KNOWN_HOSTS,
        load: Box::new(move |dir, _| {
            let kh = KnownHosts::load(&[dir.join("known_hosts")]).map_err(|(path, e)| Failure {
                display: format!("{}: {e}", path.display()),
                chain: e.to_string(),
            })?;
            // Each check reads every line again: three names cover plain, bracketed and glob.
            for name in ["node1", "[127.0.0.1]:40001", "bad.example"] {
                for k in &keys {
                    kh.check(name, k);
                }
                kh.recorded_algorithms(name);
            }
            Ok(())
        }),
    });
}

/// Not a file but read like one: what a host prints for the batched path probes (`stat`,
/// `sha256sum`, `base64`) is untrusted. Mutated answers must give states or errors, never a
/// panic or an overflow.
#[test]
fn fuzz_probe_answers() {
    use crate::modules::files::{sha256_hex, PathProbes};
    use base64::Engine as _;
    let mut probes = PathProbes::default();
    for (path, content) in [("/a", true), ("/d", false), ("/l", false), ("/b", true)] {
        probes.add(path, content);
    }
    let stat: &[u8] = b"81a4 644 root root 0 0 2 /a\0/a\0\
        41ed 755 root root 0 0 4096 /d\0/d\0\
        a1ff 777 root root 0 0 6 /l\0/l -> /a\0\
        81a4 600 www adm 33 4 3 /b\0/b\0";
    let sums = format!("{}  /a\n{}  /b\n", sha256_hex(b"hi"), sha256_hex(b"xyz"));
    let data = format!(
        " 0 3\n{}",
        base64::engine::general_purpose::STANDARD.encode(b"hixyz")
    );
    let ok = probes.parse(std::str::from_utf8(stat).unwrap(), &sums, &data);
    assert!(ok.iter().all(Result::is_ok), "{ok:?}");
    let seeds: [&[u8]; 3] = [stat, sums.as_bytes(), data.as_bytes()];
    let seed = env_u64("MINIPAAS_FUZZ_SEED").unwrap_or(SEED);
    let mut findings = Vec::new();
    for case in 0..CASES_PROBE_ANSWERS {
        let mut rng = Rng(seed ^ (case as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x7072);
        let which = rng.below(3);
        let mut answer: Vec<String> = seeds
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        answer[which] = String::from_utf8_lossy(&mutate(&mut rng, seeds[which], &seeds)).into();
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            probes.parse(&answer[0], &answer[1], &answer[2])
        }));
        if parsed.is_err() {
            findings.push(format!("case {case} (seed {seed:#x}): {answer:?}"));
        }
    }
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}
