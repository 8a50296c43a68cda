#!/usr/bin/env python3
"""Tests for who_ddcc.py and who_ddcc_fhir.py: artifacts built here from the
specifications with `cbor2` and `cryptography` (not by the plugins), accepted
when valid and refused when tampered with, signed by another key, or of
another HCERT kind (an EU DCC). Run: python3 -m unittest test_who_ddcc (from
this directory)."""

import base64
import copy
import datetime
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zlib

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
HC1 = os.path.join(HERE, "who_ddcc.py")
FHIR = os.path.join(HERE, "who_ddcc_fhir.py")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def base45_encode(data):
    # RFC 9285 §4.1.
    out = []
    for i in range(0, len(data), 2):
        chunk = data[i:i + 2]
        if len(chunk) == 2:
            n = chunk[0] * 256 + chunk[1]
            c, n = n % 45, n // 45
            d, e = n % 45, n // 45
            out += [ALPHABET[c], ALPHABET[d], ALPHABET[e]]
        else:
            n = chunk[0]
            out += [ALPHABET[n % 45], ALPHABET[n // 45]]
    return "".join(out)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw_sig(key, data):
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def self_signed(key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DDCC test DSC"),
                      x509.NameAttribute(NameOID.COUNTRY_NAME, "IN")])
    now = datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))


CORE = {
    "name": "Bhaya Mitra",
    "birthDate": "1994-11-30",
    "sex": "male",
    "certificate": {
        "period": {"start": "2021-05-02T10:21:18Z", "end": "2022-05-02T10:21:18Z"},
        "issuer": {"identifier": {"value": "did:web:example.org"}},
        "hcid": {"value": "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0"},
        "version": "RC-2.0.0",
    },
    "vaccination": {
        "vaccine": {"system": "http://id.who.int/icd11/mms", "code": "XM9QW8"},
        "brand": {"system": "http://id.who.int/icd11/mms", "code": "XM97T2"},
        "manufacturer": {"code": "Serum Institute of India"},
        "lot": "MB3428BX",
        "date": "2021-05-02T10:21:18Z",
        "validFrom": "2021-05-02",
        "dose": 2,
        "totalDoses": 2,
        "country": {"system": "urn:iso:std:iso:3166", "code": "IND"},
        "centre": "ABC Medical Center",
        "disease": {"system": "http://id.who.int/icd11/mms", "code": "RA01"},
    },
}


def hc1(key, cert, core=CORE, subclaim=2, alg=-7, kid=None, tag=18, tamper=None):
    der = cert.public_bytes(serialization.Encoding.DER)
    kid = hashlib.sha256(der).digest()[:8] if kid is None else kid
    protected = cbor2.dumps({1: alg, 4: kid})
    claims = {1: "IN", 6: 1619950878, 4: 1651486878, -260: {subclaim: core}}
    payload = cbor2.dumps(claims)
    sig = raw_sig(key, cbor2.dumps(["Signature1", protected, b"", payload]))
    if tamper == "payload":
        payload = payload.replace(b"MB3428BX", b"MB3428BY")
    msg = [protected, {}, payload, sig]
    raw = cbor2.dumps(cbor2.CBORTag(tag, msg) if tag is not None else msg)
    return "HC1:" + base45_encode(zlib.compress(raw, 9))


def run(script, keyfile, text):
    return subprocess.run([sys.executable, script, keyfile], input=text,
                          capture_output=True, text=True, timeout=60)


class Hc1Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.key = ec.generate_private_key(ec.SECP256R1())
        cls.cert = self_signed(cls.key)
        cls.pem = os.path.join(cls.tmp.name, "dsc.pem")
        with open(cls.pem, "wb") as f:
            f.write(cls.cert.public_bytes(serialization.Encoding.PEM))
        cls.other = ec.generate_private_key(ec.SECP256R1())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_base45_vectors(self):
        sys.path.insert(0, HERE)
        import who_ddcc
        # RFC 9285 §4.3 examples.
        self.assertEqual(base45_encode(b"AB"), "BB8")
        self.assertEqual(base45_encode(b"Hello!!"), "%69 VD92EX0")
        self.assertEqual(base45_encode(b"base-45"), "UJCLQE7W581")
        self.assertEqual(who_ddcc.base45_decode("QED8WEX0"), b"ietf!")
        with self.assertRaises(who_ddcc.Invalid):
            who_ddcc.base45_decode("GGW")  # 65536 + ... out of range
        with self.assertRaises(who_ddcc.Invalid):
            who_ddcc.base45_decode("A")

    def test_accepts_a_valid_artifact(self):
        r = run(HC1, self.pem, hc1(self.key, self.cert))
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["cwt"], {"iss": "IN", "iat": 1619950878, "exp": 1651486878})
        self.assertEqual(out["ddcc"]["certificate"]["hcid"]["value"], "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0")
        self.assertEqual(out["ddcc"]["vaccination"]["lot"], "MB3428BX")

    def test_refuses_a_flipped_byte(self):
        text = hc1(self.key, self.cert)
        # Flip a byte in the signed payload, re-pack (valid ZLIB and Base45).
        sys.path.insert(0, HERE)
        import who_ddcc
        raw = bytearray(zlib.decompress(who_ddcc.base45_decode(text[4:])))
        at = raw.find(b"MB3428BX")
        raw[at] ^= 0x01
        flipped = "HC1:" + base45_encode(zlib.compress(bytes(raw)))
        r = run(HC1, self.pem, flipped)
        self.assertEqual(r.returncode, 1)
        self.assertIn("signature", r.stderr)

    def test_refuses_other_key_wrong_kid_eu_dcc_and_garbage(self):
        cases = {
            "other key": hc1(self.other, self.cert),
            "wrong kid": hc1(self.key, self.cert, kid=b"\x00" * 8),
            "eu dcc": hc1(self.key, self.cert, subclaim=1),
            "alg": hc1(self.key, self.cert, alg=-37),
            "untagged": hc1(self.key, self.cert, tag=None),
            "tampered": hc1(self.key, self.cert, tamper="payload"),
            "no dose": hc1(self.key, self.cert, core={
                **CORE, "vaccination": {k: v for k, v in CORE["vaccination"].items() if k != "dose"}}),
            "garbage": "this is not a certificate",
            "bad base45": "HC1:~~~",
        }
        for name, text in cases.items():
            with self.subTest(name):
                r = run(HC1, self.pem, text)
                self.assertEqual(r.returncode, 1, name)
                self.assertTrue(r.stderr.strip(), name)


def fhir_bundle():
    pid, oid, iid, cid = ("urn:uuid:%08d-0000-8000-8000-000000000000" % i for i in range(4))
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:divoc:certificate-id", "value": "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0"},
        "type": "document",
        "timestamp": "2021-05-02T10:21:18Z",
        "entry": [
            {"fullUrl": cid, "resource": {
                "resourceType": "Composition", "status": "final",
                "type": {"coding": [{"system": "http://loinc.org", "code": "82593-5"}]},
                "subject": {"reference": pid}, "date": "2021-05-02T10:21:18Z",
                "author": [{"reference": oid}], "title": "DDCC",
                "section": [{"focus": {"reference": iid}, "entry": [{"reference": iid}]}]}},
            {"fullUrl": pid, "resource": {"resourceType": "Patient",
                                          "name": [{"text": "Bhaya Mitra ünïcode 𝒳"}]}},
            {"fullUrl": oid, "resource": {"resourceType": "Organization",
                                          "identifier": [{"value": "did:web:example.org"}]}},
            {"fullUrl": iid, "resource": {
                "resourceType": "Immunization", "status": "completed",
                "vaccineCode": {"coding": [{"system": "http://id.who.int/icd11/mms", "code": "XM9QW8"}]},
                "patient": {"reference": pid}, "occurrenceDateTime": "2021-05-02T10:21:18Z",
                "lotNumber": "MB3428BX",
                "protocolApplied": [{"doseNumberPositiveInt": 2, "seriesDosesPositiveInt": 2}]}},
        ],
    }


def canonical(value):
    # RFC 8785 for the values used here (strings, integers, objects, arrays),
    # written independently of the decoder's.
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + canonical(value[k])
                              for k in sorted(value, key=lambda k: k.encode("utf-16-be"))) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def sign_fhir(bundle, key, kid):
    header = b64url(json.dumps({"alg": "ES256", "kid": kid}).encode())
    signing_input = header + "." + b64url(canonical(bundle).encode("utf-8"))
    sig = raw_sig(key, signing_input.encode("ascii"))
    signed = copy.deepcopy(bundle)
    signed["signature"] = {
        "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}],
        "when": "2021-05-02T10:21:18Z",
        "who": {"identifier": {"value": "did:web:example.org"}},
        "sigFormat": "application/jose",
        "data": base64.b64encode((header + ".." + b64url(sig)).encode()).decode(),
    }
    return signed


class FhirTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, HERE)
        import who_ddcc_fhir
        cls.mod = who_ddcc_fhir
        cls.tmp = tempfile.TemporaryDirectory()
        cls.key = ec.generate_private_key(ec.SECP256R1())
        cls.kid = who_ddcc_fhir.jwk_thumbprint(cls.key.public_key())
        n = cls.key.public_key().public_numbers()
        cls.jwks = os.path.join(cls.tmp.name, "jwks.json")
        with open(cls.jwks, "w") as f:
            json.dump({"keys": [{"kty": "EC", "crv": "P-256", "kid": cls.kid,
                                 "x": b64url(n.x.to_bytes(32, "big")),
                                 "y": b64url(n.y.to_bytes(32, "big"))}]}, f)
        cls.pem = os.path.join(cls.tmp.name, "key.pem")
        with open(cls.pem, "wb") as f:
            f.write(cls.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_jcs_vectors(self):
        # RFC 8785 §3.2.3 sorting example (UTF-16 code unit order).
        obj = {"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
               "1": "One", "\U0001f600": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis"}
        keys = [k for k in json.loads(self.mod.jcs(obj))]
        self.assertEqual(keys, ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"])
        self.assertEqual(self.mod.jcs({"b": [1, "\u0001"], "a": None}), '{"a":null,"b":[1,"\\u0001"]}')

    def test_accepts_valid_with_jwks_and_pem(self):
        text = json.dumps(sign_fhir(fhir_bundle(), self.key, self.kid), indent=2)
        for keys in (self.jwks, self.pem):
            r = run(FHIR, keys, text)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = json.loads(r.stdout)
            self.assertEqual(out["certificateId"], "01F4Q8ZJ6M3T9V2K7XBC5RWD8N0")
            self.assertNotIn("signature", out["bundle"])

    def test_refuses_tampered_and_foreign(self):
        good = sign_fhir(fhir_bundle(), self.key, self.kid)
        tampered = copy.deepcopy(good)
        tampered["entry"][3]["resource"]["lotNumber"] = "MB3428BY"
        other = sign_fhir(fhir_bundle(), ec.generate_private_key(ec.SECP256R1()), self.kid)
        unknown_kid = sign_fhir(fhir_bundle(), self.key, "nope")
        unsigned = fhir_bundle()
        not_doc = copy.deepcopy(good)
        not_doc["type"] = "collection"
        attached = copy.deepcopy(good)
        attached["signature"]["data"] = base64.b64encode(b"e30.e30.AA").decode()
        for name, doc in {"tampered": tampered, "other key": other, "unknown kid": unknown_kid,
                          "unsigned": unsigned, "not a document": not_doc,
                          "attached payload": attached}.items():
            with self.subTest(name):
                r = run(FHIR, self.jwks, json.dumps(doc))
                self.assertEqual(r.returncode, 1, name)
                self.assertTrue(r.stderr.strip())
        r = run(FHIR, self.jwks, "not json")
        self.assertEqual(r.returncode, 1)


if __name__ == "__main__":
    unittest.main()
