#!/usr/bin/env python3
"""Independent decoder for WHO DDCC:VS FHIR document Bundles signed in
Bundle.signature.

Written from the specifications, not from the plugin:
- FHIR R4 Bundle (type "document": the first entry is the Composition),
  Signature datatype (type urn:iso-astm:E1762-95:2013 1.2.840.10065.1.12.1.1
  "Author's Signature", sigFormat application/jose, data base64Binary);
- WHO DDCC IG: DDCCComposition (type LOINC 82593-5, subject -> Patient,
  a section whose focus is the DDCCImmunization), DDCCImmunization
  (vaccineCode, lotNumber, occurrenceDateTime, protocolApplied with
  doseNumberPositiveInt), DDCCOrganization;
- RFC 7515 (JWS) Appendix F (detached content: "header..signature", the
  payload being BASE64URL(JCS(Bundle without signature)) in the signing
  input), RFC 8785 (JCS), RFC 7518 §3.4 (ES256, r || s), RFC 7638 (JWK
  thumbprint, to match a PEM key to the kid).

Usage: who_ddcc_fhir.py KEYS < bundle.json
KEYS is a JWKS (JSON {"keys": [...]}), a single JWK, or a PEM public key or
certificate. Prints {"certificateId", "kid", "bundle"} on stdout and exits 0,
or prints the reason on stderr and exits 1.
Needs: cryptography.
"""

import base64
import binascii
import hashlib
import json
import sys

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_TEXT = 256 * 1024
LOINC = "http://loinc.org"


class Invalid(Exception):
    pass


def require(cond, message):
    if not cond:
        raise Invalid(message)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    require(all(c.isalnum() or c in "-_" for c in text), "not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Invalid("not base64url") from None


# --- RFC 8785 JSON Canonicalization Scheme ---------------------------------

def _jcs_string(s):
    # RFC 8785 §3.2.2.2: JSON string serialization as ECMAScript does it.
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        # RFC 8785 §3.2.2.3 (ECMAScript Number.toString); integral values only
        # here, which is all a DDCC document carries.
        require(value.is_integer() and abs(value) < 2 ** 53, "non-integral number")
        return str(int(value))
    if isinstance(value, str):
        return _jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    if isinstance(value, dict):
        # RFC 8785 §3.2.3: members sorted by their names as UTF-16 code units.
        items = sorted(value.items(), key=lambda kv: kv[0].encode("utf-16-be"))
        return "{" + ",".join(_jcs_string(k) + ":" + jcs(v) for k, v in items) + "}"
    raise Invalid(f"unexpected JSON value {type(value).__name__}")


# --- keys --------------------------------------------------------------------

def jwk_thumbprint(key):
    """RFC 7638 thumbprint of a P-256 public key."""
    n = key.public_numbers()
    members = {"crv": "P-256", "kty": "EC",
               "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


def key_from_jwk(jwk):
    require(jwk.get("kty") == "EC" and jwk.get("crv") == "P-256", "not a P-256 JWK")
    x = int.from_bytes(b64url_decode(jwk["x"]), "big")
    y = int.from_bytes(b64url_decode(jwk["y"]), "big")
    return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()


def load_keys(path):
    """kid -> public key. PEM keys are named by their JWK thumbprint."""
    with open(path, "rb") as f:
        data = f.read()
    keys = {}
    if data.lstrip().startswith(b"-----BEGIN"):
        if b"CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
        require(isinstance(key, ec.EllipticCurvePublicKey)
                and key.curve.name == "secp256r1", "the PEM key is not P-256")
        keys[jwk_thumbprint(key)] = key
        return keys
    doc = json.loads(data)
    for jwk in doc.get("keys", [doc]) if isinstance(doc, dict) else []:
        if isinstance(jwk, dict) and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
            key = key_from_jwk(jwk)
            keys[jwk.get("kid") or jwk_thumbprint(key)] = key
    require(keys, "no P-256 key in the key file")
    return keys


# --- the document --------------------------------------------------------------

def check_document(bundle):
    require(bundle.get("resourceType") == "Bundle", "not a Bundle")
    require(bundle.get("type") == "document", "not a document Bundle")
    ident = bundle.get("identifier")
    require(isinstance(ident, dict) and isinstance(ident.get("value"), str)
            and ident["value"].strip(), "no Bundle.identifier.value")
    entries = bundle.get("entry")
    require(isinstance(entries, list) and entries, "no entries")
    by_url = {}
    for e in entries:
        require(isinstance(e, dict) and isinstance(e.get("resource"), dict), "entry without resource")
        require(isinstance(e.get("fullUrl"), str), "entry without fullUrl")
        by_url[e["fullUrl"]] = e["resource"]
    comp = entries[0]["resource"]
    require(comp.get("resourceType") == "Composition", "the first entry is not a Composition")
    codings = (comp.get("type") or {}).get("coding") or []
    require(any(c.get("system") == LOINC and c.get("code") == "82593-5" for c in codings),
            "Composition.type is not LOINC 82593-5")
    patient = by_url.get((comp.get("subject") or {}).get("reference"))
    require(isinstance(patient, dict) and patient.get("resourceType") == "Patient",
            "Composition.subject does not resolve to a Patient")
    names = patient.get("name") or []
    require(any(isinstance(n, dict) and (n.get("text") or n.get("family")) for n in names),
            "the Patient has no name")
    sections = comp.get("section") or []
    require(sections, "the Composition has no section")
    imm = by_url.get((sections[0].get("focus") or {}).get("reference"))
    require(isinstance(imm, dict) and imm.get("resourceType") == "Immunization",
            "the section focus does not resolve to an Immunization")
    require((imm.get("vaccineCode") or {}).get("coding"), "Immunization.vaccineCode missing")
    require(isinstance(imm.get("lotNumber"), str) and imm["lotNumber"], "lotNumber missing")
    require(isinstance(imm.get("occurrenceDateTime"), str), "occurrenceDateTime missing")
    pa = imm.get("protocolApplied") or []
    require(pa and isinstance(pa[0].get("doseNumberPositiveInt"), int)
            and pa[0]["doseNumberPositiveInt"] >= 1, "protocolApplied.doseNumberPositiveInt missing")
    require(any(r.get("resourceType") == "Organization" for r in by_url.values()),
            "no Organization (issuer)")
    return ident["value"]


def decode(text, keys_path):
    require(len(text) <= MAX_TEXT, "artifact too large")
    try:
        bundle = json.loads(text)
    except ValueError:
        raise Invalid("not JSON") from None
    require(isinstance(bundle, dict), "not a JSON object")
    signature = bundle.pop("signature", None)
    require(isinstance(signature, dict), "no Bundle.signature")
    certificate_id = check_document(bundle)

    types = signature.get("type") or []
    require(any(t.get("system") == "urn:iso-astm:E1762-95:2013"
                and t.get("code") == "1.2.840.10065.1.12.1.1" for t in types),
            "Signature.type is not the author's signature")
    require(signature.get("sigFormat") == "application/jose", "sigFormat is not application/jose")
    require(isinstance(signature.get("when"), str), "Signature.when missing")
    require(isinstance(signature.get("who"), dict), "Signature.who missing")
    try:
        jws = base64.b64decode(signature.get("data", ""), validate=True).decode("ascii")
    except (binascii.Error, ValueError):
        raise Invalid("Signature.data is not base64 of a JWS") from None
    parts = jws.split(".")
    require(len(parts) == 3 and parts[1] == "", "not a detached-payload compact JWS")
    header = json.loads(b64url_decode(parts[0]))
    require(isinstance(header, dict), "JWS header is not an object")
    require(header.get("alg") == "ES256", "JWS alg is not ES256")
    require("b64" not in header and "crit" not in header,
            "unexpected JWS header parameters (b64/crit)")
    kid = header.get("kid")
    require(isinstance(kid, str), "no kid")
    keys = load_keys(keys_path)
    require(kid in keys, f"kid {kid} is not a known key")

    signing_input = parts[0] + "." + b64url(jcs(bundle).encode("utf-8"))
    sig = b64url_decode(parts[2])
    require(len(sig) == 64, "an ES256 signature is 64 bytes (r || s)")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        keys[kid].verify(der, signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Invalid("the signature does not verify") from None
    return {"certificateId": certificate_id, "kid": kid, "bundle": bundle}


def main(argv):
    if len(argv) != 2:
        print("usage: who_ddcc_fhir.py KEYS < bundle.json", file=sys.stderr)
        return 1
    try:
        out = decode(sys.stdin.read(), argv[1])
    except (Invalid, ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
