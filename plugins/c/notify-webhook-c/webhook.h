/*
 * The webhook's logic without the host: a byte buffer, JSON output (RFC
 * 8259) and a reader for the configuration object, base64 (RFC 4648), the
 * request body, the signature (RFC 2104 HMAC with SHA-256, FIPS 180-4) and
 * how an HTTP status ends a delivery. notify_webhook.c joins these to the
 * host; tests.c tests them natively.
 *
 * Uses only the types of the generated bindings (distribution_channel.h),
 * none of their functions, so that it builds for the test host too.
 */
#ifndef DIVOC_WEBHOOK_H
#define DIVOC_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "distribution_channel.h"

/* A growable byte buffer. After a failed allocation `failed` is set, the
 * contents are dropped and further writes do nothing: callers check once at
 * the end instead of after every write. */
typedef struct {
    uint8_t *ptr;
    size_t len;
    size_t cap;
    bool failed;
} wh_buf;

void wh_buf_put(wh_buf *b, const void *data, size_t len);
void wh_buf_puts(wh_buf *b, const char *s);
void wh_buf_putc(wh_buf *b, char c);
void wh_buf_put_u64(wh_buf *b, uint64_t v);
/* Frees the buffer; its bytes are zeroed first (it may have held a secret). */
void wh_buf_free(wh_buf *b);

/* `s` as a JSON string, quotes included (RFC 8259 §7), escaped exactly as
 * serde_json escapes (the Rust notify-webhook's serializer), so both
 * plugins send the same bytes for the same message. */
void wh_json_string(wh_buf *b, const uint8_t *s, size_t len);

/* Standard base64 with padding (RFC 4648 §4). */
void wh_base64(wh_buf *b, const uint8_t *data, size_t len);

/* The plugin's configuration (README.md). */
#define WH_MIN_SECRET_BYTES 32 /* RFC 2104 §3: not shorter than the hash output */
#define WH_DEFAULT_TIMEOUT_MS 3000

typedef struct {
    wh_buf url;
    wh_buf secret;
    bool include_attachments;
    uint32_t timeout_ms;
    bool has_authorization;
    wh_buf authorization;
} wh_config;

/* Reads the configuration object (`config.get-json`). On failure returns
 * false with a message in `error` that names the key but never quotes a
 * value (it could be the secret). */
bool wh_config_parse(const uint8_t *json, size_t len, wh_config *cfg, wh_buf *error);
/* Refuses a configuration the plugin cannot sign with (a short secret). */
bool wh_config_validate(const wh_config *cfg, wh_buf *error);
/* Frees the strings, zeroing the secret and the authorization first. */
void wh_config_free(wh_config *cfg);

/* The JSON body POSTed for `m` (README.md): members in the byte order of
 * their names, as serde_json writes a map, and `variables` likewise, the
 * last of repeated names winning. Attachment bytes only with
 * `include_attachments`. */
void wh_body(wh_buf *b, const exports_divoc_plugin_distribution_message_t *m, bool include_attachments);

/* `v1=` and the lower-case hex HMAC-SHA256(secret, "<timestamp>.<body>")
 * (RFC 2104), NUL-terminated. */
#define WH_SIGNATURE_LEN (3 + 64)
void wh_signature(const uint8_t *secret, size_t secret_len, uint64_t timestamp, const uint8_t *body,
                  size_t body_len, char out[WH_SIGNATURE_LEN + 1]);

/* How an HTTP status ends a delivery attempt: 2xx delivered; 408, 429
 * (RFC 6585 §4) and 5xx retried by the host; anything else refused. */
typedef enum { WH_DELIVERED, WH_RETRY, WH_GIVE_UP } wh_outcome;
wh_outcome wh_classify(uint16_t status);

#endif
