/*
 * Distribution channel `webhook`, in C: the same adapter as the Rust
 * plugins/notify-webhook, built with clang and `wit-bindgen c` (README.md).
 *
 * Each message is POSTed as JSON to the operator's endpoint, which does the
 * actual sending, with
 *   - `X-Divoc-Timestamp: <unix seconds>` (the host's clock),
 *   - `X-Divoc-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
 *     (HMAC per RFC 2104 with SHA-256 per FIPS 180-4) over the exact body
 *     bytes sent, and
 *   - `Idempotency-Key: <message id>`, the same on every retry.
 * Retrying is the host's job: 2xx delivered; 5xx, 408, 429 and network
 * errors retryable; other statuses, a refused origin, a message without
 * contacts and a configuration without a usable secret permanent.
 *
 * Memory follows the canonical ABI as wit-bindgen's C bindings present it:
 * an exported function owns its arguments (and frees them); what it returns
 * is allocated with malloc and freed by the bindings' post-return function;
 * what an import returns is the caller's to free. Nothing is logged: neither
 * the secret, the authorization nor a contact ever leaves the plugin except
 * in the request itself.
 */
#include <stdlib.h>
#include <string.h>

#include "distribution_channel.h"
#include "sha256.h"
#include "webhook.h"

typedef exports_divoc_plugin_distribution_message_t message_t;
typedef exports_divoc_plugin_distribution_delivery_receipt_t receipt_t;
typedef exports_divoc_plugin_distribution_delivery_failure_t failure_t;

/* A returned string: a malloc'd copy (the post-return function frees it). */
static void out_string(distribution_channel_string_t *s, const void *data, size_t len) {
    s->len = len;
    s->ptr = NULL;
    if (len == 0) return;
    s->ptr = malloc(len);
    if (!s->ptr) abort(); /* a trap: the host counts it as the plugin's fault */
    memcpy(s->ptr, data, len);
}

static void out_cstring(distribution_channel_string_t *s, const char *text) { out_string(s, text, strlen(text)); }

static bool fail(failure_t *err, uint8_t how, uint8_t kind, const void *text, size_t len) {
    err->tag = how;
    /* Every case of `error` carries one string at the same place. */
    err->val.permanent.tag = kind;
    out_string(&err->val.permanent.val.internal, text, len);
    return false;
}

static bool fail_text(failure_t *err, uint8_t how, uint8_t kind, const char *text) {
    return fail(err, how, kind, text, strlen(text));
}

static bool fail_buf(failure_t *err, uint8_t how, uint8_t kind, const wh_buf *text) {
    if (text->failed) return fail_text(err, how, kind, "out of memory");
    return fail(err, how, kind, text->ptr, text->len);
}

#define PERMANENT EXPORTS_DIVOC_PLUGIN_DISTRIBUTION_DELIVERY_FAILURE_PERMANENT
#define RETRYABLE EXPORTS_DIVOC_PLUGIN_DISTRIBUTION_DELIVERY_FAILURE_RETRYABLE

void exports_divoc_plugin_distribution_info(exports_divoc_plugin_distribution_channel_info_t *ret) {
    static const divoc_plugin_types_contact_kind_t kinds[] = {
        DIVOC_PLUGIN_TYPES_CONTACT_KIND_PHONE,
        DIVOC_PLUGIN_TYPES_CONTACT_KIND_EMAIL,
        DIVOC_PLUGIN_TYPES_CONTACT_KIND_OTHER,
    };
    out_cstring(&ret->id, "webhook");
    ret->contact_kinds.len = sizeof kinds / sizeof kinds[0];
    ret->contact_kinds.ptr = malloc(sizeof kinds);
    if (!ret->contact_kinds.ptr) abort();
    memcpy(ret->contact_kinds.ptr, kinds, sizeof kinds);
}

static distribution_channel_string_t borrow(const void *p, size_t len) {
    distribution_channel_string_t s = {(uint8_t *)p, len};
    return s;
}

static distribution_channel_string_t borrow_c(const char *text) { return borrow(text, strlen(text)); }

/* The first response header with this (lower-case) name, compared without
 * regard to case (RFC 9110 §5.1). */
static const distribution_channel_string_t *response_header(const divoc_plugin_http_response_t *r,
                                                            const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < r->headers.len; i++) {
        const distribution_channel_string_t *k = &r->headers.ptr[i].f0;
        if (k->len != n) continue;
        size_t j = 0;
        for (; j < n; j++) {
            uint8_t c = k->ptr[j];
            if (c >= 'A' && c <= 'Z') c = (uint8_t)(c + ('a' - 'A'));
            if (c != (uint8_t)name[j]) break;
        }
        if (j == n) return &r->headers.ptr[i].f1;
    }
    return NULL;
}

static bool deliver(const message_t *m, receipt_t *ret, failure_t *err) {
    /* The receiver sends to the contacts; with none there is nothing to do,
     * now or later. */
    if (m->contacts.len == 0)
        return fail_text(err, PERMANENT, DIVOC_PLUGIN_TYPES_ERROR_INVALID_INPUT, "the message has no contact");

    wh_config cfg;
    wh_buf problem = {0};
    distribution_channel_string_t json;
    divoc_plugin_config_get_json(&json);
    bool ok = wh_config_parse(json.ptr, json.len, &cfg, &problem);
    /* The section holds the secret: wipe the host's copy too. */
    secure_zero(json.ptr, json.len);
    distribution_channel_string_free(&json);
    if (!ok) {
        bool r = fail_buf(err, PERMANENT, DIVOC_PLUGIN_TYPES_ERROR_INTERNAL, &problem);
        wh_buf_free(&problem);
        return r;
    }
    if (!wh_config_validate(&cfg, &problem)) {
        bool r = fail_buf(err, PERMANENT, DIVOC_PLUGIN_TYPES_ERROR_INTERNAL, &problem);
        wh_buf_free(&problem);
        wh_config_free(&cfg);
        return r;
    }

    /* Serialized once: the signature covers exactly the bytes sent. */
    wh_buf body = {0};
    wh_body(&body, m, cfg.include_attachments);
    if (body.failed) {
        wh_config_free(&cfg);
        return fail_text(err, PERMANENT, DIVOC_PLUGIN_TYPES_ERROR_INTERNAL, "out of memory serializing the body");
    }

    divoc_plugin_clock_datetime_t now;
    divoc_plugin_clock_now(&now);
    wh_buf timestamp = {0};
    wh_buf_put_u64(&timestamp, now.seconds);
    char signature[WH_SIGNATURE_LEN + 1];
    wh_signature(cfg.secret.ptr, cfg.secret.len, now.seconds, body.ptr, body.len, signature);

    distribution_channel_tuple2_string_string_t headers[5] = {
        {borrow_c("Content-Type"), borrow_c("application/json")},
        {borrow_c("Idempotency-Key"), m->id},
        {borrow_c("X-Divoc-Timestamp"), borrow(timestamp.ptr, timestamp.len)},
        {borrow_c("X-Divoc-Signature"), borrow(signature, WH_SIGNATURE_LEN)},
        {borrow_c("Authorization"), borrow(cfg.authorization.ptr, cfg.authorization.len)},
    };
    divoc_plugin_http_request_t req = {
        .method = DIVOC_PLUGIN_HTTP_METHOD_POST,
        .url = borrow(cfg.url.ptr, cfg.url.len),
        .headers = {headers, cfg.has_authorization ? 5 : 4},
        .body = {.is_some = true, .val = {body.ptr, body.len}},
        .timeout_ms = {.is_some = true, .val = cfg.timeout_ms},
    };
    divoc_plugin_http_response_t resp;
    divoc_plugin_http_error_t send_error;
    bool oom = timestamp.failed;
    bool sent = !oom && divoc_plugin_http_send(&req, &resp, &send_error);
    secure_zero(signature, sizeof signature);
    wh_buf_free(&timestamp);
    wh_buf_free(&body);
    wh_config_free(&cfg);

    if (!sent) {
        if (oom) return fail_text(err, PERMANENT, DIVOC_PLUGIN_TYPES_ERROR_INTERNAL, "out of memory");
        /* The host's error, as it is: `unavailable` (network, time-out) is
         * worth a retry, `rejected` (an origin not granted) and the rest
         * are not. Ownership of its message passes to the result. */
        err->tag = send_error.tag == DIVOC_PLUGIN_TYPES_ERROR_UNAVAILABLE ? RETRYABLE : PERMANENT;
        err->val.permanent = send_error;
        return false;
    }

    wh_outcome outcome = wh_classify(resp.status);
    bool delivered = outcome == WH_DELIVERED;
    if (delivered) {
        const distribution_channel_string_t *id = response_header(&resp, "x-message-id");
        if (id) {
            out_string(&ret->channel_reference, id->ptr, id->len);
        } else {
            wh_buf ref = {0};
            wh_buf_puts(&ref, "http-");
            wh_buf_put_u64(&ref, resp.status);
            if (ref.failed) abort();
            out_string(&ret->channel_reference, ref.ptr, ref.len);
            wh_buf_free(&ref);
        }
        out_string(&ret->delivered_to, m->contacts.ptr[0].value.ptr, m->contacts.ptr[0].value.len);
    } else {
        wh_buf reason = {0};
        wh_buf_puts(&reason, "webhook answered HTTP ");
        wh_buf_put_u64(&reason, resp.status);
        if (outcome == WH_RETRY)
            fail_buf(err, RETRYABLE, DIVOC_PLUGIN_TYPES_ERROR_UNAVAILABLE, &reason);
        else
            fail_buf(err, PERMANENT, DIVOC_PLUGIN_TYPES_ERROR_REJECTED, &reason);
        wh_buf_free(&reason);
    }
    divoc_plugin_http_response_free(&resp);
    return delivered;
}

bool exports_divoc_plugin_distribution_deliver(message_t *message, receipt_t *ret, failure_t *err) {
    bool ok = deliver(message, ret, err);
    exports_divoc_plugin_distribution_message_free(message);
    return ok;
}
