//! The HCERT container (eHealth Network, *Electronic Health Certificates*,
//! technical specification v1.0.5): a CWT (RFC 8392) whose claim -260
//! carries the DCC, signed as a COSE_Sign1 (RFC 9052 §4.2) with ES256,
//! zlib-compressed (RFC 1950), base45-encoded (RFC 9285) and prefixed with
//! the context identifier `HC1:`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ciborium::Value;
use coset::cwt::{ClaimName, ClaimsSet, Timestamp};
use coset::{
    iana, AsCborValue, CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder,
    RegisteredLabelWithPrivate, TaggedCborSerializable,
};
use divoc_sdk::Error;
use serde_json::{json, Map};
use sha2::{Digest, Sha256};

use crate::uvci;

/// Context identifier of an HCERT QR code (hcert §4.6).
pub const PREFIX: &str = "HC1:";
/// Largest artifact text decoded.
pub const MAX_TEXT: usize = 64 * 1024;
/// Largest decompressed COSE message.
pub const MAX_INFLATED: usize = 256 * 1024;
/// Deepest CBOR nesting accepted on decode (a DCC needs 5 levels).
const MAX_DEPTH: usize = 16;
/// hcert §3.3.1: the `hcert` claim key and, inside it, the EU DCC v1 key.
const HCERT_CLAIM: i64 = -260;
const EU_DCC_V1: i64 = 1;
/// An ES256 signature is `r || s`, 32 bytes each (RFC 9053 §2.1).
pub const ES256_SIGNATURE_LEN: usize = 64;
/// Bytes kept from each revocation hash (EU DCC revocation, 128 bits).
const REVOCATION_HASH_LEN: usize = 16;

fn bad(what: impl core::fmt::Display) -> Error {
    Error::invalid_input(format!("not an EU DCC: {what}"))
}

/// hcert §3.3.1 `kid`: the first 8 bytes of the SHA-256 of the document
/// signer certificate (DER).
pub fn kid(certificate_der: &[u8]) -> Vec<u8> {
    Sha256::digest(certificate_der)[..8].to_vec()
}

/// The CWT claims (hcert §3.3.2): `iss` 1, `exp` 4, `iat` 6 and
/// `hcert` -260 = `{1: DCC}`, as CBOR.
pub fn claims(
    issuer: &str,
    issued_at: i64,
    expires_at: i64,
    dcc: &serde_json::Value,
) -> Result<Vec<u8>, Error> {
    let dcc = Value::serialized(dcc).map_err(|e| Error::internal(format!("DCC to CBOR: {e}")))?;
    let claims = ClaimsSet {
        issuer: Some(issuer.to_owned()),
        expiration_time: Some(Timestamp::WholeSeconds(expires_at)),
        issued_at: Some(Timestamp::WholeSeconds(issued_at)),
        rest: vec![(
            ClaimName::Assigned(iana::CwtClaimName::Hcert),
            Value::Map(vec![(Value::from(EU_DCC_V1), dcc)]),
        )],
        ..ClaimsSet::default()
    };
    claims
        .to_vec()
        .map_err(|e| Error::internal(format!("CWT encoding: {e}")))
}

/// A tagged COSE_Sign1 (hcert §3.3.1): protected header `{1: -7, 4: kid}`,
/// empty unprotected header, `payload`; `sign` gets the Sig_structure
/// `["Signature1", protected, h'', payload]` (RFC 9052 §4.4) and returns the
/// 64-byte `r || s` signature.
pub fn sign1(
    kid: Vec<u8>,
    payload: Vec<u8>,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<Vec<u8>, Error> {
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(kid)
        .build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .try_create_signature(b"", sign)?
        .build();
    if sign1.signature.len() != ES256_SIGNATURE_LEN {
        return Err(Error::internal(
            "the host's ES256 signature is not 64 bytes",
        ));
    }
    sign1
        .to_tagged_vec()
        .map_err(|e| Error::internal(format!("COSE encoding: {e}")))
}

/// zlib (hcert §4.3, best compression), base45 (§4.4) and the prefix.
pub fn to_text(cose: &[u8]) -> String {
    let deflated = miniz_oxide::deflate::compress_to_vec_zlib(cose, 9);
    format!("{PREFIX}{}", base45::encode(deflated))
}

/// The COSE message in an `HC1:` text, inflated with bounds.
pub fn from_text(text: &str) -> Result<Vec<u8>, Error> {
    if text.len() > MAX_TEXT {
        return Err(bad(format_args!("longer than {MAX_TEXT} bytes")));
    }
    let body = text
        .trim()
        .strip_prefix(PREFIX)
        .ok_or_else(|| bad("no HC1: prefix"))?;
    // RFC 9285 §4: a trailing pair encodes one byte, so its value is at
    // most 255; the crate truncates larger values instead of refusing them.
    if let [.., c, d] = body.as_bytes() {
        if body.len() % 3 == 2 {
            match (base45_value(*c), base45_value(*d)) {
                (Some(c), Some(d)) if c + 45 * d <= 255 => {}
                _ => return Err(bad("invalid base45")),
            }
        }
    }
    let deflated = base45::decode(body).map_err(|_| bad("invalid base45"))?;
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&deflated, MAX_INFLATED).map_err(|_| {
        bad(format_args!(
            "not zlib data, or over {MAX_INFLATED} bytes inflated"
        ))
    })
}

fn base45_value(b: u8) -> Option<u32> {
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
        .iter()
        .position(|&c| c == b)
        .and_then(|p| u32::try_from(p).ok())
}

/// CBOR with bounded nesting (deeply nested input would exhaust the stack).
fn read_cbor(bytes: &[u8], what: &str) -> Result<Value, Error> {
    let mut reader = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut reader, MAX_DEPTH)
        .map_err(|e| bad(format_args!("{what} is not CBOR: {e}")))?;
    if !reader.is_empty() {
        return Err(bad(format_args!("{what} has trailing bytes")));
    }
    Ok(value)
}

/// A parsed HCERT.
#[derive(Debug)]
pub struct Hcert {
    /// `kid` from the protected header, else the unprotected one (hcert
    /// §3.3.1 allows either); empty when absent.
    pub kid: Vec<u8>,
    /// Whether the protected header says ES256 (-7).
    pub es256: bool,
    /// The Sig_structure to verify.
    pub to_be_signed: Vec<u8>,
    pub signature: Vec<u8>,
    pub issuer: Option<String>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    /// The DCC as JSON.
    pub dcc: serde_json::Value,
}

fn seconds(t: Option<Timestamp>) -> Option<i64> {
    match t? {
        Timestamp::WholeSeconds(s) => Some(s),
        // Saturating float → integer conversion; NaN becomes 0.
        #[allow(clippy::cast_possible_truncation)]
        Timestamp::FractionalSeconds(f) => Some(f as i64),
    }
}

/// Parses a COSE_Sign1 (tagged 18 or untagged, RFC 9052 §2) carrying an
/// HCERT CWT.
pub fn parse(cose: &[u8]) -> Result<Hcert, Error> {
    let value = match read_cbor(cose, "the COSE message")? {
        Value::Tag(tag, inner) if tag == CoseSign1::TAG => *inner,
        Value::Tag(tag, _) => {
            return Err(bad(format_args!("CBOR tag {tag} is not COSE_Sign1 (18)")))
        }
        untagged => untagged,
    };
    // The protected header is a byte string of CBOR: bound its nesting too
    // before coset parses it.
    if let Value::Array(items) = &value {
        if let Some(Value::Bytes(protected)) = items.first() {
            if !protected.is_empty() {
                read_cbor(protected, "the protected header")?;
            }
        }
    }
    let sign1 = CoseSign1::from_cbor_value(value)
        .map_err(|e| bad(format_args!("not a COSE_Sign1: {e:?}")))?;
    let kid = if sign1.protected.header.key_id.is_empty() {
        sign1.unprotected.key_id.clone()
    } else {
        sign1.protected.header.key_id.clone()
    };
    let es256 = sign1.protected.header.alg
        == Some(RegisteredLabelWithPrivate::Assigned(iana::Algorithm::ES256));
    let payload = sign1
        .payload
        .as_deref()
        .ok_or_else(|| bad("the COSE_Sign1 has no payload"))?;
    let claims = ClaimsSet::from_cbor_value(read_cbor(payload, "the CWT")?)
        .map_err(|e| bad(format_args!("the payload is not a CWT: {e:?}")))?;
    let hcert = claims
        .rest
        .iter()
        .find(|(name, _)| {
            *name == ClaimName::Assigned(iana::CwtClaimName::Hcert)
                || *name == ClaimName::PrivateUse(HCERT_CLAIM)
        })
        .map(|(_, v)| v)
        .ok_or_else(|| bad("the CWT has no hcert claim (-260)"))?;
    let dcc = hcert
        .as_map()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.as_integer() == Some(EU_DCC_V1.into()))
        })
        .map(|(_, v)| v)
        .ok_or_else(|| bad("the hcert claim has no EU DCC (key 1)"))?;
    let dcc: serde_json::Value = dcc
        .deserialized()
        .map_err(|e| bad(format_args!("the DCC is not JSON-like: {e}")))?;
    if !dcc.is_object() {
        return Err(bad("the DCC is not a map"));
    }
    Ok(Hcert {
        kid,
        es256,
        to_be_signed: sign1.tbs_data(b""),
        signature: sign1.signature,
        issuer: claims.issuer,
        issued_at: seconds(claims.issued_at),
        expires_at: seconds(claims.expiration_time),
        dcc,
    })
}

/// The DCC's certificate identifier (`ci` of its single v, t or r entry).
pub fn certificate_identifier(dcc: &serde_json::Value) -> Option<&str> {
    ["v", "t", "r"]
        .iter()
        .find_map(|group| dcc.get(group)?.get(0)?.get("ci")?.as_str())
}

/// The EU DCC revocation list hashes of a certificate (base64 of the first
/// 128 bits of a SHA-256): `UCI` over the `ci` string as encoded (with its
/// `URN:UVCI:` prefix and `#check`), `COUNTRYCODEUCI` over the CWT issuer
/// (`iss`) followed by `ci`, `SIGNATURE` over the ES256 signature's `r`
/// (its first 32 bytes; for other algorithms the whole signature).
pub fn revocation_hashes(
    ci: &str,
    issuer: &str,
    signature: &[u8],
    es256: bool,
) -> serde_json::Value {
    let hash = |data: &[u8]| STANDARD.encode(&Sha256::digest(data)[..REVOCATION_HASH_LEN]);
    let signed = if es256 && signature.len() == ES256_SIGNATURE_LEN {
        &signature[..ES256_SIGNATURE_LEN / 2]
    } else {
        signature
    };
    json!({
        "UCI": hash(ci.as_bytes()),
        "COUNTRYCODEUCI": hash(format!("{issuer}{ci}").as_bytes()),
        "SIGNATURE": hash(signed),
    })
}

/// `claims-json` for the host: `certificateId` (the UVCI's opaque part),
/// `expiresAt`, `issuedAt`, `issuer`, `hcert` (the DCC), `kid` (base64)
/// and `revocationHashes`.
pub fn claims_json(hcert: &Hcert) -> serde_json::Value {
    let mut out = Map::new();
    let ci = certificate_identifier(&hcert.dcc);
    if let Some(id) = ci.and_then(uvci::opaque_part) {
        out.insert("certificateId".into(), json!(id));
    }
    if let Some(exp) = hcert.expires_at {
        out.insert("expiresAt".into(), json!(exp));
    }
    if let Some(iat) = hcert.issued_at {
        out.insert("issuedAt".into(), json!(iat));
    }
    if let Some(iss) = &hcert.issuer {
        out.insert("issuer".into(), json!(iss));
    }
    out.insert("hcert".into(), hcert.dcc.clone());
    out.insert("kid".into(), json!(STANDARD.encode(&hcert.kid)));
    if let Some(ci) = ci {
        out.insert(
            "revocationHashes".into(),
            revocation_hashes(
                ci,
                hcert.issuer.as_deref().unwrap_or_default(),
                &hcert.signature,
                hcert.es256,
            ),
        );
    }
    serde_json::Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

    fn key() -> SigningKey {
        SigningKey::from_slice(&[7u8; 32]).unwrap()
    }

    fn dcc() -> serde_json::Value {
        json!({"ver": "1.3.0", "nam": {"fn": "Mitra", "fnt": "MITRA"}, "dob": "",
               "v": [{"ci": "URN:UVCI:01:NL:187/37512422923#Z", "dn": 1, "sd": 2}]})
    }

    fn make(kid: &[u8]) -> String {
        let payload = claims("NL", 100, 200, &dcc()).unwrap();
        let cose = sign1(kid.to_vec(), payload, |tbs| {
            let sig: Signature = key().sign(tbs);
            Ok(sig.to_bytes().to_vec())
        })
        .unwrap();
        to_text(&cose)
    }

    #[test]
    fn round_trip_verifies() {
        let text = make(b"12345678");
        assert!(text.starts_with("HC1:"));
        let hcert = parse(&from_text(&text).unwrap()).unwrap();
        assert_eq!(hcert.kid, b"12345678");
        assert!(hcert.es256);
        assert_eq!(hcert.issuer.as_deref(), Some("NL"));
        assert_eq!((hcert.issued_at, hcert.expires_at), (Some(100), Some(200)));
        assert_eq!(hcert.dcc, dcc());
        let sig = Signature::from_slice(&hcert.signature).unwrap();
        VerifyingKey::from(&key())
            .verify(&hcert.to_be_signed, &sig)
            .unwrap();
        let claims = claims_json(&hcert);
        assert_eq!(claims["certificateId"], "187/37512422923");
        assert_eq!(claims["expiresAt"], 200);
        assert_eq!(claims["issuedAt"], 100);
        assert_eq!(claims["issuer"], "NL");
        assert_eq!(claims["kid"], "MTIzNDU2Nzg=");
        assert_eq!(claims["hcert"], dcc());
        assert_eq!(
            claims["revocationHashes"]["UCI"],
            STANDARD.encode(&Sha256::digest(b"URN:UVCI:01:NL:187/37512422923#Z")[..16])
        );
    }

    #[test]
    fn wire_structure() {
        // RFC 9052 §4.2 / hcert §3.3.1, checked on the raw CBOR.
        let cose = from_text(&make(b"abcdefgh")).unwrap();
        let Value::Tag(18, inner) = read_cbor(&cose, "x").unwrap() else {
            panic!("untagged")
        };
        let Value::Array(items) = *inner else {
            panic!()
        };
        assert_eq!(items.len(), 4);
        let protected = read_cbor(items[0].as_bytes().unwrap(), "p").unwrap();
        assert_eq!(
            protected,
            Value::Map(vec![
                (Value::from(1), Value::from(-7)),
                (Value::from(4), Value::Bytes(b"abcdefgh".to_vec())),
            ])
        );
        assert_eq!(items[1], Value::Map(vec![]));
        let payload = read_cbor(items[2].as_bytes().unwrap(), "c").unwrap();
        let keys: Vec<_> = payload
            .as_map()
            .unwrap()
            .iter()
            .map(|(k, _)| i128::from(k.as_integer().unwrap()))
            .collect();
        assert_eq!(keys, vec![1, 4, 6, -260]);
        assert_eq!(items[3].as_bytes().unwrap().len(), 64);
        // Sig_structure = ["Signature1", protected, h'', payload].
        let hcert = parse(&cose).unwrap();
        let Value::Array(sig) = read_cbor(&hcert.to_be_signed, "s").unwrap() else {
            panic!()
        };
        assert_eq!(sig[0], Value::Text("Signature1".into()));
        assert_eq!(sig[1], items[0]);
        assert_eq!(sig[2], Value::Bytes(vec![]));
        assert_eq!(sig[3], items[2]);
    }

    #[test]
    fn untagged_and_unprotected_kid() {
        let payload = claims("XX", 1, 2, &dcc()).unwrap();
        let sign1 = CoseSign1Builder::new()
            .protected(
                HeaderBuilder::new()
                    .algorithm(iana::Algorithm::ES256)
                    .build(),
            )
            .unprotected(HeaderBuilder::new().key_id(b"kid-here".to_vec()).build())
            .payload(payload)
            .signature(vec![0; 64])
            .build();
        let hcert = parse(&sign1.to_vec().unwrap()).unwrap();
        assert_eq!(hcert.kid, b"kid-here");
        assert!(hcert.es256);
    }

    #[test]
    fn kid_is_certificate_hash_prefix() {
        assert_eq!(kid(b""), hex("e3b0c44298fc1c14"));
        assert_eq!(kid(b"abc"), hex("ba7816bf8f01cfea"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn garbage_is_invalid_input() {
        let good = make(b"12345678");
        let cose = from_text(&good).unwrap();
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            b"HC1:".to_vec(),
            b"HC1:not base45 at all".to_vec(),
            b"hc1:6BFOXN".to_vec(),
            b"this is not a certificate \0 ~~~ %%%".to_vec(),
            format!("HC1:{}", base45::encode(b"plain")).into_bytes(),
            // An over-long trailing base45 pair (":" ":" = 44 + 45*44).
            b"HC1:0000::".to_vec(),
            format!("HC1:{}", "0".repeat(MAX_TEXT)).into_bytes(),
        ];
        for text in cases {
            let text = String::from_utf8(text).unwrap();
            assert!(
                matches!(
                    from_text(&text).and_then(|c| parse(&c)),
                    Err(Error::InvalidInput(_))
                ),
                "{text:.40}"
            );
        }
        // A zip bomb: 1 MiB of zeros compresses to ~1 KiB.
        let bomb = to_text(&vec![0u8; 1 << 20]);
        assert!(matches!(from_text(&bomb), Err(Error::InvalidInput(_))));
        // Structural garbage after inflating.
        for cose in [
            vec![0xd2, 0x80],                                              // 18([])
            vec![0xd8, 0x3d, 0x80],                                        // 61([])
            vec![0x84, 0x40, 0xa0, 0xf6, 0x40],                            // nil payload
            vec![0x84, 0x40, 0xa0, 0x41, 0xa0, 0x40], // payload {} without hcert
            [cose.clone(), vec![0]].concat(),         // trailing byte
            vec![0x81; 10_000],                       // deep nesting
            vec![0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // 2^64-1 items
            vec![0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0], // huge bstr
            vec![0xbb, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // huge map
        ] {
            assert!(
                matches!(parse(&cose), Err(Error::InvalidInput(_))),
                "{cose:02x?}"
            );
        }
        // A protected header nested too deep.
        let mut deep = vec![0x84, 0x59, 0x03, 0xe8];
        deep.extend(vec![0x81; 1000]);
        deep.extend([0xa0, 0xf6, 0x40]);
        assert!(matches!(parse(&deep), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let text = make(b"12345678");
        let mut cose = from_text(&text).unwrap();
        // Flip a byte of the DCC inside the payload (its last text byte
        // before the signature keeps the CBOR well-formed).
        let hcert = parse(&cose).unwrap();
        let pos = cose.windows(5).position(|w| w == b"MITRA").unwrap();
        cose[pos] = b'N';
        let tampered = parse(&cose).unwrap();
        assert_ne!(tampered.to_be_signed, hcert.to_be_signed);
        let sig = Signature::from_slice(&tampered.signature).unwrap();
        assert!(VerifyingKey::from(&key())
            .verify(&tampered.to_be_signed, &sig)
            .is_err());
    }

    #[test]
    fn revocation_hash_inputs() {
        let sig: Vec<u8> = (0..64).collect();
        let h = revocation_hashes("URN:UVCI:01:IN:ABC#D", "IN", &sig, true);
        let expect = |d: &[u8]| STANDARD.encode(&Sha256::digest(d)[..16]);
        assert_eq!(h["UCI"], expect(b"URN:UVCI:01:IN:ABC#D"));
        assert_eq!(h["COUNTRYCODEUCI"], expect(b"INURN:UVCI:01:IN:ABC#D"));
        assert_eq!(h["SIGNATURE"], expect(&sig[..32]));
        assert_eq!(
            revocation_hashes("x", "IN", &sig, false)["SIGNATURE"],
            expect(&sig)
        );
    }
}
