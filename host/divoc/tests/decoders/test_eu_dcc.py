#!/usr/bin/env python3
"""Tests for eu_dcc.py: artifacts built here from the specifications with
cbor2, cryptography and zlib (not by the plugin), accepted when valid and
refused when tampered with. Run: python3 -m unittest test_eu_dcc (from this
directory)."""

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
DECODER = os.path.join(HERE, "eu_dcc.py")
BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

sys.path.insert(0, HERE)
import eu_dcc  # noqa: E402  (for its base45 and Luhn helpers' own vectors)


def base45_encode(data):
    """RFC 9285 §4: byte pairs as three base-45 digits, least significant
    first; a final odd byte as two."""
    out = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        out += [BASE45[n % 45], BASE45[n // 45 % 45], BASE45[n // 2025]]
    if len(data) % 2:
        n = data[-1]
        out += [BASE45[n % 45], BASE45[n // 45]]
    return "".join(out)


def dsc(key, name="DIVOC test DSC"):
    subject = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "IN"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2021, 1, 1, tzinfo=datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256()))


def uvci_check(body):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/:"
    n, total = len(alphabet), 0
    for i, ch in enumerate(reversed(body)):
        product = alphabet.index(ch) * (1 if i % 2 else 2)
        total += product // n + product % n
    return alphabet[(n - total % n) % n]


def dcc(**over):
    body = "URN:UVCI:01:IN:01F4Q8ZJ6M3T9V2K7XBC5RWD8N"
    entry = {"tg": "840539006", "vp": "J07BX03", "mp": "Covishield", "ma": "ORG-100001981",
             "dn": 2, "sd": 2, "dt": "2021-05-02", "co": "IN", "is": "Ministry of Health",
             "ci": f"{body}#{uvci_check(body)}"}
    entry.update(over)
    return {"ver": "1.3.0", "nam": {"fn": "Mitra", "fnt": "MITRA", "gn": "Bhaya", "gnt": "BHAYA"},
            "dob": "1994-11-30", "v": [entry]}


def cose_sign1(key, cert, claims=None, protected=None, tag=18, mutate_sig=None):
    kid = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()[:8]
    if claims is None:
        claims = {1: "IN", 4: 1651486878, 6: 1619950878, -260: {1: dcc()}}
    payload = cbor2.dumps(claims)
    protected_bytes = cbor2.dumps(protected if protected is not None else {1: -7, 4: kid})
    tbs = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if mutate_sig:
        sig = mutate_sig(sig)
    body = [protected_bytes, {}, payload, sig]
    return cbor2.dumps(cbor2.CBORTag(tag, body) if tag is not None else body)


def wrap(cose, compress=True):
    return "HC1:" + base45_encode(zlib.compress(cose, 9) if compress else cose)


def artifact(key, cert, compress=True, **kw):
    return wrap(cose_sign1(key, cert, **kw), compress)


class EuDccDecoderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.key = ec.generate_private_key(ec.SECP256R1())
        cls.cert = dsc(cls.key)
        cls.pem = os.path.join(cls.tmp.name, "dsc.pem")
        with open(cls.pem, "wb") as f:
            f.write(cls.cert.public_bytes(serialization.Encoding.PEM))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_decoder(self, text, pem=None):
        return subprocess.run([sys.executable, DECODER, pem or self.pem], input=text.encode(),
                              capture_output=True, timeout=60)

    def accepts(self, text):
        p = self.run_decoder(text)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        return json.loads(p.stdout)

    def refuses(self, text, reason, pem=None):
        p = self.run_decoder(text, pem)
        self.assertEqual(p.returncode, 1, p.stdout.decode())
        self.assertIn(reason, p.stderr.decode())

    def test_base45_rfc_examples(self):
        # RFC 9285 §4.3.
        self.assertEqual(base45_encode(b"AB"), "BB8")
        self.assertEqual(base45_encode(b"Hello!!"), "%69 VD92EX0")
        self.assertEqual(base45_encode(b"base-45"), "UJCLQE7W581")
        self.assertEqual(eu_dcc.base45_decode("QED8WEX0"), b"ietf!")
        with self.assertRaises(eu_dcc.Invalid):
            eu_dcc.base45_decode("GGW")  # 65536 + ...: over 65535
        with self.assertRaises(eu_dcc.Invalid):
            eu_dcc.base45_decode("::")  # 44 + 44*45 > 255
        # UVCI published examples.
        self.assertTrue(eu_dcc.luhn_mod_n_valid("URN:UVCI:01:NL:187/37512422923Z"))
        self.assertFalse(eu_dcc.luhn_mod_n_valid("URN:UVCI:01:NL:187/37512422923Y"))
        self.assertEqual(uvci_check("URN:UVCI:01:NL:187/37512422923"), "Z")

    def test_valid_artifact(self):
        out = self.accepts(artifact(self.key, self.cert))
        self.assertEqual(out["cwt"]["iss"], "IN")
        self.assertEqual(out["cwt"]["iat"], 1619950878)
        self.assertEqual(out["cwt"]["exp"], 1651486878)
        self.assertEqual(out["dcc"], dcc())
        self.assertEqual(out["dcc"]["v"][0]["ci"], "URN:UVCI:01:IN:01F4Q8ZJ6M3T9V2K7XBC5RWD8N#:")

    def test_kid_in_unprotected_header_is_accepted(self):
        kid = hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).digest()[:8]
        cose = cbor2.loads(cose_sign1(self.key, self.cert, protected={1: -7}))
        # The kid in the unprotected header (hcert §3.3.1 allows it).
        protected, _, payload, sig = cose.value
        self.accepts(wrap(cbor2.dumps(cbor2.CBORTag(18, [protected, {4: kid}, payload, sig]))))

    def test_flipped_signature_byte(self):
        flip = lambda sig: sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
        self.refuses(artifact(self.key, self.cert, mutate_sig=flip), "signature does not verify")

    def test_flipped_byte_anywhere(self):
        text = artifact(self.key, self.cert)
        # A changed base45 character: bad base45, zlib (adler32) or CBOR.
        for i in (5, len(text) // 2, len(text) - 3):
            c = text[i]
            other = BASE45[(BASE45.index(c) + 1) % 45]
            p = self.run_decoder(text[:i] + other + text[i + 1:])
            self.assertEqual(p.returncode, 1, f"position {i}")

    def test_tampered_payload_with_recomputed_zlib(self):
        cose = bytearray(cose_sign1(self.key, self.cert))
        pos = cose.find(b"MITRA")
        cose[pos] = ord("N")
        self.refuses(wrap(bytes(cose)), "signature does not verify")

    def test_other_dsc(self):
        other = ec.generate_private_key(ec.SECP256R1())
        pem = os.path.join(self.tmp.name, "other.pem")
        with open(pem, "wb") as f:
            f.write(dsc(other).public_bytes(serialization.Encoding.PEM))
        self.refuses(artifact(self.key, self.cert), "kid", pem)
        # Signed by another key, under this DSC's kid.
        self.refuses(artifact(other, self.cert), "signature does not verify")

    def test_structure(self):
        self.refuses(artifact(self.key, self.cert, tag=None), "tagged 18")
        self.refuses(artifact(self.key, self.cert, tag=61), "tagged 18")
        self.refuses(artifact(self.key, self.cert, compress=False), "zlib")
        kid = hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).digest()[:8]
        self.refuses(artifact(self.key, self.cert, protected={1: -37, 4: kid}), "ES256")
        self.refuses(artifact(self.key, self.cert, protected={1: -7}), "no kid")
        self.refuses(artifact(self.key, self.cert).replace("HC1:", "HC2:"), "prefix")
        self.refuses("this is not a certificate ~~~ %%%", "prefix")
        self.refuses(wrap(b"\x00" * (300 * 1024)), "inflates past")

    def test_claims_and_dcc(self):
        ok = {1: "IN", 4: 2, 6: 1, -260: {1: dcc()}}
        self.accepts(artifact(self.key, self.cert, claims=ok))
        for claims, reason in [
            ({**ok, 1: None}, "iss"),
            ({k: v for k, v in ok.items() if k != 4}, "exp"),
            ({k: v for k, v in ok.items() if k != 6}, "iat"),
            ({**ok, 4: 1, 6: 2}, "exp not after iat"),
            ({k: v for k, v in ok.items() if k != -260}, "hcert"),
            ({**ok, -260: {2: dcc()}}, "hcert"),
            ({**ok, -260: {1: {**dcc(), "nam": {"fn": "Mitra"}}}}, "fnt"),
            ({**ok, -260: {1: {**dcc(), "nam": {"fnt": "Mitra"}}}}, "ICAO"),
            ({**ok, -260: {1: {**dcc(), "dob": "30/11/1994"}}}, "dob"),
            ({**ok, -260: {1: dcc(dn=0)}}, "dn"),
            ({**ok, -260: {1: dcc(dn=3, sd=2)}}, "sd below dn"),
            ({**ok, -260: {1: dcc(ci="URN:UVCI:01:IN:01F4Q8ZJ6M3T9V2K7XBC5RWD8N#A")}}, "Luhn"),
            ({**ok, -260: {1: dcc(co="IND")}}, "co"),
            ({**ok, -260: {1: {**dcc(), "v": []}}}, "exactly one"),
        ]:
            with self.subTest(reason=reason):
                self.refuses(artifact(self.key, self.cert, claims=claims), reason)


if __name__ == "__main__":
    unittest.main()
