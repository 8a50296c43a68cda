#!/usr/bin/env python3
"""Independent decoder for WHO DDCC:VS HCERT artifacts (`HC1:` QR text).

Written from the specifications, not from the plugin:
- WHO SMART Trust "Electronic Health Certificate Specification" (HCERT)
  §3 (CWT claims: iss 1, exp 4, iat 6, hcert -260; COSE protected header
  alg 1 / kid 4, kid = first 8 bytes of SHA-256 of the DSC DER) and §4.2
  (ZLIB, Base45, context identifier "HC1:");
- RFC 9285 (Base45), RFC 1950 (ZLIB), RFC 8392 (CWT), RFC 9052 §4.2/§4.4
  (COSE_Sign1, tag 18, Sig_structure "Signature1"), RFC 9053 §2.1 (ES256,
  r || s signature);
- WHO DDCC IG logical model DDCCCoreDataSet.VS (name, birthDate,
  vaccination.vaccine/date/dose/lot, certificate.hcid), carried in the
  HCERT sub-claim -260 / 2 (the DDCC IG's CWT model).

Usage: who_ddcc.py DSC.pem < artifact.txt
Prints {"cwt": {...}, "ddcc": {...}} on stdout and exits 0, or prints the
reason on stderr and exits 1.
Needs: cbor2, cryptography.
"""

import hashlib
import json
from collections.abc import Mapping
import sys
import zlib

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PREFIX = "HC1:"
DDCC_VS_SUBCLAIM = 2  # DDCC IG, input/fsh/cwt.fsh: HCert 2 = DDCC:VS
MAX_TEXT = 64 * 1024
MAX_CWT = 256 * 1024

# RFC 9285 §4 (Table 1).
BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
BASE45_VALUE = {c: i for i, c in enumerate(BASE45_ALPHABET)}


class Invalid(Exception):
    pass


def base45_decode(text):
    """RFC 9285 §4.2: groups of three characters c d e give n = c + d*45 +
    e*45*45 (two bytes, n <= 65535); a final group of two gives one byte
    (n <= 255); a final single character is an error."""
    try:
        values = [BASE45_VALUE[c] for c in text]
    except KeyError as e:
        raise Invalid(f"not Base45: character {e.args[0]!r}") from None
    if len(values) % 3 == 1:
        raise Invalid("not Base45: bad length")
    out = bytearray()
    for i in range(0, len(values), 3):
        group = values[i:i + 3]
        if len(group) == 3:
            n = group[0] + group[1] * 45 + group[2] * 45 * 45
            if n > 0xFFFF:
                raise Invalid("not Base45: group out of range")
            out += n.to_bytes(2, "big")
        else:
            n = group[0] + group[1] * 45
            if n > 0xFF:
                raise Invalid("not Base45: group out of range")
            out.append(n)
    return bytes(out)


def inflate(data):
    """RFC 1950 ZLIB, refusing more than MAX_CWT bytes of output."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_CWT + 1)
    except zlib.error as e:
        raise Invalid(f"not ZLIB: {e}") from None
    if len(out) > MAX_CWT or d.unconsumed_tail:
        raise Invalid("ZLIB payload too large")
    if not d.eof:
        raise Invalid("truncated ZLIB stream")
    return out


def cbor_loads(data, what):
    try:
        return thaw(cbor2.loads(data))
    except Exception as e:  # cbor2 raises several error types
        raise Invalid(f"{what} is not CBOR: {e}") from None


def load_dsc(path):
    with open(path, "rb") as f:
        pem = f.read()
    cert = x509.load_pem_x509_certificate(pem)
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise Invalid("the DSC does not hold a P-256 key")
    der = cert.public_bytes(serialization.Encoding.DER)
    return key, hashlib.sha256(der).digest()[:8]


def thaw(value):
    """cbor2 decodes items inside a tag as immutable tuples/frozendicts."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


def require(cond, message):
    if not cond:
        raise Invalid(message)


def check_core(core):
    """DDCCCoreDataSet.VS required elements (DDCC IG logical model)."""
    require(isinstance(core, dict), "the DDCC:VS claim is not a map")
    require(isinstance(core.get("name"), str) and core["name"].strip(), "no name")
    if "birthDate" in core:
        require(isinstance(core["birthDate"], str), "birthDate is not a string")
    cert = core.get("certificate")
    require(isinstance(cert, dict), "no certificate")
    hcid = cert.get("hcid")
    require(isinstance(hcid, dict) and isinstance(hcid.get("value"), str)
            and hcid["value"].strip(), "no certificate.hcid.value")
    require(isinstance(cert.get("version"), str), "no certificate.version")
    require(isinstance(cert.get("issuer"), dict), "no certificate.issuer")
    v = core.get("vaccination")
    require(isinstance(v, dict), "no vaccination")
    for coding in ("vaccine", "brand", "country"):
        c = v.get(coding)
        require(isinstance(c, dict) and isinstance(c.get("code"), str) and c["code"],
                f"vaccination.{coding} is not a Coding")
    require(isinstance(v.get("date"), str) and v["date"], "no vaccination.date")
    require(isinstance(v.get("lot"), str) and v["lot"], "no vaccination.lot")
    dose = v.get("dose")
    require(isinstance(dose, int) and not isinstance(dose, bool) and dose >= 1,
            "vaccination.dose is not a positive integer")
    require("manufacturer" in v or "maholder" in v,
            "neither vaccination.manufacturer nor maholder (who-ddcc-data-1)")


def decode(text, dsc_path):
    text = text.strip()
    require(len(text) <= MAX_TEXT, "artifact too large")
    require(text.startswith(PREFIX), "no HC1: prefix")
    compressed = base45_decode(text[len(PREFIX):])
    raw = inflate(compressed)
    msg = cbor_loads(raw, "the ZLIB payload")
    require(isinstance(msg, cbor2.CBORTag) and msg.tag == 18,
            "not a COSE_Sign1 message with tag 18")
    arr = thaw(msg.value)
    require(isinstance(arr, list) and len(arr) == 4, "COSE_Sign1 is not a 4-element array")
    protected_bstr, unprotected, payload, signature = arr
    require(isinstance(protected_bstr, bytes) and protected_bstr, "no protected header")
    require(isinstance(unprotected, dict), "unprotected header is not a map")
    require(isinstance(payload, bytes), "payload is not a byte string")
    require(isinstance(signature, bytes), "signature is not a byte string")
    protected = cbor_loads(protected_bstr, "the protected header")
    require(isinstance(protected, dict), "protected header is not a map")
    require(protected.get(1) == -7, f"alg is not ES256 (-7): {protected.get(1)!r}")
    kid = protected.get(4)
    require(isinstance(kid, bytes), "no kid in the protected header")

    key, expected_kid = load_dsc(dsc_path)
    require(kid == expected_kid, f"kid {kid.hex()} is not the DSC's {expected_kid.hex()}")

    # RFC 9052 §4.4: Sig_structure = ["Signature1", protected, external_aad, payload].
    to_be_signed = cbor2.dumps(["Signature1", protected_bstr, b"", payload])
    require(len(signature) == 64, "an ES256 signature is 64 bytes (r || s)")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                               int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, to_be_signed, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Invalid("the signature does not verify with the DSC") from None

    claims = cbor_loads(payload, "the payload")
    require(isinstance(claims, dict), "the CWT claims set is not a map")
    iss, exp, iat = claims.get(1), claims.get(4), claims.get(6)
    require(isinstance(iss, str) and len(iss) == 2, "iss is not an ISO 3166-1 alpha-2 code")
    require(isinstance(iat, int) and not isinstance(iat, bool), "iat is not an integer")
    require(isinstance(exp, int) and not isinstance(exp, bool), "exp is not an integer")
    require(exp > iat, "exp is not after iat")
    hcert = claims.get(-260)
    require(isinstance(hcert, dict), "no hcert (-260) claim")
    require(DDCC_VS_SUBCLAIM in hcert, "no DDCC:VS (-260/2) sub-claim")
    core = hcert[DDCC_VS_SUBCLAIM]
    check_core(core)
    return {"cwt": {"iss": iss, "iat": iat, "exp": exp}, "ddcc": core}


def main(argv):
    if len(argv) != 2:
        print("usage: who_ddcc.py DSC.pem < artifact.txt", file=sys.stderr)
        return 1
    try:
        out = decode(sys.stdin.read(), argv[1])
    except (Invalid, ValueError, OSError) as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, ensure_ascii=False, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
