#!/usr/bin/env python3
"""Independent EU Digital COVID Certificate decoder, written from the
specifications (not from the plugin):

- eHealth Network, "Electronic Health Certificates" technical specification
  v1.0.5 (HCERT): prefix "HC1:", base45, zlib, COSE_Sign1, CWT claim -260;
- RFC 9285 (base45), RFC 1950 (zlib), RFC 9052 (COSE_Sign1 §4.2, the
  Sig_structure §4.4), RFC 9053 §2.1 (ES256 signature = r || s),
  RFC 8392 (CWT claims iss 1, exp 4, iat 6);
- EU DCC JSON schema 1.3 (ver, nam, dob, v[0] fields and their patterns);
- eHealth Network UVCI guidelines, Annex 2 (Luhn mod N check character over
  "A-Z 0-9 / :").

Usage: eu_dcc.py DSC.pem < artifact.txt
Prints {"cwt": {...}, "dcc": {...}} and exits 0 when the artifact is well
formed and signed by the document signer certificate DSC.pem; prints the
reason on stderr and exits 1 otherwise. Needs cbor2 and cryptography.
"""

import base64
import hashlib
import json
import re
import sys
import zlib
from collections.abc import Mapping

import cbor2
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_TEXT = 64 * 1024
MAX_INFLATED = 256 * 1024
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
UVCI_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:"
COSE_SIGN1_TAG = 18
ALG_ES256 = -7
HCERT_CLAIM = -260


class Invalid(Exception):
    pass


def plain(value):
    """cbor2 may give tuples and read-only mappings (inside tags): lists and
    dicts for checking and JSON output."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def require(condition, reason):
    if not condition:
        raise Invalid(reason)


def base45_decode(text):
    """RFC 9285 §4: groups of three characters c d e give the 16-bit value
    c + d*45 + e*45^2 (two bytes, big-endian); a final pair c d gives one
    byte c + d*45. Anything else is an error."""
    values = []
    for ch in text:
        idx = BASE45.find(ch)
        require(idx >= 0, f"base45: invalid character {ch!r}")
        values.append(idx)
    require(len(values) % 3 != 1, "base45: dangling single character")
    out = bytearray()
    for i in range(0, len(values) - len(values) % 3, 3):
        c, d, e = values[i:i + 3]
        n = c + d * 45 + e * 45 * 45
        require(n <= 0xFFFF, "base45: triplet value over 65535")
        out += n.to_bytes(2, "big")
    if len(values) % 3 == 2:
        c, d = values[-2:]
        n = c + d * 45
        require(n <= 0xFF, "base45: final pair value over 255")
        out.append(n)
    return bytes(out)


def inflate(data):
    """RFC 1950 zlib stream, refused past MAX_INFLATED bytes."""
    require(len(data) >= 2 and data[0] & 0x0F == 8 and
            ((data[0] << 8) | data[1]) % 31 == 0, "zlib: no RFC 1950 header")
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_INFLATED)
    except zlib.error as e:
        raise Invalid(f"zlib: {e}")
    require(not d.unconsumed_tail, f"zlib: inflates past {MAX_INFLATED} bytes")
    require(d.eof, "zlib: truncated stream")
    require(not d.unused_data, "zlib: trailing bytes after the stream")
    return out


def luhn_mod_n_valid(text):
    """Annex 2: code points of A-Z 0-9 / : (N = 38); from the rightmost
    character (the check character) weights 1, 2, 1, ...; each product's
    base-N digits summed; valid when the total is a multiple of N."""
    n = len(UVCI_ALPHABET)
    total = 0
    for i, ch in enumerate(reversed(text)):
        cp = UVCI_ALPHABET.find(ch)
        if cp < 0:
            return False
        product = cp * (2 if i % 2 else 1)
        total += product // n + product % n
    return total % n == 0


def check_uvci(ci):
    require(isinstance(ci, str) and len(ci) <= 80, "v[0].ci: not a string of at most 80 characters")
    m = re.fullmatch(r"URN:UVCI:01:([A-Z]{2}):([A-Z0-9/:]+)#(.)", ci)
    require(m is not None, f"v[0].ci: not URN:UVCI:01:<CC>:<opaque>#<check>: {ci!r}")
    require(luhn_mod_n_valid(ci[:-2] + ci[-1]), "v[0].ci: Luhn mod N check character mismatch")
    return m.group(1), m.group(2)


def check_dcc(dcc):
    require(isinstance(dcc, dict), "hcert[1]: the DCC is not a map")
    require(isinstance(dcc.get("ver"), str) and re.fullmatch(r"1\.\d+\.\d+", dcc["ver"]),
            "DCC ver: not a 1.x.y schema version")
    nam = dcc.get("nam")
    require(isinstance(nam, dict), "DCC nam: missing")
    require(isinstance(nam.get("fnt"), str), "DCC nam.fnt: missing")
    for k in ("fnt", "gnt"):
        if k in nam:
            require(isinstance(nam[k], str) and len(nam[k]) <= 80 and re.fullmatch(r"[A-Z<]*", nam[k]),
                    f"DCC nam.{k}: not ICAO 9303 (A-Z and '<', at most 80)")
    for k in ("fn", "gn"):
        if k in nam:
            require(isinstance(nam[k], str) and len(nam[k]) <= 80, f"DCC nam.{k}: not a string of at most 80")
    dob = dcc.get("dob")
    require(isinstance(dob, str) and re.fullmatch(r"((19|20)\d\d(-\d\d){0,2}){0,1}", dob),
            "DCC dob: not YYYY[-MM[-DD]] or empty")
    v = dcc.get("v")
    require(isinstance(v, list) and len(v) == 1, "DCC v: not exactly one vaccination entry")
    entry = v[0]
    require(isinstance(entry, dict), "DCC v[0]: not a map")
    for k in ("tg", "vp", "mp", "ma", "dt", "co", "is", "ci"):
        require(isinstance(entry.get(k), str) and entry[k] != "", f"DCC v[0].{k}: missing")
    for k in ("dn", "sd"):
        require(isinstance(entry.get(k), int) and not isinstance(entry[k], bool) and 1 <= entry[k] <= 9,
                f"DCC v[0].{k}: not an integer 1..9")
    require(entry["sd"] >= entry["dn"], "DCC v[0]: sd below dn")
    require(re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry["dt"]), "DCC v[0].dt: not YYYY-MM-DD")
    require(re.fullmatch(r"[A-Z]{2}", entry["co"]), "DCC v[0].co: not ISO 3166-1 alpha-2")
    require(len(entry["is"]) <= 80, "DCC v[0].is: over 80 characters")
    check_uvci(entry["ci"])


def decode(text, dsc_pem):
    require(len(text) <= MAX_TEXT, "artifact: over 64 KiB")
    text = text.strip()
    require(text.startswith("HC1:"), "artifact: no HC1: prefix")
    cose = inflate(base45_decode(text[4:]))

    try:
        msg = cbor2.loads(cose)
    except Exception as e:  # cbor2 raises several error types
        raise Invalid(f"COSE: not CBOR: {e}")
    require(isinstance(msg, cbor2.CBORTag) and msg.tag == COSE_SIGN1_TAG, "COSE: not tagged 18 (COSE_Sign1)")
    arr = plain(msg.value)
    require(isinstance(arr, list) and len(arr) == 4, "COSE_Sign1: not a 4-element array")
    protected_bytes, unprotected, payload, signature = arr
    require(isinstance(protected_bytes, bytes) and protected_bytes, "COSE_Sign1: protected header not a bstr")
    require(isinstance(unprotected, dict), "COSE_Sign1: unprotected header not a map")
    require(isinstance(payload, bytes), "COSE_Sign1: payload not a bstr")
    require(isinstance(signature, bytes) and len(signature) == 64, "COSE_Sign1: signature not 64 bytes (ES256)")
    protected = plain(cbor2.loads(protected_bytes))
    require(isinstance(protected, dict), "COSE_Sign1: protected header not a map")
    require(protected.get(1) == ALG_ES256, "COSE_Sign1: alg is not -7 (ES256)")
    kid = protected.get(4, unprotected.get(4))
    require(isinstance(kid, bytes), "COSE_Sign1: no kid")

    cert = x509.load_pem_x509_certificate(dsc_pem)
    der = cert.public_bytes(serialization.Encoding.DER)
    require(kid == hashlib.sha256(der).digest()[:8], "COSE_Sign1: kid is not SHA-256(DSC)[0:8]")
    public_key = cert.public_key()
    require(isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1",
            "DSC: not a P-256 key")
    sig_structure = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    try:
        public_key.verify(encode_dss_signature(r, s), sig_structure, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Invalid("COSE_Sign1: ES256 signature does not verify")

    claims = plain(cbor2.loads(payload))
    require(isinstance(claims, dict), "CWT: claims are not a map")
    iss, exp, iat = claims.get(1), claims.get(4), claims.get(6)
    require(isinstance(iss, str) and iss, "CWT: no iss (1)")
    require(isinstance(exp, int), "CWT: no exp (4)")
    require(isinstance(iat, int), "CWT: no iat (6)")
    require(iat < exp, "CWT: exp not after iat")
    hcert = claims.get(HCERT_CLAIM)
    require(isinstance(hcert, dict) and 1 in hcert, "CWT: no hcert (-260) with key 1")
    dcc = hcert[1]
    check_dcc(dcc)
    return {
        "cwt": {"iss": iss, "iat": iat, "exp": exp, "kid": base64.b64encode(kid).decode("ascii")},
        "dcc": dcc,
    }


def main(argv):
    if len(argv) != 2:
        print("usage: eu_dcc.py DSC.pem < artifact", file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as f:
            pem = f.read()
        text = sys.stdin.buffer.read(MAX_TEXT + 1).decode("ascii")
        out = decode(text, pem)
    except Invalid as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # malformed CBOR, PEM, text: all refusals
        print(f"invalid: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, ensure_ascii=False, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
