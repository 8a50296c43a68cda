/*
 * SHA-256 per FIPS 180-4 (Secure Hash Standard, August 2015) and HMAC per
 * RFC 2104. Section numbers below are FIPS 180-4's unless marked RFC.
 */
#include "sha256.h"

#include <string.h>

/* §4.2.2: the first 32 bits of the fractional parts of the cube roots of
 * the first 64 primes. */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* §3.2: ROTR^n(x), n < 32. */
static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

/* §4.1.2, functions (4.2)-(4.7). */
static uint32_t ch(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (~x & z); }
static uint32_t maj(uint32_t x, uint32_t y, uint32_t z) { return (x & y) ^ (x & z) ^ (y & z); }
static uint32_t big_sigma0(uint32_t x) { return rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22); }
static uint32_t big_sigma1(uint32_t x) { return rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25); }
static uint32_t small_sigma0(uint32_t x) { return rotr(x, 7) ^ rotr(x, 18) ^ (x >> 3); }
static uint32_t small_sigma1(uint32_t x) { return rotr(x, 17) ^ rotr(x, 19) ^ (x >> 10); }

/* §3.1: words are big-endian. */
static uint32_t load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* §6.2.2: one 512-bit block M(i). */
static void compress(uint32_t h[8], const uint8_t block[SHA256_BLOCK_BYTES]) {
    uint32_t w[64];
    /* Step 1: the message schedule. */
    for (int t = 0; t < 16; t++) w[t] = load_be32(block + 4 * t);
    for (int t = 16; t < 64; t++)
        w[t] = small_sigma1(w[t - 2]) + w[t - 7] + small_sigma0(w[t - 15]) + w[t - 16];
    /* Step 2: the working variables. */
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    /* Step 3. */
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = hh + big_sigma1(e) + ch(e, f, g) + K[t] + w[t];
        uint32_t t2 = big_sigma0(a) + maj(a, b, c);
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    /* Step 4: the intermediate hash value H(i). */
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
    secure_zero(w, sizeof w);
}

void sha256_init(sha256_ctx *ctx) {
    /* §5.3.3: the initial hash value H(0). */
    static const uint32_t h0[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    memcpy(ctx->h, h0, sizeof h0);
    ctx->length = 0;
    ctx->used = 0;
}

void sha256_update(sha256_ctx *ctx, const void *data, size_t len) {
    const uint8_t *p = data;
    ctx->length += len;
    if (ctx->used > 0) {
        size_t take = SHA256_BLOCK_BYTES - ctx->used;
        if (take > len) take = len;
        memcpy(ctx->block + ctx->used, p, take);
        ctx->used += take;
        p += take;
        len -= take;
        if (ctx->used < SHA256_BLOCK_BYTES) return;
        compress(ctx->h, ctx->block);
        ctx->used = 0;
    }
    while (len >= SHA256_BLOCK_BYTES) {
        compress(ctx->h, p);
        p += SHA256_BLOCK_BYTES;
        len -= SHA256_BLOCK_BYTES;
    }
    if (len > 0) {
        memcpy(ctx->block, p, len);
        ctx->used = len;
    }
}

void sha256_final(sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_BYTES]) {
    /* §5.1.1: append the bit "1", then zeros up to 448 mod 512 bits, then
     * the message length in bits as a 64-bit big-endian integer. */
    uint64_t bits = ctx->length * 8;
    ctx->block[ctx->used++] = 0x80;
    if (ctx->used > SHA256_BLOCK_BYTES - 8) {
        memset(ctx->block + ctx->used, 0, SHA256_BLOCK_BYTES - ctx->used);
        compress(ctx->h, ctx->block);
        ctx->used = 0;
    }
    memset(ctx->block + ctx->used, 0, SHA256_BLOCK_BYTES - 8 - ctx->used);
    store_be32(ctx->block + 56, (uint32_t)(bits >> 32));
    store_be32(ctx->block + 60, (uint32_t)bits);
    compress(ctx->h, ctx->block);
    /* §6.2.2: the digest is H(N) as eight big-endian words. */
    for (int i = 0; i < 8; i++) store_be32(out + 4 * i, ctx->h[i]);
    secure_zero(ctx, sizeof *ctx);
}

void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_BYTES]) {
    sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, data, len);
    sha256_final(&ctx, out);
}

/* RFC 2104 §2: HMAC(K, text) = H(K0 XOR opad, H(K0 XOR ipad, text)), with
 * B = 64, ipad = 0x36 and opad = 0x5c repeated B times, and K0 the key
 * padded with zeros to B bytes, or H(K) padded when K is longer than B. */
void hmac_sha256_init(hmac_sha256_ctx *ctx, const void *key, size_t key_len) {
    uint8_t k0[SHA256_BLOCK_BYTES] = {0};
    uint8_t ipad_key[SHA256_BLOCK_BYTES];
    if (key_len > SHA256_BLOCK_BYTES) {
        sha256(key, key_len, k0);
    } else if (key_len > 0) {
        memcpy(k0, key, key_len);
    }
    for (int i = 0; i < SHA256_BLOCK_BYTES; i++) {
        ipad_key[i] = k0[i] ^ 0x36;
        ctx->opad_key[i] = k0[i] ^ 0x5c;
    }
    sha256_init(&ctx->inner);
    sha256_update(&ctx->inner, ipad_key, sizeof ipad_key);
    secure_zero(k0, sizeof k0);
    secure_zero(ipad_key, sizeof ipad_key);
}

void hmac_sha256_update(hmac_sha256_ctx *ctx, const void *data, size_t len) {
    sha256_update(&ctx->inner, data, len);
}

void hmac_sha256_final(hmac_sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_BYTES]) {
    uint8_t inner[SHA256_DIGEST_BYTES];
    sha256_final(&ctx->inner, inner);
    sha256_ctx outer;
    sha256_init(&outer);
    sha256_update(&outer, ctx->opad_key, sizeof ctx->opad_key);
    sha256_update(&outer, inner, sizeof inner);
    sha256_final(&outer, out);
    secure_zero(inner, sizeof inner);
    secure_zero(ctx, sizeof *ctx);
}

void secure_zero(void *p, size_t len) {
    volatile uint8_t *v = p;
    while (len--) *v++ = 0;
}
