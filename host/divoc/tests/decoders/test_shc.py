#!/usr/bin/env python3
"""Tests for shc.py: artifacts built here from the specification with
`cryptography` (not by the plugin), accepted when valid and refused when
tampered with. Run: python3 -m unittest test_shc (from this directory)."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zlib

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

HERE = os.path.dirname(os.path.abspath(__file__))
DECODER = os.path.join(HERE, "shc.py")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_of(key):
    n = key.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(n.x.to_bytes(32, "big")),
        "y": b64url(n.y.to_bytes(32, "big")),
    }
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    jwk.update(kid=b64url(hashlib.sha256(canonical.encode()).digest()), use="sig", alg="ES256")
    return jwk


def self_signed_der(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test document signer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def payload(**over):
    p = {
        "iss": "https://divoc.example.in",
        "nbf": 1619950878,
        "vc": {
            "type": ["https://smarthealth.cards#health-card", "https://smarthealth.cards#immunization"],
            "credentialSubject": {
                "fhirVersion": "4.0.1",
                "fhirBundle": {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [
                        {"fullUrl": "resource:0", "resource": {
                            "resourceType": "Patient",
                            "name": [{"family": "Mitra", "given": ["Bhaya"]}],
                            "birthDate": "1994-11-30"}},
                        {"fullUrl": "resource:1", "resource": {
                            "resourceType": "Immunization",
                            "status": "completed",
                            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "210"}]},
                            "patient": {"reference": "resource:0"},
                            "occurrenceDateTime": "2021-05-02",
                            "lotNumber": "MB3428BX",
                            "performer": [{"actor": {"display": "ABC Medical Center"}}]}},
                    ],
                },
            },
            "rid": "AQPCj4wwk6Mt",
        },
    }
    p.update(over)
    return p


def raw_deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def jws(key, kid, claims, header=None, compress=raw_deflate, minify=True):
    header = header or {"zip": "DEF", "alg": "ES256", "kid": kid}
    body = json.dumps(claims, separators=(",", ":") if minify else (", ", ": ")).encode()
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(compress(body))}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def numeric(text):
    return "".join(f"{ord(c) - 45:02d}" for c in text)


class DecoderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = ec.generate_private_key(ec.SECP256R1())
        cls.jwk = jwk_of(cls.key)
        cls.kid = cls.jwk["kid"]
        cls.dir = tempfile.TemporaryDirectory()
        cls.jwks = cls.write_jwks({"keys": [cls.jwk]})

    @classmethod
    def tearDownClass(cls):
        cls.dir.cleanup()

    @classmethod
    def write_jwks(cls, jwks, name="jwks.json"):
        path = os.path.join(cls.dir.name, name)
        with open(path, "w") as f:
            json.dump(jwks, f)
        return path

    def run_decoder(self, text, jwks=None, *flags):
        return subprocess.run(
            [sys.executable, DECODER, jwks or self.jwks, *flags],
            input=text, capture_output=True, text=True, check=False,
        )

    def accepts(self, text, *flags):
        out = self.run_decoder(text, None, *flags)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)

    def refuses(self, text, why, jwks=None, *flags):
        out = self.run_decoder(text, jwks, *flags)
        self.assertEqual(out.returncode, 1, out.stdout)
        self.assertIn(why, out.stderr)

    def card(self, **over):
        return jws(self.key, self.kid, payload(**over))

    def test_accepts_qr_text_and_bare_jws(self):
        token = self.card()
        self.assertEqual(self.accepts("shc:/" + numeric(token)), payload())
        self.assertEqual(self.accepts(token + "\n"), payload())

    def test_accepts_chunks_in_any_order(self):
        token = self.card()
        half = len(token) // 2
        lines = [f"shc:/2/2/{numeric(token[half:])}", f"shc:/1/2/{numeric(token[:half])}"]
        self.assertEqual(self.accepts("\n".join(lines)), payload())
        self.refuses(lines[0], "missing chunks")

    def test_refuses_a_flipped_byte(self):
        token = self.card()
        h, p, s = token.split(".")
        sig = bytearray(base64.urlsafe_b64decode(s + "=="))
        sig[10] ^= 1
        self.refuses(f"{h}.{p}.{b64url(bytes(sig))}", "bad signature")
        digits = numeric(token)
        i = len(numeric(h)) + 40  # inside the payload
        flipped = digits[:i] + ("1" if digits[i] == "0" else "0") + digits[i + 1:]
        out = self.run_decoder("shc:/" + flipped)
        self.assertEqual(out.returncode, 1)

    def test_refuses_unknown_or_wrong_keys(self):
        other = ec.generate_private_key(ec.SECP256R1())
        self.refuses(jws(other, jwk_of(other)["kid"], payload()), "kid not in the JWKS")
        # The right key under a kid that is not its thumbprint.
        bad = dict(self.jwk, kid="not-the-thumbprint")
        path = self.write_jwks({"keys": [bad]}, "bad.json")
        self.refuses(jws(self.key, "not-the-thumbprint", payload()), "thumbprint", path)
        # Signed by another key, naming ours.
        self.refuses(jws(other, self.kid, payload()), "bad signature")

    def test_checks_x5c_like_the_hosts_jwks(self):
        # The host's jwks.json also lists Ed25519 (OKP) keys and puts x5c on
        # ES256 keys.
        okp = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "did:web:x#z6Mk"}
        good = dict(self.jwk, x5c=[base64.b64encode(self_signed_der(self.key)).decode()])
        path = self.write_jwks({"keys": [okp, good]}, "x5c.json")
        out = self.run_decoder(self.card(), path)
        self.assertEqual(out.returncode, 0, out.stderr)
        other = ec.generate_private_key(ec.SECP256R1())
        bad = dict(self.jwk, x5c=[base64.b64encode(self_signed_der(other)).decode()])
        path = self.write_jwks({"keys": [bad]}, "x5c-bad.json")
        self.refuses(self.card(), "x5c", path)

    def test_refuses_wrong_headers_and_compression(self):
        self.refuses(jws(self.key, self.kid, payload(), header={"alg": "ES256", "kid": self.kid}), "zip")
        self.refuses(jws(self.key, self.kid, payload(), header={"zip": "DEF", "alg": "ES384", "kid": self.kid}), "alg")
        self.refuses(jws(self.key, self.kid, payload(), compress=zlib.compress), "raw DEFLATE")
        self.refuses(jws(self.key, self.kid, payload(), minify=False), "minified")

    def test_refuses_malformed_text(self):
        self.refuses("shc:/567", "even number")
        self.refuses("shc:/99", "outside")
        self.refuses("this is not a certificate", "compact JWS")

    def test_checks_the_bundle(self):
        p = payload()
        p["vc"]["credentialSubject"]["fhirBundle"]["entry"][0]["resource"]["id"] = "x"
        self.refuses(jws(self.key, self.kid, p), "Resource.id")
        p = payload()
        p["vc"]["credentialSubject"]["fhirBundle"]["entry"][1]["resource"]["vaccineCode"]["coding"][0]["display"] = "AZ"
        self.refuses(jws(self.key, self.kid, p), "Coding.display")
        p = payload()
        p["vc"]["credentialSubject"]["fhirBundle"]["entry"][1]["resource"]["patient"]["reference"] = "Patient/1"
        self.refuses(jws(self.key, self.kid, p), "resource:N")
        p = payload()
        p["vc"]["type"] = ["VerifiableCredential"]
        self.refuses(jws(self.key, self.kid, p), "#health-card")
        p = payload()
        p["vc"]["rid"] = "x" * 25
        self.refuses(jws(self.key, self.kid, p), "rid")
        self.refuses(self.card(iss="https://divoc.example.in/"), "trailing")

    def test_expiry_only_with_the_flag(self):
        token = self.card(exp=1651486878)
        self.assertEqual(self.accepts(token)["exp"], 1651486878)
        self.refuses(token, "expired", None, "--check-expiry")


if __name__ == "__main__":
    unittest.main()
