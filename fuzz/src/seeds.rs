//! Seed corpora, from the repository's test cases and vectors: each target
//! starts from inputs its parser accepts, so the fuzzer explores near them.

use std::path::Path;

use divoc_certificates::qr;
use divoc_certificates::status_list::{status_list_credential, Bitstring, StatusPurpose};
use serde_json::Value;

/// The repository's root (this crate is `fuzz/`).
pub fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Every `<dir>/*/<file>`, sorted.
fn case_files(dir: &Path, file: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join(file))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths.iter().filter_map(|p| read(p)).collect()
}

/// The W3C eddsa-jcs-2022 vector's secret key (the pair of
/// [`crate::targets::VECTOR_KEY`]; a published test key).
const VECTOR_SECRET: &str = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq";

/// `credential` re-issued by the vector key's `did:key` and signed with
/// it (proof created at a fixed time), so that it verifies in the
/// `verify_credential` target: the fuzzer starts from valid credentials.
fn signed_by_vector_key(mut credential: Value) -> Option<Vec<u8>> {
    use divoc_crypto::data_integrity::{create_proof, ProofOptions};
    use ed25519_dalek::Signer as _;
    let secret = divoc_crypto::multibase::ed25519_secret_key_from_multikey(VECTOR_SECRET).ok()?;
    let key = ed25519_dalek::SigningKey::from_bytes(&secret);
    let did = format!("did:key:{}", crate::targets::VECTOR_KEY);
    let object = credential.as_object_mut()?;
    object.remove("proof");
    object.insert("issuer".into(), did.clone().into());
    let mut options = ProofOptions::assertion(format!("{did}#{}", crate::targets::VECTOR_KEY));
    options.created = Some("2026-01-01T00:00:00Z".into());
    let signer =
        |_: &str, data: &[u8]| Ok::<_, std::convert::Infallible>(key.sign(data).to_bytes());
    let signed = create_proof(&credential, &options, &signer).ok()?;
    Some(signed.to_string().into_bytes())
}

/// Signed credentials: the W3C vector and the conformance fixture signed
/// again with the vector's key (these verify), then as they are, with a
/// stored issuance and the PDF cases' doses.
fn credentials() -> Vec<Vec<u8>> {
    let r = repo();
    let mut out: Vec<Vec<u8>> = [
        "host/crypto/tests/vectors/eddsa-jcs-2022/unsigned-credential.json",
        "conformance/fixtures/credentials/vaccination.json",
    ]
    .iter()
    .filter_map(|p| read(&r.join(p)))
    .filter_map(|b| serde_json::from_slice::<Value>(&b).ok())
    .filter_map(signed_by_vector_key)
    .collect();
    out.extend::<Vec<Vec<u8>>>(
        [
            "host/crypto/tests/vectors/eddsa-jcs-2022/signed-credential.json",
            "host/storage/tests/cases/credential-sample.json",
            "conformance/fixtures/credentials/vaccination.json",
        ]
        .iter()
        .filter_map(|p| read(&r.join(p)))
        .collect(),
    );
    for case in ["two-doses", "two-doses-second-qr"] {
        let path = r
            .join("host/pdf/tests/cases")
            .join(case)
            .join("credentials.json");
        if let Some(Value::Array(doses)) = read(&path).and_then(|b| serde_json::from_slice(&b).ok())
        {
            out.extend(doses.iter().map(|d| d.to_string().into_bytes()));
        }
    }
    out
}

/// The seeds of `target`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let r = repo();
    let cases = r.join("host/certificates/tests/cases");
    match target {
        "native_request" => case_files(&cases, "request.json"),
        "certify_request" => {
            let mut out = case_files(&cases, "payload.json");
            out.extend(case_files(&cases, "request.json"));
            out
        }
        "csv_import" => {
            let header = divoc_certificates::import::COLUMNS.join(",");
            let mut out = vec![(
                "\u{FEFF}preEnrollmentCode,recipientName,recipientMobileNumber,recipientDOB,\
                 recipientGender,recipientNationality,recipientIdentity,vaccinationBatch,\
                 vaccinationDate,vaccinationDose,vaccinationTotalDoses,vaccinationManufacturer,\
                 vaccinationName,vaccinatorName,facilityName,facilityAddressLine1,\
                 facilityDistrict,facilityState,facilityPincode\n\
                 P-1,Asha Rao,9876543210,12-Mar-1985,Female,IN,\
                 did:in.gov.uidai.aadhaar:2342343334,B-7,2021-05-01T10:00:00Z,1,2,\
                 Serum Institute,COVISHIELD,Dr. Rao,PHC Anekal,Main Road,Bengaluru,Karnataka,560001\n"
            )
            .as_bytes()
            .to_vec()];
            out.push(format!("{header}\n").into_bytes());
            for file in ["divoc-enrolments.csv", "divoc-facilities.csv"] {
                out.extend(read(&r.join("host/rollout/testdata").join(file)));
            }
            out
        }
        "rollout_upload" => {
            // The kind's byte, then the file.
            let dir = r.join("host/rollout/testdata");
            [
                (0u8, "divoc-facilities.csv"),
                (1, "divoc-vaccinators.csv"),
                (2, "divoc-enrolments.csv"),
            ]
            .iter()
            .filter_map(|(kind, file)| {
                let mut seed = vec![*kind];
                seed.extend(read(&dir.join(file))?);
                Some(seed)
            })
            .collect()
        }
        "qr_text" | "qr_image" => {
            let texts: Vec<String> = credentials()
                .iter()
                .filter_map(|c| serde_json::from_slice::<Value>(c).ok())
                .filter_map(|c| qr::encode(&c).ok())
                .collect();
            if target == "qr_text" {
                return texts.into_iter().map(String::into_bytes).collect();
            }
            // Small symbols (a few kilobytes of PNG), as the fuzzer's
            // inputs are.
            let mut out: Vec<Vec<u8>> = ["DIVOC1:ABC", "HC1:NCFOXN%TS3DH0RGPJB/IB-OM7"]
                .iter()
                .filter_map(|t| divoc_qr::encode(t.as_bytes()).ok())
                .filter_map(|m| m.to_png(2).ok())
                .collect();
            out.extend(
                texts
                    .iter()
                    .take(1)
                    .filter_map(|t| divoc_qr::encode(t.as_bytes()).ok())
                    .filter_map(|m| m.to_png(1).ok()),
            );
            out
        }
        "status_list" => {
            let mut bits = Bitstring::default();
            for i in [0, 7, 4_242, 131_071] {
                bits.set(i);
            }
            let mut out = Vec::new();
            if let Ok(encoded) = bits.encode() {
                out.push(encoded.into_bytes());
            }
            if let Ok(list) = status_list_credential(
                "https://certs.example.org/v1/status/r0",
                "did:web:certs.example.org",
                StatusPurpose::Revocation,
                &bits,
                crate::targets::NOW_MS,
                300_000,
            ) {
                out.push(list.to_string().into_bytes());
            }
            out
        }
        "jcs" => {
            let mut out = credentials();
            out.extend(case_files(&cases, "request.json"));
            out.push(
                br#"{"b":[1e21,-0,0.1,"\u0000\u001f\ud83d\ude00"],"a":{"\u00e9":null}}"#.to_vec(),
            );
            out
        }
        "verify_credential" => {
            let mut out = credentials();
            out.extend(seeds("qr_text"));
            out
        }
        _ => Vec::new(),
    }
}
