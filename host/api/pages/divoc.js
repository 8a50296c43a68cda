// DIVOC-rs pages: what the verifier, feedback and dashboard pages share.
// Plain ES2022 for the browser; no build step. The credential checks here
// mirror the server's (host/crypto, host/certificates):
// - QR text: "DIVOC1:" + base45 (RFC 9285) of zlib (RFC 1950) of the JCS
//   credential;
// - proofs: eddsa-jcs-2022 (VC Data Integrity EdDSA Cryptosuites v1.0
//   §3.3): SHA-256(JCS(proof options)) || SHA-256(JCS(document)), Ed25519;
// - status: Bitstring Status List v1.0 (§3.2: multibase base64url of the
//   GZIP-compressed bitstring, most significant bit first).
"use strict";

const B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

export function base45Decode(text) {
  const v = [...text].map((c) => B45.indexOf(c));
  if (v.some((x) => x < 0)) throw new Error("not base45");
  const out = [];
  for (let i = 0; i < v.length; i += 3) {
    if (i + 2 < v.length) {
      const n = v[i] + v[i + 1] * 45 + v[i + 2] * 2025;
      if (n > 0xffff) throw new Error("not base45");
      out.push(n >> 8, n & 0xff);
    } else if (i + 1 < v.length) {
      const n = v[i] + v[i + 1] * 45;
      if (n > 0xff) throw new Error("not base45");
      out.push(n);
    } else {
      throw new Error("not base45");
    }
  }
  return new Uint8Array(out);
}

const B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

export function base58Decode(text) {
  let n = 0n;
  for (const c of text) {
    const d = B58.indexOf(c);
    if (d < 0) throw new Error("not base58");
    n = n * 58n + BigInt(d);
  }
  const bytes = [];
  while (n > 0n) {
    bytes.unshift(Number(n & 0xffn));
    n >>= 8n;
  }
  for (const c of text) {
    if (c !== "1") break;
    bytes.unshift(0);
  }
  return new Uint8Array(bytes);
}

function base64urlDecode(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function inflate(bytes, format) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream(format));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

// RFC 8785 JSON Canonicalization Scheme: keys sorted by UTF-16 code units
// (JavaScript's default sort), numbers and strings as ECMAScript writes
// them.
export function jcs(value) {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) return "[" + value.map(jcs).join(",") + "]";
  const keys = Object.keys(value).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + jcs(value[k])).join(",") + "}";
}

export async function decodeQr(text) {
  const t = text.trim();
  if (!t.startsWith("DIVOC1:")) throw new Error("not a DIVOC-rs certificate QR (DIVOC1:…)");
  const json = new TextDecoder().decode(await inflate(base45Decode(t.slice(7)), "deflate"));
  return JSON.parse(json);
}

async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

// The Ed25519 public key of a Multikey (`z` + base58btc of 0xed 0x01 + key).
function multikey(multibase) {
  if (!multibase.startsWith("z")) throw new Error("unsupported multibase");
  const raw = base58Decode(multibase.slice(1));
  if (raw.length !== 34 || raw[0] !== 0xed || raw[1] !== 0x01) throw new Error("not an Ed25519 Multikey");
  return raw.slice(2);
}

// Verifies a document's eddsa-jcs-2022 proof against the keys of a DID
// document; true only when it holds.
export async function verifyProof(doc, did) {
  const proof = doc.proof;
  if (!proof || proof.cryptosuite !== "eddsa-jcs-2022" || proof.type !== "DataIntegrityProof") return false;
  const method = (did.verificationMethod || []).find((m) => m.id === proof.verificationMethod);
  if (!method || doc.issuer !== did.id) return false;
  const unsecured = { ...doc };
  delete unsecured.proof;
  const options = { ...proof };
  delete options.proofValue;
  const hash = new Uint8Array(64);
  hash.set(await sha256(jcs(options)), 0);
  hash.set(await sha256(jcs(unsecured)), 32);
  const key = await crypto.subtle.importKey("raw", multikey(method.publicKeyMultibase), { name: "Ed25519" }, false, ["verify"]);
  const sig = base58Decode(proof.proofValue.slice(1));
  return crypto.subtle.verify({ name: "Ed25519" }, key, sig, hash);
}

// Whether bit `index` is set in a (verified) status list credential.
export async function statusBit(list, index) {
  const encoded = list.credentialSubject.encodedList;
  if (!encoded.startsWith("u")) throw new Error("unsupported multibase");
  const bits = await inflate(base64urlDecode(encoded.slice(1)), "gzip");
  const byte = Math.floor(index / 8);
  if (byte >= bits.length) throw new Error("index outside the list");
  return (bits[byte] >> (7 - (index % 8))) & 1;
}

// The name of a status list from its URL (`…/v1/status/revocation-0`).
export function listName(url) {
  return url.split("/").pop();
}

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
