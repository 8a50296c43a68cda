#!/usr/bin/env python3
"""Independent SMART Health Card decoder, written from the specification.

SMART Health Cards Framework v1.x (https://spec.smarthealth.cards, now the HL7
"SMART Health Cards and Links" IG, cards-specification) and RFC 7515/7518/7638.

Usage:  shc.py JWKS.json [--check-expiry] < artifact

The artifact on stdin is QR text (``shc:/<digits>``, or deprecated chunks
``shc:/C/N/<digits>`` one per line, in any order) or a bare compact JWS.
JWKS.json is the issuer's key set as served at ``<iss>/.well-known/jwks.json``.

Checks, each a failure (reason on stderr, exit 1):
  * numeric QR decoding: pairs of digits, ord(c) - 45, within '-'..'z';
  * compact JWS: three base64url parts (no padding);
  * header: ``alg`` "ES256", ``zip`` "DEF", ``kid`` present;
  * the key: a JWK in the set with that ``kid``, ``kty`` EC, ``crv`` P-256,
    ``use`` sig and ``alg`` ES256 when present, no private ``d``, and ``kid``
    equal to the RFC 7638 SHA-256 thumbprint recomputed here; if ``x5c`` is
    present, its first certificate carries the same public key;
  * signature: 64-byte r || s (RFC 7518 §3.4), verified over the ASCII
    ``header.payload`` with ECDSA P-256 / SHA-256;
  * payload: raw DEFLATE (RFC 1951, no zlib header; inflated size bounded),
    minified JSON with ``iss`` (string, no trailing '/'), numeric ``nbf``,
    optional numeric ``exp`` (checked against now only with --check-expiry),
    ``vc.type`` containing https://smarthealth.cards#health-card, ``vc.rid``
    (if present) from the base64url alphabet and at most 24 characters;
  * FHIR bundle: ``fhirVersion`` 4.x, Bundle of type collection, entries with
    ``resource:N`` fullUrls, a Patient (name, birthDate) and at least one
    Immunization (status completed, a CVX coding, patient reference to a
    Patient entry as ``resource:N``, occurrenceDateTime), and the QR
    minimisation rules: no Resource.id, no Resource.meta (other than
    meta.security), no DomainResource.text, no CodeableConcept.text, no
    Coding.display.

On success prints the payload JSON on stdout and exits 0.
"""

import base64
import hashlib
import json
import re
import sys
import time
import zlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography import x509

HEALTH_CARD = "https://smarthealth.cards#health-card"
CVX = "http://hl7.org/fhir/sid/cvx"
MAX_TEXT = 64 * 1024
MAX_INFLATED = 256 * 1024
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
RESOURCE_URI = re.compile(r"^resource:(0|[1-9][0-9]*)$")


class Invalid(Exception):
    pass


def b64url_decode(text, what):
    if not B64URL.match(text) or len(text) % 4 == 1:
        raise Invalid(f"{what} is not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_numeric(digits):
    if not digits or len(digits) % 2 or not digits.isdigit() or not digits.isascii():
        raise Invalid("shc:/ payload is not an even number of digits")
    out = []
    for i in range(0, len(digits), 2):
        v = int(digits[i : i + 2])
        if v > ord("z") - 45:
            raise Invalid("shc:/ digit pair outside the JWS alphabet")
        out.append(chr(v + 45))
    return "".join(out)


def qr_to_jws(text):
    lines = text.split()
    if not all(l[:5].lower() == "shc:/" for l in lines):
        raise Invalid("every line must start with shc:/")
    bodies = [l[5:] for l in lines]
    if len(bodies) == 1 and "/" not in bodies[0]:
        return from_numeric(bodies[0])
    chunks = {}
    total = None
    for body in bodies:
        m = re.fullmatch(r"([1-9][0-9]*)/([1-9][0-9]*)/([0-9]+)", body)
        if not m:
            raise Invalid("malformed shc:/C/N/ chunk")
        c, n = int(m.group(1)), int(m.group(2))
        if c > n or (total is not None and n != total) or c in chunks:
            raise Invalid("inconsistent chunk numbering")
        total = n
        chunks[c] = from_numeric(m.group(3))
    if sorted(chunks) != list(range(1, total + 1)):
        raise Invalid("missing chunks")
    return "".join(chunks[i] for i in range(1, total + 1))


def thumbprint(jwk):
    # RFC 7638 §3.2: required EC members, lexicographic order, no whitespace.
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def find_key(jwks, kid):
    keys = [k for k in jwks.get("keys", []) if isinstance(k, dict) and k.get("kid") == kid]
    if not keys:
        raise Invalid("kid not in the JWKS")
    jwk = keys[0]
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise Invalid("JWK is not an EC P-256 key")
    if jwk.get("use", "sig") != "sig" or jwk.get("alg", "ES256") != "ES256":
        raise Invalid("JWK is not an ES256 signing key")
    if "d" in jwk:
        raise Invalid("JWKS exposes a private key")
    if thumbprint(jwk) != kid:
        raise Invalid("kid is not the JWK's RFC 7638 thumbprint")
    x = b64url_decode(jwk["x"], "JWK x")
    y = b64url_decode(jwk["y"], "JWK y")
    if len(x) != 32 or len(y) != 32:
        raise Invalid("JWK coordinates are not 32 bytes")
    try:
        public = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
        ).public_key()
    except ValueError as e:
        raise Invalid(f"JWK is not a P-256 point: {e}")
    if jwk.get("x5c"):
        cert = x509.load_der_x509_certificate(base64.b64decode(jwk["x5c"][0]))
        if cert.public_key().public_numbers() != public.public_numbers():
            raise Invalid("x5c certificate does not carry the JWK's key")
    return public


def inflate(data):
    d = zlib.decompressobj(wbits=-15)
    try:
        out = d.decompress(data, MAX_INFLATED)
    except zlib.error as e:
        raise Invalid(f"payload is not raw DEFLATE: {e}")
    if d.unconsumed_tail:
        raise Invalid("inflated payload too large")
    if not d.eof or d.unused_data:
        raise Invalid("payload is not one complete raw DEFLATE stream")
    return out


def is_minified(text):
    """No whitespace outside JSON strings ("payload is minified")."""
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in " \t\r\n":
            return False
    return True


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_minimised(node, path, in_resource_root=False):
    """QR minimisation ("Payload content minified for QR codes")."""
    if isinstance(node, dict):
        if in_resource_root:
            if "id" in node:
                raise Invalid(f"{path}.id present (Resource.id)")
            if "text" in node:
                raise Invalid(f"{path}.text present (DomainResource.text)")
            meta = node.get("meta")
            if meta is not None and set(meta) != {"security"}:
                raise Invalid(f"{path}.meta has more than security")
        if "coding" in node and "text" in node:
            raise Invalid(f"{path}.text present (CodeableConcept.text)")
        if "system" in node and "code" in node and "display" in node:
            raise Invalid(f"{path}.display present (Coding.display)")
        for k, v in node.items():
            check_minimised(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            check_minimised(v, f"{path}[{i}]")


def check_bundle(subject):
    if not str(subject.get("fhirVersion", "")).startswith("4."):
        raise Invalid("fhirVersion is not FHIR R4")
    bundle = subject.get("fhirBundle")
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise Invalid("fhirBundle is not a Bundle")
    if bundle.get("type") != "collection":
        raise Invalid("Bundle.type is not collection")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise Invalid("Bundle has no entries")
    by_url = {}
    for i, entry in enumerate(entries):
        url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not RESOURCE_URI.match(url) or url in by_url:
            raise Invalid(f"entry[{i}].fullUrl is not a unique resource:N URI")
        resource = entry.get("resource")
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raise Invalid(f"entry[{i}] has no resource")
        by_url[url] = resource
        check_minimised(resource, f"entry[{i}].resource", in_resource_root=True)
    patients = [r for r in by_url.values() if r["resourceType"] == "Patient"]
    immunizations = [r for r in by_url.values() if r["resourceType"] == "Immunization"]
    if len(patients) != 1:
        raise Invalid("the bundle must hold exactly one Patient")
    patient = patients[0]
    names = patient.get("name")
    if not isinstance(names, list) or not names or not any(
        n.get("family") or n.get("given") or n.get("text") for n in names
    ):
        raise Invalid("Patient has no name")
    if not re.fullmatch(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?", str(patient.get("birthDate", ""))):
        raise Invalid("Patient.birthDate is not a FHIR date")
    if not immunizations:
        raise Invalid("the bundle holds no Immunization")
    for imm in immunizations:
        if imm.get("status") != "completed":
            raise Invalid("Immunization.status is not completed")
        codings = (imm.get("vaccineCode") or {}).get("coding") or []
        if not any(c.get("system") == CVX and str(c.get("code", "")).isdigit() for c in codings):
            raise Invalid("Immunization.vaccineCode has no CVX coding")
        ref = (imm.get("patient") or {}).get("reference")
        if not isinstance(ref, str) or not RESOURCE_URI.match(ref):
            raise Invalid("Immunization.patient is not a resource:N reference")
        if by_url.get(ref) is not patient:
            raise Invalid("Immunization.patient does not reference the Patient")
        if not re.fullmatch(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T.+)?)?)?", str(imm.get("occurrenceDateTime", ""))):
            raise Invalid("Immunization.occurrenceDateTime missing or malformed")


def decode(text, jwks, check_expiry=False):
    if len(text) > MAX_TEXT:
        raise Invalid("artifact too large")
    text = text.strip()
    jws = qr_to_jws(text) if text[:5].lower() == "shc:/" else text
    parts = jws.split(".")
    if len(parts) != 3:
        raise Invalid("not a compact JWS")
    h, p, s = parts
    try:
        header = json.loads(b64url_decode(h, "header"))
    except ValueError:
        raise Invalid("header is not JSON")
    if not isinstance(header, dict):
        raise Invalid("header is not a JSON object")
    if header.get("alg") != "ES256":
        raise Invalid("header alg is not ES256")
    if header.get("zip") != "DEF":
        raise Invalid("header zip is not DEF")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Invalid("header has no kid")
    public = find_key(jwks, kid)
    sig = b64url_decode(s, "signature")
    if len(sig) != 64:
        raise Invalid("signature is not 64-byte r || s")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, f"{h}.{p}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Invalid("bad signature")
    raw = inflate(b64url_decode(p, "payload"))
    try:
        text_payload = raw.decode("utf-8")
        payload = json.loads(text_payload)
    except ValueError:
        raise Invalid("payload is not UTF-8 JSON")
    if not isinstance(payload, dict):
        raise Invalid("payload is not a JSON object")
    if not is_minified(text_payload):
        raise Invalid("payload is not minified (whitespace outside strings)")
    iss = payload.get("iss")
    if not isinstance(iss, str) or not iss or iss.endswith("/"):
        raise Invalid("iss missing or has a trailing /")
    if not is_number(payload.get("nbf")):
        raise Invalid("nbf missing or not a number")
    if "exp" in payload:
        if not is_number(payload["exp"]):
            raise Invalid("exp is not a number")
        if check_expiry and payload["exp"] < time.time():
            raise Invalid("card expired")
    vc = payload.get("vc")
    if not isinstance(vc, dict):
        raise Invalid("vc missing")
    if not isinstance(vc.get("type"), list) or HEALTH_CARD not in vc["type"]:
        raise Invalid("vc.type lacks #health-card")
    if "rid" in vc:
        rid = vc["rid"]
        if not isinstance(rid, str) or not rid or len(rid) > 24 or not B64URL.match(rid):
            raise Invalid("vc.rid is not ≤ 24 base64url characters")
    subject = vc.get("credentialSubject")
    if not isinstance(subject, dict):
        raise Invalid("vc.credentialSubject missing")
    check_bundle(subject)
    return payload


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        print("usage: shc.py JWKS.json [--check-expiry] < artifact", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as f:
            jwks = json.load(f)
        payload = decode(sys.stdin.read(), jwks, "--check-expiry" in argv)
    except Invalid as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        print(f"invalid: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(payload, sys.stdout, ensure_ascii=False, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
