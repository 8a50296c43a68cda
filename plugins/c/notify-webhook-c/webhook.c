/*
 * The webhook's logic without the host (webhook.h). References: RFC 8259
 * (JSON), RFC 4648 (base64), RFC 2104 (HMAC), FIPS 180-4 (SHA-256),
 * RFC 9110 §15 (status codes), RFC 6585 §4 (429).
 */
#include "webhook.h"

#include <stdlib.h>
#include <string.h>

#include "sha256.h"

static const char HEX[] = "0123456789abcdef";

/* ---- byte buffer ---------------------------------------------------- */

static bool wh_buf_reserve(wh_buf *b, size_t extra) {
    if (b->failed) return false;
    if (extra <= b->cap - b->len) return true;
    if (extra > SIZE_MAX - b->len) goto fail;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    /* Not realloc: a buffer that held a secret must not leave a copy behind
     * in freed memory. */
    uint8_t *p = malloc(cap);
    if (!p) goto fail;
    if (b->len) memcpy(p, b->ptr, b->len);
    if (b->ptr) {
        secure_zero(b->ptr, b->cap);
        free(b->ptr);
    }
    b->ptr = p;
    b->cap = cap;
    return true;
fail:
    wh_buf_free(b);
    b->failed = true;
    return false;
}

void wh_buf_put(wh_buf *b, const void *data, size_t len) {
    if (len == 0 || !wh_buf_reserve(b, len)) return;
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
}

void wh_buf_puts(wh_buf *b, const char *s) { wh_buf_put(b, s, strlen(s)); }

void wh_buf_putc(wh_buf *b, char c) { wh_buf_put(b, &c, 1); }

void wh_buf_put_u64(wh_buf *b, uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    wh_buf_put(b, digits + sizeof digits - n, n);
}

void wh_buf_free(wh_buf *b) {
    if (b->ptr) {
        secure_zero(b->ptr, b->cap);
        free(b->ptr);
    }
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

/* ---- JSON out (RFC 8259) -------------------------------------------- */

void wh_json_string(wh_buf *b, const uint8_t *s, size_t len) {
    /* RFC 8259 §7: the quotation mark, the reverse solidus and the control
     * characters U+0000 to U+001F must be escaped; everything else may
     * appear as is. The input is UTF-8 already: the canonical ABI only
     * lifts valid strings. Like serde_json, the five controls with a short
     * form use it, the rest \u00XX in lower-case hex. */
    wh_buf_putc(b, '"');
    if (len == 0) { /* `s` may be NULL then */
        wh_buf_putc(b, '"');
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        const char *esc = NULL;
        char u[7];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (c < 0x20) {
                memcpy(u, "\\u00", 4);
                u[4] = HEX[c >> 4];
                u[5] = HEX[c & 15];
                u[6] = 0;
                esc = u;
            }
        }
        if (esc) {
            wh_buf_put(b, s + start, i - start);
            wh_buf_puts(b, esc);
            start = i + 1;
        }
    }
    wh_buf_put(b, s + start, len - start);
    wh_buf_putc(b, '"');
}

static void json_key(wh_buf *b, const char *name) {
    wh_json_string(b, (const uint8_t *)name, strlen(name));
    wh_buf_putc(b, ':');
}

static void json_str(wh_buf *b, const distribution_channel_string_t *s) { wh_json_string(b, s->ptr, s->len); }

/* ---- base64 (RFC 4648 §4) ------------------------------------------- */

void wh_base64(wh_buf *b, const uint8_t *data, size_t len) {
    static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len == 0 || !wh_buf_reserve(b, (len + 2) / 3 * 4)) return;
    char *out = (char *)b->ptr + b->len;
    size_t i = 0, o = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8) | data[i + 2];
        out[o++] = ALPHABET[v >> 18];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = ALPHABET[(v >> 6) & 63];
        out[o++] = ALPHABET[v & 63];
    }
    if (len - i == 1) { /* §4 case (2): two characters and "==" */
        uint32_t v = (uint32_t)data[i] << 16;
        out[o++] = ALPHABET[v >> 18];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (len - i == 2) { /* §4 case (3): three characters and "=" */
        uint32_t v = ((uint32_t)data[i] << 16) | ((uint32_t)data[i + 1] << 8);
        out[o++] = ALPHABET[v >> 18];
        out[o++] = ALPHABET[(v >> 12) & 63];
        out[o++] = ALPHABET[(v >> 6) & 63];
        out[o++] = '=';
    }
    b->len += o;
}

/* ---- JSON in: the configuration object (RFC 8259) ------------------- */

/* serde_json, which wrote this JSON in the host, nests at most 128 deep. */
#define JSON_MAX_DEPTH 128

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} json_in;

/* RFC 8259 §2: insignificant whitespace. */
static void json_ws(json_in *in) {
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r')) in->p++;
}

static bool json_eat(json_in *in, char c) {
    json_ws(in);
    if (in->p < in->end && *in->p == (uint8_t)c) {
        in->p++;
        return true;
    }
    return false;
}

static int hex_value(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool json_hex4(json_in *in, uint32_t *out) {
    if (in->end - in->p < 4) return false;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(in->p[i]);
        if (h < 0) return false;
        v = v << 4 | (uint32_t)h;
    }
    in->p += 4;
    *out = v;
    return true;
}

static void put_utf8(wh_buf *b, uint32_t cp) {
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | cp >> 6);
        u[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | cp >> 12);
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | cp >> 18);
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    wh_buf_put(b, u, n);
}

/* A string (RFC 8259 §7), decoded into `out` (NULL: only skipped). */
static bool json_string(json_in *in, wh_buf *out) {
    if (!json_eat(in, '"')) return false;
    while (in->p < in->end) {
        uint8_t c = *in->p++;
        if (c == '"') return true;
        if (c < 0x20) return false; /* unescaped control character */
        if (c != '\\') {
            if (out) wh_buf_put(out, &c, 1);
            continue;
        }
        if (in->p >= in->end) return false;
        uint8_t e = *in->p++;
        uint8_t plain;
        switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!json_hex4(in, &cp)) return false;
            if (cp >= 0xdc00 && cp <= 0xdfff) return false; /* lone trailing surrogate */
            if (cp >= 0xd800 && cp <= 0xdbff) {
                /* §7: a character outside the BMP is a UTF-16 surrogate pair. */
                uint32_t low;
                if (in->end - in->p < 2 || in->p[0] != '\\' || in->p[1] != 'u') return false;
                in->p += 2;
                if (!json_hex4(in, &low) || low < 0xdc00 || low > 0xdfff) return false;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            }
            if (out) put_utf8(out, cp);
            continue;
        }
        default: return false;
        }
        if (out) wh_buf_put(out, &plain, 1);
    }
    return false;
}

/* A number (RFC 8259 §6); its text is returned, not its value. */
static bool json_number(json_in *in, const uint8_t **start, size_t *len) {
    json_ws(in);
    const uint8_t *p = in->p, *s = p;
    if (p < in->end && *p == '-') p++;
    if (p >= in->end) return false;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < in->end && *p >= '0' && *p <= '9') p++;
    } else {
        return false;
    }
    if (p < in->end && *p == '.') {
        p++;
        if (p >= in->end || *p < '0' || *p > '9') return false;
        while (p < in->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < in->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < in->end && (*p == '+' || *p == '-')) p++;
        if (p >= in->end || *p < '0' || *p > '9') return false;
        while (p < in->end && *p >= '0' && *p <= '9') p++;
    }
    in->p = p;
    *start = s;
    *len = (size_t)(p - s);
    return true;
}

static bool json_literal(json_in *in, const char *word) {
    json_ws(in);
    size_t n = strlen(word);
    if ((size_t)(in->end - in->p) < n || memcmp(in->p, word, n) != 0) return false;
    in->p += n;
    return true;
}

static bool json_skip_value(json_in *in, int depth);

static bool json_skip_container(json_in *in, int depth, char open, char close) {
    if (depth >= JSON_MAX_DEPTH || !json_eat(in, open)) return false;
    if (json_eat(in, close)) return true;
    do {
        if (open == '{') {
            if (!json_string(in, NULL) || !json_eat(in, ':')) return false;
        }
        if (!json_skip_value(in, depth + 1)) return false;
    } while (json_eat(in, ','));
    return json_eat(in, close);
}

static bool json_skip_value(json_in *in, int depth) {
    json_ws(in);
    if (in->p >= in->end) return false;
    const uint8_t *s;
    size_t n;
    switch (*in->p) {
    case '"': return json_string(in, NULL);
    case '{': return json_skip_container(in, depth, '{', '}');
    case '[': return json_skip_container(in, depth, '[', ']');
    case 't': return json_literal(in, "true");
    case 'f': return json_literal(in, "false");
    case 'n': return json_literal(in, "null");
    default: return json_number(in, &s, &n);
    }
}

static bool key_is(const wh_buf *key, const char *name) {
    size_t n = strlen(name);
    return key->len == n && (n == 0 || memcmp(key->ptr, name, n) == 0);
}

static void config_error(wh_buf *error, const char *what, const char *key, const char *rest) {
    wh_buf_puts(error, "invalid plugin configuration: ");
    wh_buf_puts(error, what);
    wh_buf_puts(error, key);
    wh_buf_puts(error, rest);
}

typedef enum { CRED_OK, CRED_NULL, CRED_BAD } cred_result;

/* A credential: a non-empty string, or a number taken as its digits (a
 * value of digits only arrives as a number through the environment, e.g.
 * DIVOC_PLUGINS__CONFIG__NOTIFY_WEBHOOK_C__SECRET). */
static cred_result json_credential(json_in *in, wh_buf *out) {
    json_ws(in);
    if (in->p < in->end && *in->p == '"') {
        if (!json_string(in, out) || out->len == 0) return CRED_BAD;
        return CRED_OK;
    }
    if (json_literal(in, "null")) return CRED_NULL;
    const uint8_t *s;
    size_t n;
    if (json_number(in, &s, &n)) {
        wh_buf_put(out, s, n);
        return CRED_OK;
    }
    return CRED_BAD;
}

bool wh_config_parse(const uint8_t *json, size_t len, wh_config *cfg, wh_buf *error) {
    json_in in = {json, len ? json + len : json};
    wh_buf key = {0};
    bool has_url = false, has_secret = false;
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout_ms = WH_DEFAULT_TIMEOUT_MS;

    if (!json_eat(&in, '{')) {
        wh_buf_puts(error, "invalid plugin configuration: not a JSON object");
        goto fail;
    }
    if (!json_eat(&in, '}')) {
        do {
            key.len = 0;
            if (!json_string(&in, &key) || !json_eat(&in, ':')) goto malformed;
            json_ws(&in);
            if (key_is(&key, "url")) {
                cfg->url.len = 0;
                json_ws(&in);
                if (in.p >= in.end || *in.p != '"' || !json_string(&in, &cfg->url)) {
                    config_error(error, "`", "url", "` must be a string");
                    goto fail;
                }
                has_url = true;
            } else if (key_is(&key, "secret")) {
                cfg->secret.len = 0;
                if (json_credential(&in, &cfg->secret) != CRED_OK) {
                    config_error(error, "`", "secret", "` must be a non-empty string");
                    goto fail;
                }
                has_secret = true;
            } else if (key_is(&key, "authorization")) {
                cfg->authorization.len = 0;
                switch (json_credential(&in, &cfg->authorization)) {
                case CRED_OK: cfg->has_authorization = true; break;
                case CRED_NULL: cfg->has_authorization = false; break;
                case CRED_BAD:
                    config_error(error, "`", "authorization", "` must be a non-empty string");
                    goto fail;
                }
            } else if (key_is(&key, "include_attachments") || key_is(&key, "include-attachments")) {
                if (json_literal(&in, "true")) {
                    cfg->include_attachments = true;
                } else if (json_literal(&in, "false")) {
                    cfg->include_attachments = false;
                } else {
                    config_error(error, "`", "include_attachments", "` must be true or false");
                    goto fail;
                }
            } else if (key_is(&key, "timeout_ms") || key_is(&key, "timeout-ms")) {
                const uint8_t *s;
                size_t n;
                uint64_t v = 0;
                bool ok = json_number(&in, &s, &n) && n <= 10;
                for (size_t i = 0; ok && i < n; i++) {
                    ok = s[i] >= '0' && s[i] <= '9';
                    v = v * 10 + (uint64_t)(s[i] - '0');
                }
                if (!ok || v > UINT32_MAX) {
                    config_error(error, "`", "timeout_ms", "` must be a whole number of milliseconds");
                    goto fail;
                }
                cfg->timeout_ms = (uint32_t)v;
            } else if (!json_skip_value(&in, 1)) {
                goto malformed;
            }
        } while (json_eat(&in, ','));
        if (!json_eat(&in, '}')) goto malformed;
    }
    json_ws(&in);
    if (in.p != in.end) goto malformed;
    if (!has_url) {
        config_error(error, "missing field `", "url", "`");
        goto fail;
    }
    if (!has_secret) {
        config_error(error, "missing field `", "secret", "`");
        goto fail;
    }
    if (key.failed || cfg->url.failed || cfg->secret.failed || cfg->authorization.failed) {
        wh_buf_puts(error, "out of memory reading the plugin configuration");
        goto fail;
    }
    wh_buf_free(&key);
    return true;

malformed:
    wh_buf_puts(error, "invalid plugin configuration: malformed JSON");
fail:
    wh_buf_free(&key);
    wh_config_free(cfg);
    return false;
}

bool wh_config_validate(const wh_config *cfg, wh_buf *error) {
    if (cfg->secret.len < WH_MIN_SECRET_BYTES) {
        wh_buf_puts(error, "invalid notify-webhook-c configuration: `secret` must be at least ");
        wh_buf_put_u64(error, WH_MIN_SECRET_BYTES);
        wh_buf_puts(error, " bytes (RFC 2104 \xc2\xa7" "3); e.g. 64 hex digits from `openssl rand -hex 32`");
        return false;
    }
    return true;
}

void wh_config_free(wh_config *cfg) {
    wh_buf_free(&cfg->url);
    wh_buf_free(&cfg->secret);
    wh_buf_free(&cfg->authorization);
    cfg->has_authorization = false;
}

/* ---- the body ------------------------------------------------------- */

static int bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int var_cmp(const distribution_channel_tuple2_string_string_t *v, size_t i, size_t j) {
    return bytes_cmp(v[i].f0.ptr, v[i].f0.len, v[j].f0.ptr, v[j].f0.len);
}

/* Stable merge sort of the indices idx[0..n) by variable name. */
static void sort_vars(const distribution_channel_tuple2_string_string_t *v, size_t *idx, size_t *tmp, size_t n) {
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = var_cmp(v, idx[b], idx[a]) < 0 ? idx[b++] : idx[a++];
            while (a < mid) tmp[o++] = idx[a++];
            while (b < hi) tmp[o++] = idx[b++];
        }
        memcpy(idx, tmp, n * sizeof *idx);
    }
}

static const char *contact_kind(divoc_plugin_types_contact_kind_t k) {
    switch (k) {
    case DIVOC_PLUGIN_TYPES_CONTACT_KIND_PHONE: return "phone";
    case DIVOC_PLUGIN_TYPES_CONTACT_KIND_EMAIL: return "email";
    default: return "other";
    }
}

void wh_body(wh_buf *b, const exports_divoc_plugin_distribution_message_t *m, bool include_attachments) {
    wh_buf_putc(b, '{');

    json_key(b, "attachments");
    wh_buf_putc(b, '[');
    for (size_t i = 0; i < m->attachments.len; i++) {
        const exports_divoc_plugin_distribution_attachment_t *a = &m->attachments.ptr[i];
        if (i) wh_buf_putc(b, ',');
        wh_buf_putc(b, '{');
        if (include_attachments) {
            json_key(b, "data-base64");
            wh_buf_putc(b, '"');
            wh_base64(b, a->data.ptr, a->data.len);
            wh_buf_puts(b, "\",");
        }
        json_key(b, "media-type");
        json_str(b, &a->media_type);
        wh_buf_putc(b, ',');
        json_key(b, "name");
        json_str(b, &a->name);
        wh_buf_putc(b, ',');
        json_key(b, "size");
        wh_buf_put_u64(b, a->data.len);
        wh_buf_putc(b, '}');
    }
    wh_buf_puts(b, "],");

    json_key(b, "certificate-ids");
    wh_buf_putc(b, '[');
    for (size_t i = 0; i < m->certificate_ids.len; i++) {
        if (i) wh_buf_putc(b, ',');
        json_str(b, &m->certificate_ids.ptr[i]);
    }
    wh_buf_puts(b, "],");

    json_key(b, "contacts");
    wh_buf_putc(b, '[');
    for (size_t i = 0; i < m->contacts.len; i++) {
        if (i) wh_buf_putc(b, ',');
        wh_buf_putc(b, '{');
        json_key(b, "kind");
        wh_buf_putc(b, '"');
        wh_buf_puts(b, contact_kind(m->contacts.ptr[i].kind));
        wh_buf_puts(b, "\",");
        json_key(b, "value");
        json_str(b, &m->contacts.ptr[i].value);
        wh_buf_putc(b, '}');
    }
    wh_buf_puts(b, "],");

    json_key(b, "message-id");
    json_str(b, &m->id);
    wh_buf_putc(b, ',');
    json_key(b, "recipient-name");
    json_str(b, &m->recipient_name);
    wh_buf_putc(b, ',');
    json_key(b, "template");
    json_str(b, &m->template_);
    wh_buf_putc(b, ',');

    json_key(b, "variables");
    wh_buf_putc(b, '{');
    size_t n = m->variables.len;
    if (n > 0) {
        size_t *idx = n <= SIZE_MAX / (2 * sizeof(size_t)) ? malloc(2 * n * sizeof(size_t)) : NULL;
        if (!idx) {
            wh_buf_free(b);
            b->failed = true;
            return;
        }
        for (size_t i = 0; i < n; i++) idx[i] = i;
        sort_vars(m->variables.ptr, idx, idx + n, n);
        bool first = true;
        for (size_t i = 0; i < n; i++) {
            /* A repeated name: the last value given wins, as in a map. */
            if (i + 1 < n && var_cmp(m->variables.ptr, idx[i], idx[i + 1]) == 0) continue;
            const distribution_channel_tuple2_string_string_t *v = &m->variables.ptr[idx[i]];
            if (!first) wh_buf_putc(b, ',');
            first = false;
            json_str(b, &v->f0);
            wh_buf_putc(b, ':');
            json_str(b, &v->f1);
        }
        free(idx);
    }
    wh_buf_puts(b, "}}");
}

/* ---- signature and status -------------------------------------------- */

void wh_signature(const uint8_t *secret, size_t secret_len, uint64_t timestamp, const uint8_t *body,
                  size_t body_len, char out[WH_SIGNATURE_LEN + 1]) {
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + timestamp % 10);
        timestamp /= 10;
    } while (timestamp);

    hmac_sha256_ctx mac;
    uint8_t tag[SHA256_DIGEST_BYTES];
    hmac_sha256_init(&mac, secret, secret_len);
    hmac_sha256_update(&mac, digits + sizeof digits - n, n);
    hmac_sha256_update(&mac, ".", 1);
    hmac_sha256_update(&mac, body, body_len);
    hmac_sha256_final(&mac, tag);

    memcpy(out, "v1=", 3);
    for (size_t i = 0; i < sizeof tag; i++) {
        out[3 + 2 * i] = HEX[tag[i] >> 4];
        out[4 + 2 * i] = HEX[tag[i] & 15];
    }
    out[WH_SIGNATURE_LEN] = 0;
}

wh_outcome wh_classify(uint16_t status) {
    if (status >= 200 && status <= 299) return WH_DELIVERED;
    /* 408 Request Timeout (RFC 9110 §15.5.9), 429 Too Many Requests
     * (RFC 6585 §4) and 5xx (RFC 9110 §15.6) may succeed later. */
    if (status == 408 || status == 429 || (status >= 500 && status <= 599)) return WH_RETRY;
    return WH_GIVE_UP;
}
