//! Every seed, and every input that ever crashed a target
//! (`fuzz/cases/<target>/*`, copied there by `scripts/fuzz.sh`), through
//! its target: none may panic. Each target has seeds.
#![allow(clippy::unwrap_used)]

#[test]
fn seeds_and_past_crashes_replay_cleanly() {
    let cases = divoc_fuzz::seeds::repo().join("fuzz/cases");
    for (name, target) in divoc_fuzz::TARGETS {
        let seeds = divoc_fuzz::seeds::seeds(name);
        assert!(!seeds.is_empty(), "{name} has no seeds");
        for seed in &seeds {
            target(seed);
        }
        let dir = cases.join(name);
        let mut crashes: Vec<_> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && !p.ends_with("README.md"))
            .collect();
        crashes.sort();
        for path in crashes {
            eprintln!("replaying {}", path.display());
            target(&std::fs::read(&path).unwrap());
        }
    }
}

#[test]
fn a_valid_seed_of_each_parser_is_accepted() {
    // The seeds must reach past the first check, or the fuzzer starts
    // from nothing: one valid request, CSV row, QR text and credential.
    use divoc_certificates::qr;
    let texts = divoc_fuzz::seeds::seeds("qr_text");
    assert!(texts
        .iter()
        .any(|t| qr::decode(std::str::from_utf8(t).unwrap()).is_ok()));
    let images = divoc_fuzz::seeds::seeds("qr_image");
    assert!(images.iter().any(|i| qr::read_image(i).is_ok()));
    let rows = divoc_certificates::import::parse(
        &divoc_fuzz::seeds::seeds("csv_import")[0],
        "covid-19",
        10,
        divoc_fuzz::targets::NOW_MS,
        &divoc_time::Zone::utc(),
    )
    .unwrap();
    assert_eq!(rows.len(), 1);
    let vector = &divoc_fuzz::seeds::seeds("verify_credential")[0];
    let credential: serde_json::Value = serde_json::from_slice(vector).unwrap();
    let key =
        divoc_crypto::multibase::ed25519_public_key_from_multikey(divoc_fuzz::targets::VECTOR_KEY)
            .unwrap();
    let verdict = divoc_certificates::verify::verify_credential(
        &credential,
        &|_| Some(key),
        &divoc_certificates::verify::NoStatus,
        divoc_fuzz::targets::NOW_MS,
    )
    .unwrap();
    assert!(verdict.checks.signature.ok, "{verdict:?}");
    // And the target's own check holds on it.
    divoc_fuzz::targets::verify_credential(vector);
}
