/*
 * Native unit tests of sha256.c and webhook.c (build.sh compiles and runs
 * them on the build machine before it builds the component). Vectors:
 * FIPS 180-4 examples (NIST CSRC "Examples with Intermediate Values"),
 * RFC 4231 §4 (HMAC-SHA256), RFC 4648 §10 (base64), and the signature the
 * Rust notify-webhook's unit test computes, so both sign alike.
 *
 * Prints "N passed, N failed" last; exits 1 on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sha256.h"
#include "webhook.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static void hex(const uint8_t *d, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static bool buf_is(const wh_buf *b, const char *expected) {
    return !b->failed && b->len == strlen(expected) && memcmp(b->ptr, expected, b->len) == 0;
}

static void show(const wh_buf *b) { fprintf(stderr, "  got: %.*s\n", (int)b->len, (const char *)b->ptr); }

static void test_sha256(void) {
    static const struct {
        const char *msg;
        const char *digest;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrs"
         "tnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t d[32];
        char h[65];
        sha256(v[i].msg, strlen(v[i].msg), d);
        hex(d, 32, h);
        CHECK(strcmp(h, v[i].digest) == 0, "sha256 vector %zu: %s", i, h);
        /* The same, a byte at a time (every split of the padding). */
        sha256_ctx c;
        sha256_init(&c);
        for (size_t j = 0; j < strlen(v[i].msg); j++) sha256_update(&c, v[i].msg + j, 1);
        sha256_final(&c, d);
        hex(d, 32, h);
        CHECK(strcmp(h, v[i].digest) == 0, "sha256 vector %zu bytewise: %s", i, h);
    }
    /* One million times "a", in uneven chunks. */
    char *a = malloc(1000000);
    memset(a, 'a', 1000000);
    sha256_ctx c;
    sha256_init(&c);
    for (size_t off = 0, step = 1; off < 1000000; off += step, step = step * 3 % 997 + 1)
        sha256_update(&c, a + off, off + step > 1000000 ? 1000000 - off : step);
    uint8_t d[32];
    char h[65];
    sha256_final(&c, d);
    hex(d, 32, h);
    CHECK(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "a x 1e6: %s", h);
    free(a);
}

static void test_hmac(void) {
    /* RFC 4231 §4.2-§4.8, without test case 5 (a truncated tag). */
    uint8_t k1[20], k3[20], k4[25], k6[131], d3[50], d4[50];
    memset(k1, 0x0b, sizeof k1);
    memset(k3, 0xaa, sizeof k3);
    for (int i = 0; i < 25; i++) k4[i] = (uint8_t)(i + 1);
    memset(k6, 0xaa, sizeof k6);
    memset(d3, 0xdd, sizeof d3);
    memset(d4, 0xcd, sizeof d4);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    const char *d7 = "This is a test using a larger than block-size key and a larger than block-size data. The key "
                     "needs to be hashed before being used by the HMAC algorithm.";
    struct {
        const uint8_t *key;
        size_t key_len;
        const void *data;
        size_t data_len;
        const char *tag;
    } v[] = {
        {k1, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
        {(const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28,
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
        {k3, 20, d3, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
        {k4, 25, d4, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
        {k6, 131, d6, strlen(d6), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
        {k6, 131, d7, strlen(d7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        hmac_sha256_ctx c;
        uint8_t tag[32];
        char h[65];
        hmac_sha256_init(&c, v[i].key, v[i].key_len);
        hmac_sha256_update(&c, v[i].data, v[i].data_len);
        hmac_sha256_final(&c, tag);
        hex(tag, 32, h);
        CHECK(strcmp(h, v[i].tag) == 0, "RFC 4231 vector %zu: %s", i, h);
    }
}

static void test_signature(void) {
    /* The Rust plugin's unit test `signature_covers_timestamp_and_body`. */
    const char *secret = "whsec-0123456789abcdef0123456789abcdef";
    const char *body = "{\"message-id\":\"m-1\"}";
    char sig[WH_SIGNATURE_LEN + 1], other[WH_SIGNATURE_LEN + 1];
    wh_signature((const uint8_t *)secret, strlen(secret), 1700000000, (const uint8_t *)body, strlen(body), sig);
    CHECK(strcmp(sig, "v1=3f05b092af29c692408ec75675fe424a3db97eabedfbea7ec79056609f592b4c") == 0, "%s", sig);
    wh_signature((const uint8_t *)secret, strlen(secret), 1700000001, (const uint8_t *)body, strlen(body), other);
    CHECK(strcmp(sig, other) != 0, "the timestamp is not signed");
    wh_signature((const uint8_t *)secret, strlen(secret), 0, (const uint8_t *)body, strlen(body), other);
    CHECK(strlen(other) == WH_SIGNATURE_LEN, "timestamp 0");
}

static void test_base64(void) {
    /* RFC 4648 §10. */
    static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (size_t i = 0; i < 7; i++) {
        wh_buf b = {0};
        wh_base64(&b, (const uint8_t *)in[i], strlen(in[i]));
        CHECK(b.len == strlen(out[i]) && (b.len == 0 || memcmp(b.ptr, out[i], b.len) == 0), "base64(%s)", in[i]);
        wh_buf_free(&b);
    }
}

static void test_json_string(void) {
    /* RFC 8259 §7; short forms and lower-case \u00XX as serde_json writes. */
    const char raw[] = "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9\xe2\x80\xa8\xf0\x9f\x92\x89";
    wh_buf b = {0};
    wh_json_string(&b, (const uint8_t *)raw, sizeof raw - 1);
    const char *want = "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9\xe2\x80\xa8\xf0\x9f\x92\x89\"";
    CHECK(buf_is(&b, want), "json string");
    if (!buf_is(&b, want)) show(&b);
    wh_buf_free(&b);
    /* NUL inside a string. */
    wh_json_string(&b, (const uint8_t *)"x\0y", 3);
    CHECK(buf_is(&b, "\"x\\u0000y\""), "NUL");
    wh_buf_free(&b);
    wh_buf_put_u64(&b, 0);
    wh_buf_putc(&b, ' ');
    wh_buf_put_u64(&b, 18446744073709551615u);
    CHECK(buf_is(&b, "0 18446744073709551615"), "u64");
    wh_buf_free(&b);
}

static bool parse(const char *json, wh_config *cfg, wh_buf *error) {
    error->len = 0;
    return wh_config_parse((const uint8_t *)json, strlen(json), cfg, error);
}

static bool error_has(const wh_buf *e, const char *part) {
    if (e->failed) return false;
    for (size_t i = 0; i + strlen(part) <= e->len; i++)
        if (memcmp(e->ptr + i, part, strlen(part)) == 0) return true;
    return false;
}

static void test_config(void) {
    wh_config c;
    wh_buf e = {0};

    CHECK(parse("{\"url\": \"https://notify.example.org/hook\", \"secret\": \"0123456789abcdef0123456789abcdef\"}",
                &c, &e),
          "minimal");
    CHECK(buf_is(&c.url, "https://notify.example.org/hook"), "url");
    CHECK(c.timeout_ms == 3000 && !c.include_attachments && !c.has_authorization, "defaults");
    CHECK(wh_config_validate(&c, &e), "a 32-byte secret is enough");
    wh_config_free(&c);

    /* Every key, both spellings of the two-word ones, escapes, unknown keys
     * of every kind skipped. */
    CHECK(parse("{\"extra\": {\"a\": [1, 2.5e-3, true, null, \"}\"]}, \"url\": \"https:\\/\\/x\\u0041\\ud83d\\udc89\","
                " \"secret\": \"s\\\"e\\\\kr1t\", \"include-attachments\": true, \"timeout_ms\": 4294967295,"
                " \"authorization\": \"Bearer t0ken\", \"other\": -0.5}",
                &c, &e),
          "every key");
    CHECK(buf_is(&c.url, "https://xA\xf0\x9f\x92\x89"), "url escapes");
    CHECK(buf_is(&c.secret, "s\"e\\kr1t"), "secret escapes");
    CHECK(c.include_attachments && c.timeout_ms == 4294967295u, "flags");
    CHECK(c.has_authorization && buf_is(&c.authorization, "Bearer t0ken"), "authorization");
    /* A short secret is refused without quoting it. */
    e.len = 0;
    CHECK(!wh_config_validate(&c, &e), "short secret");
    CHECK(error_has(&e, "at least 32 bytes") && !error_has(&e, "kr1t"), "short secret message");
    wh_config_free(&c);

    CHECK(parse("{\"url\": \"u\", \"secret\": 12345, \"authorization\": null, \"timeout-ms\": 0,"
                " \"include_attachments\": false}",
                &c, &e),
          "a secret of digits arrives as a number");
    CHECK(buf_is(&c.secret, "12345") && !c.has_authorization && c.timeout_ms == 0, "number secret");
    wh_config_free(&c);

    struct {
        const char *json;
        const char *message;
    } bad[] = {
        {"{}", "missing field `url`"},
        {"{\"url\": \"https://notify.example.org/hook\"}", "missing field `secret`"},
        {"{\"url\": \"u\", \"secret\": [\"s3cret\"]}", "`secret` must be a non-empty string"},
        {"{\"url\": \"u\", \"secret\": \"\"}", "`secret` must be a non-empty string"},
        {"{\"url\": \"u\", \"secret\": null}", "`secret` must be a non-empty string"},
        {"{\"url\": 5, \"secret\": \"s3cret\"}", "`url` must be a string"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\", \"authorization\": \"\"}", "`authorization`"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\", \"include_attachments\": \"yes\"}", "`include_attachments`"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\", \"timeout_ms\": -1}", "`timeout_ms`"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\", \"timeout_ms\": 1.5}", "`timeout_ms`"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\", \"timeout_ms\": 4294967296}", "`timeout_ms`"},
        {"[]", "not a JSON object"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\"", "malformed"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\"} x", "malformed"},
        {"{\"url\": \"u\\ud800\", \"secret\": \"s3cret\"}", "`url`"},
        {"{\"url\": \"u\", \"secret\": \"s3cret\", \"x\": [[[[", "malformed"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool ok = parse(bad[i].json, &c, &e);
        CHECK(!ok && error_has(&e, bad[i].message) && !error_has(&e, "s3cret"), "bad config %zu: %s", i,
              bad[i].json);
        if (ok) wh_config_free(&c);
        if (!error_has(&e, bad[i].message)) show(&e);
    }
    /* Nesting deeper than serde_json writes is refused, not recursed into. */
    wh_buf deep = {0};
    wh_buf_puts(&deep, "{\"url\": \"u\", \"secret\": \"s\", \"x\": ");
    for (int i = 0; i < 100000; i++) wh_buf_putc(&deep, '[');
    wh_buf_putc(&deep, '}');
    CHECK(!wh_config_parse(deep.ptr, deep.len, &c, &e), "deep nesting");
    wh_buf_free(&deep);
    wh_buf_free(&e);
}

static distribution_channel_string_t s(const char *text) {
    distribution_channel_string_t r = {(uint8_t *)text, strlen(text)};
    return r;
}

static void test_body(void) {
    divoc_plugin_types_contact_t contacts[] = {
        {DIVOC_PLUGIN_TYPES_CONTACT_KIND_PHONE, s("+911234")},
        {DIVOC_PLUGIN_TYPES_CONTACT_KIND_EMAIL, s("a@example.org")},
        {DIVOC_PLUGIN_TYPES_CONTACT_KIND_OTHER, s("x")},
    };
    distribution_channel_string_t ids[] = {s("c-1"), s("c-2")};
    exports_divoc_plugin_distribution_attachment_t attachments[] = {
        {s("cert.pdf"), s("application/pdf"), {(uint8_t *)"PDF", 3}},
    };
    distribution_channel_tuple2_string_string_t vars[] = {
        {s("url"), s("https://x")}, {s("b"), s("1")}, {s("a"), s("first")}, {s("ab"), s("\"q\"")}, {s("a"), s("last")},
    };
    exports_divoc_plugin_distribution_message_t m = {
        .id = s("m-1"),
        .template_ = s("certificate-issued"),
        .recipient_name = s("A\nB"),
        .contacts = {contacts, 3},
        .certificate_ids = {ids, 2},
        .attachments = {attachments, 1},
        .variables = {vars, 5},
    };
    /* Names in byte order, as serde_json writes a map; "a" twice: the last
     * value wins. */
    const char *want = "{\"attachments\":[{\"media-type\":\"application/pdf\",\"name\":\"cert.pdf\",\"size\":3}],"
                       "\"certificate-ids\":[\"c-1\",\"c-2\"],"
                       "\"contacts\":[{\"kind\":\"phone\",\"value\":\"+911234\"},{\"kind\":\"email\",\"value\":"
                       "\"a@example.org\"},{\"kind\":\"other\",\"value\":\"x\"}],"
                       "\"message-id\":\"m-1\",\"recipient-name\":\"A\\nB\",\"template\":\"certificate-issued\","
                       "\"variables\":{\"a\":\"last\",\"ab\":\"\\\"q\\\"\",\"b\":\"1\",\"url\":\"https://x\"}}";
    wh_buf b = {0};
    wh_body(&b, &m, false);
    CHECK(buf_is(&b, want), "body without attachment bytes");
    if (!buf_is(&b, want)) show(&b);
    wh_buf_free(&b);

    wh_body(&b, &m, true);
    CHECK(error_has(&b, "[{\"data-base64\":\"UERG\",\"media-type\""), "body with attachment bytes");
    wh_buf_free(&b);

    exports_divoc_plugin_distribution_message_t empty = {.id = s(""), .template_ = s(""), .recipient_name = s("")};
    wh_body(&b, &empty, true);
    CHECK(buf_is(&b, "{\"attachments\":[],\"certificate-ids\":[],\"contacts\":[],\"message-id\":\"\","
                     "\"recipient-name\":\"\",\"template\":\"\",\"variables\":{}}"),
          "empty body");
    wh_buf_free(&b);
}

static void test_classify(void) {
    CHECK(wh_classify(200) == WH_DELIVERED && wh_classify(204) == WH_DELIVERED && wh_classify(299) == WH_DELIVERED,
          "2xx");
    CHECK(wh_classify(503) == WH_RETRY && wh_classify(500) == WH_RETRY && wh_classify(599) == WH_RETRY, "5xx");
    CHECK(wh_classify(408) == WH_RETRY && wh_classify(429) == WH_RETRY, "408, 429");
    CHECK(wh_classify(400) == WH_GIVE_UP && wh_classify(404) == WH_GIVE_UP && wh_classify(301) == WH_GIVE_UP &&
              wh_classify(600) == WH_GIVE_UP && wh_classify(100) == WH_GIVE_UP,
          "the rest");
}

int main(void) {
    test_sha256();
    test_hmac();
    test_signature();
    test_base64();
    test_json_string();
    test_config();
    test_body();
    test_classify();
    printf("notify-webhook-c: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
