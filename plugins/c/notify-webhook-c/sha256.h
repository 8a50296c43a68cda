/*
 * SHA-256 (FIPS 180-4 §6.2) and HMAC-SHA256 (RFC 2104), streaming, without
 * any library: the wasm32 guest has no crypto library to link, and this is
 * all the webhook signature needs. Written from the two specifications and
 * checked against their test vectors (FIPS 180-4 examples, RFC 4231 §4) in
 * tests.c, which build.sh runs on the build machine before every build.
 */
#ifndef DIVOC_SHA256_H
#define DIVOC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BLOCK_BYTES 64  /* FIPS 180-4 §1, Figure 1: block size 512 bits */
#define SHA256_DIGEST_BYTES 32 /* message digest size 256 bits */

typedef struct {
    uint32_t h[8];                   /* H(i), FIPS 180-4 §6.2.2 */
    uint64_t length;                 /* bytes hashed so far */
    uint8_t block[SHA256_BLOCK_BYTES];
    size_t used;                     /* bytes waiting in `block` */
} sha256_ctx;

void sha256_init(sha256_ctx *ctx);
void sha256_update(sha256_ctx *ctx, const void *data, size_t len);
void sha256_final(sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_BYTES]);
void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_BYTES]);

/* HMAC-SHA256 (RFC 2104 §2): keys of any length (longer than the block are
 * hashed first); the key material is wiped from the context when done. */
typedef struct {
    sha256_ctx inner;
    uint8_t opad_key[SHA256_BLOCK_BYTES]; /* K0 XOR opad, for the outer hash */
} hmac_sha256_ctx;

void hmac_sha256_init(hmac_sha256_ctx *ctx, const void *key, size_t key_len);
void hmac_sha256_update(hmac_sha256_ctx *ctx, const void *data, size_t len);
void hmac_sha256_final(hmac_sha256_ctx *ctx, uint8_t out[SHA256_DIGEST_BYTES]);

/* Overwrites `len` bytes with zeros in a way the compiler keeps. */
void secure_zero(void *p, size_t len);

#endif
