/*
 * escape_bench.c - the JSON string escaper (json.c) with realistic secret sets.
 *
 * Escapes one fixed corpus of recorded values (prose, code, JSON tool inputs, tool output,
 * a little non-ASCII, a few leaked secrets) with lf__json_str() under each secret set a
 * client can hold, and prints MB/s of input, the median of --runs rounds. Rounds visit
 * every set in turn, so that load from other jobs on a shared machine falls on all alike;
 * compare the sets' ratios, not the absolute figures. The sets:
 *
 *   no-redactor   escaping alone (red = NULL), for reference
 *   shapes        the built-in token shapes (a client with nothing registered)
 *   api-keys      + what every ccrunner run registers: the Langfuse key pair,
 *                 ANTHROPIC_API_KEY, BOT_TOKEN, GITHUB_TOKEN
 *   service-acct  + a Google service-account key registered as ccrunner does
 *                 (record_credentials_file in src/runner/trace.c): the private_key PEM,
 *                 each of its lines, private_key_id, refresh_token, client_secret
 *   +short-secret service-acct + one secret of LF__SECRET_MIN bytes, the shortest taken
 *   naive         service-acct the simple way, for reference: memmem() per registered
 *                 secret, redacting into a copy, then the escaper with the shapes only
 *
 * Every key is generated here (the PEM is random base64 of an RSA-2048 PKCS#8 key's
 * length, after a DER header such keys share); none is real. Each set's output is
 * checked for leaked secret lines and summarised by a digest, so that two builds of the
 * escaper can be checked to write the same bytes.
 *
 *   build/bench/escape_bench [--runs N] [--mib M] [--wall]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "redact.h"

/* ---- deterministic generator -------------------------------------------------------------- */

static uint64_t rng = 0x9E3779B97F4A7C15u;

static uint32_t rnd(uint32_t below)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 11) % below);
}

static void put(struct lf__buf *b, const char *s)
{
    lf__buf_puts(b, s);
}

static void put_random(struct lf__buf *b, const char *alphabet, size_t n)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        lf__buf_putc(b, alphabet[rnd((uint32_t)k)]);
}

#define B64 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#define HEX "0123456789abcdef"

static char *random_token(const char *prefix, const char *alphabet, size_t n)
{
    struct lf__buf b;
    lf__buf_init(&b, 0);
    put(&b, prefix);
    put_random(&b, alphabet, n);
    return lf__buf_steal(&b, NULL);
}

static char *random_uuid_key(const char *prefix)
{
    struct lf__buf b;
    lf__buf_init(&b, 0);
    put(&b, prefix);
    static const int groups[] = {8, 4, 4, 4, 12};
    for (int g = 0; g < 5; g++) {
        if (g) lf__buf_putc(&b, '-');
        put_random(&b, HEX, (size_t)groups[g]);
    }
    return lf__buf_steal(&b, NULL);
}

/* ---- the secrets ------------------------------------------------------------------------- */

struct secrets {
    char *lf_secret, *lf_public, *anthropic, *bot, *github;
    char *pem, *key_id, *refresh, *client_secret, *short_one;
    char *lines[64]; /* the PEM's base64 lines, as ccrunner registers them */
    int nlines;
};

static void make_secrets(struct secrets *k)
{
    k->lf_secret = random_uuid_key("sk-lf-");
    k->lf_public = random_uuid_key("pk-lf-");
    k->anthropic = random_token("sk-ant-api03-", B64URL, 95);
    k->bot = random_token("xoxb-", HEX, 46);
    k->github = random_token("ghs_", ALNUM, 36);
    k->key_id = random_token("", HEX, 40);
    k->refresh = random_token("1//0g", B64URL, 98);
    k->client_secret = random_token("GOCSPX-", B64URL, 28);
    k->short_one = random_token("", ALNUM, LF__SECRET_MIN);
    /* RSA-2048 in PKCS#8: ~1,218 bytes of DER, 1,624 base64 characters, 25 lines of 64 and
     * one of 24, beginning with the 50 characters of a DER header such keys share. */
    struct lf__buf pem;
    lf__buf_init(&pem, 0);
    put(&pem, "-----BEGIN PRIVATE KEY-----\n");
    for (int line = 0; line < 26; line++) {
        size_t n = line == 25 ? 24 : 64;
        if (line == 0) {
            put(&pem, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ");
            n -= 50;
        }
        put_random(&pem, B64, n);
        lf__buf_putc(&pem, '\n');
    }
    put(&pem, "-----END PRIVATE KEY-----\n");
    k->pem = lf__buf_steal(&pem, NULL);
    k->nlines = 0;
    for (const char *line = k->pem; *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = (size_t)(nl - line);
        if (strncmp(line, "-----", 5) != 0) k->lines[k->nlines++] = strndup(line, n);
        line = nl + 1;
    }
}

/* lf_client_add_secret(), minus the client */
static struct lf__redactor *add(struct lf__redactor *r, const char *value)
{
    size_t len = strlen(value);
    if (len < LF__SECRET_MIN) return r;
    struct lf__redactor *nr = lf__redactor_with(r, value, len);
    if (!nr) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    lf__redactor_free(r);
    return nr;
}

static struct lf__redactor *api_keys(struct lf__redactor *r, const struct secrets *k)
{
    r = add(r, k->lf_secret); /* the client registers its own keys */
    r = add(r, k->lf_public);
    r = add(r, k->anthropic); /* ccrunner: ANTHROPIC_API_KEY, BOT_TOKEN, GITHUB_TOKEN */
    r = add(r, k->bot);
    return add(r, k->github);
}

static struct lf__redactor *service_account(struct lf__redactor *r, const struct secrets *k)
{
    r = add(r, k->pem);
    for (int i = 0; i < k->nlines; i++)
        r = add(r, k->lines[i]);
    r = add(r, k->key_id);
    r = add(r, k->refresh);
    return add(r, k->client_secret);
}

/* ---- the corpus ---------------------------------------------------------------------------- */

static const char *const words[] = {
    "the",     "agent",   "reads",   "a",        "file",    "and",    "then",   "runs",    "tests",
    "for",     "every",   "module",  "in",       "project", "while",  "model",  "thinks",  "about",
    "next",    "step",    "shell",   "command",  "returns", "output", "with",   "some",    "errors",
    "that",    "need",    "fixing",  "before",   "commit",  "is",     "made",   "on",      "branch",
    "user",    "asked",   "to",      "refactor", "parser",  "so",     "it",     "handles", "large",
    "inputs",  "without", "copying", "memory",   "twice",   "build",  "passes", "now",     "but",
    "one",     "flaky",   "test",    "still",    "times",   "out",    "under",  "load",    "we",
    "retry",   "I'll",    "let's",   "function", "returns", "NULL",   "when",   "buffer",  "size",
    "because", "right",   "might",   "task",     "be",      "The",    "This",   "It",      "give",
    "begin",
};
static const char *const unicode_words[] = {
    "café", "naïve", "—", "→", "✓", "日本語", "Größe", "😀", "über", "résumé", "…", "«ok»",
};

static void prose(struct lf__buf *b, size_t want)
{
    size_t col = 0;
    while (b->len < want) {
        const char *w;
        uint32_t r = rnd(1000);
        if (r < 25)
            w = unicode_words[rnd(sizeof unicode_words / sizeof *unicode_words)];
        else
            w = words[rnd(sizeof words / sizeof *words)];
        if (r >= 25 && r < 40) {
            lf__buf_putc(b, '"');
            put(b, w);
            lf__buf_putc(b, '"');
        } else if (r >= 40 && r < 50) {
            lf__buf_putc(b, '`');
            put(b, w);
            put(b, "()`");
        } else {
            put(b, w);
        }
        col += strlen(w) + 1;
        uint32_t p = rnd(100);
        if (p < 6) {
            put(b, ".\n\n");
            col = 0;
        } else if (p < 12) {
            put(b, ". ");
        } else if (p < 16) {
            put(b, ", ");
        } else if (col > 80) {
            lf__buf_putc(b, '\n');
            col = 0;
        } else {
            lf__buf_putc(b, ' ');
        }
    }
}

static const char *const code_lines[] = {
    "#include <stdio.h>",
    "static int parse(const char *path, struct config *out)",
    "{",
    "    FILE *f = fopen(path, \"r\");",
    "    if (!f) {",
    "        fprintf(stderr, \"cannot open %s: %s\\n\", path, strerror(errno));",
    "        return -1;",
    "    }",
    "\tfor (size_t i = 0; i < n; i++)",
    "\t\tsum += values[i] * weights[i];",
    "    const char *p = strchr(line, '\\\\');",
    "    // TODO: handle the \"quoted\" case and CRLF",
    "}",
    "def load(path):",
    "    with open(path, encoding=\"utf-8\") as f:",
    "        return json.load(f)",
    "",
    "    assert resp.status_code == 200, f\"unexpected {resp.status_code}: {resp.text!r}\"",
    "export function render(props) { return `<div class=\"x\">${props.name}</div>`; }",
    "    if err != nil { return fmt.Errorf(\"read %q: %w\", name, err) }",
    "SELECT id, name FROM users WHERE created_at > '2024-01-01' ORDER BY id;",
};

static void code(struct lf__buf *b, size_t want)
{
    while (b->len < want) {
        put(b, code_lines[rnd(sizeof code_lines / sizeof *code_lines)]);
        lf__buf_putc(b, '\n');
    }
}

/* JSON text escaped by hand: what a tool input holds for the code it edits. */
static void json_escaped(struct lf__buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"' || c == '\\') {
            lf__buf_putc(b, '\\');
            lf__buf_putc(b, c);
        } else if (c == '\n') {
            put(b, "\\n");
        } else if (c == '\t') {
            put(b, "\\t");
        } else {
            lf__buf_putc(b, c);
        }
    }
}

static void tool_input(struct lf__buf *b, size_t want)
{
    struct lf__buf t;
    lf__buf_init(&t, 0);
    if (want < 300 || rnd(2)) {
        put(b, "{\"command\":\"");
        static const char *const cmds[] = {
            "git diff --stat HEAD~3 -- src/", "ls -la /work/src",
            "make -j4 2>&1 | tail -50",       "grep -rn \\\"TODO\\\" src/ | head -20",
            "python3 -m pytest -x -q tests/", "cat /etc/os-release && uname -a"};
        put(b, cmds[rnd(sizeof cmds / sizeof *cmds)]);
        put(b, "\",\"description\":\"");
        prose(&t, want > 200 ? want / 4 : 60);
        json_escaped(b, t.data, t.len);
        put(b, "\"}");
    } else {
        put(b, "{\"file_path\":\"/work/src/parser.c\",\"old_string\":\"");
        code(&t, want / 2);
        json_escaped(b, t.data, t.len);
        put(b, "\",\"new_string\":\"");
        lf__buf_reset(&t);
        code(&t, want / 2);
        json_escaped(b, t.data, t.len);
        put(b, "\"}");
    }
    lf__buf_free(&t);
}

static void tool_output(struct lf__buf *b, size_t want, const struct secrets *k)
{
    static const char *const lines[] = {
        "total 48",
        "drwxr-xr-x  5 agent agent  4096 Mar  3 10:12 src",
        "-rw-r--r--  1 agent agent 12288 Mar  3 10:12 README.md",
        "[ RUN      ] test_parse_empty",
        "[       OK ] test_parse_empty (3 ms)",
        "src/parser.c:142:17: warning: unused variable 'n' [-Wunused-variable]",
        "  142 |     size_t n = strlen(s);",
        "      |            ^",
        "PASSED tests/test_api.py::test_login - 0.12s",
        "ERROR: connection refused (127.0.0.1:8080)",
        "{\"id\":\"4f1c\",\"status\":\"ok\",\"items\":[1,2,3],\"next\":null}",
    };
    while (b->len < want) {
        uint32_t r = rnd(1000);
        /* now and then a secret the agent printed: an environment dump, a key file */
        if (r == 0) {
            put(b, "ANTHROPIC_API_KEY=");
            put(b, k->anthropic);
        } else if (r == 1) {
            put(b, "GITHUB_TOKEN=");
            put(b, k->github);
        } else if (r == 2) {
            put(b, k->lines[rnd((uint32_t)k->nlines)]);
        } else if (r == 3) {
            put(b, "  \"private_key_id\": \"");
            put(b, k->key_id);
            put(b, "\",");
        } else {
            put(b, lines[r % (sizeof lines / sizeof *lines)]);
        }
        lf__buf_putc(b, '\n');
    }
}

struct corpus {
    struct lf__buf text;
    size_t *off, *len;
    size_t n;
};

static void make_corpus(struct corpus *c, size_t total, const struct secrets *k)
{
    lf__buf_init(&c->text, 0);
    size_t cap = 1 << 16;
    c->off = malloc(cap * sizeof *c->off);
    c->len = malloc(cap * sizeof *c->len);
    c->n = 0;
    struct lf__buf v;
    lf__buf_init(&v, 0);
    while (c->text.len < total && c->n < cap) {
        /* sizes log-uniform from 64 B to 16 KiB */
        size_t want = (size_t)64 << rnd(9);
        want += rnd((uint32_t)want);
        lf__buf_reset(&v);
        uint32_t kind = rnd(10);
        if (kind < 4)
            prose(&v, want);
        else if (kind < 7)
            code(&v, want);
        else if (kind < 9)
            tool_input(&v, want);
        else
            tool_output(&v, want, k);
        c->off[c->n] = c->text.len;
        c->len[c->n] = v.len;
        lf__buf_append(&c->text, v.data, v.len);
        c->n++;
    }
    lf__buf_free(&v);
}

/* ---- the contenders ------------------------------------------------------------------------ */

struct set {
    const char *name;
    struct lf__redactor *red;
    const char *const *naive; /* non-NULL: memmem() these first, then escape with red */
    size_t nnaive;
    double mbs[512];
    uint64_t digest;
    size_t out_bytes;
};

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001B3u;
    return h;
}

/* Replaces each needle in turn in s[0..n) into *tmp; returns the text to escape. */
static const char *naive_redact(struct lf__buf *tmp, struct lf__buf *tmp2, const char *s, size_t *n,
                                const char *const *needles, size_t nn)
{
    const char *cur = s;
    size_t len = *n;
    for (size_t k = 0; k < nn; k++) {
        size_t nl = strlen(needles[k]);
        const char *hit = memmem(cur, len, needles[k], nl);
        if (!hit) continue;
        lf__buf_reset(tmp2);
        const char *p = cur, *end = cur + len;
        while (hit) {
            lf__buf_append(tmp2, p, (size_t)(hit - p));
            lf__buf_puts(tmp2, LF__REDACTED);
            p = hit + nl;
            hit = memmem(p, (size_t)(end - p), needles[k], nl);
        }
        lf__buf_append(tmp2, p, (size_t)(end - p));
        struct lf__buf swap = *tmp;
        *tmp = *tmp2;
        *tmp2 = swap;
        cur = tmp->data;
        len = tmp->len;
    }
    *n = len;
    return cur;
}

/* The thread's CPU time, not wall time: on a shared machine, time spent preempted by other
 * jobs would otherwise count as the escaper's (--wall to measure wall time instead). */
static clockid_t clock_id = CLOCK_THREAD_CPUTIME_ID;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass over the corpus; returns seconds. With `check`, digests the output. */
static double run(struct set *st, const struct corpus *c, struct lf__buf *out, struct lf__buf *tmp,
                  struct lf__buf *tmp2, int check)
{
    uint64_t h = 0xCBF29CE484222325u;
    size_t bytes = 0;
    double t0 = now_s();
    for (size_t i = 0; i < c->n; i++) {
        const char *s = c->text.data + c->off[i];
        size_t n = c->len[i];
        if (st->naive) s = naive_redact(tmp, tmp2, s, &n, st->naive, st->nnaive);
        lf__buf_reset(out);
        lf__json_str(out, s, n, st->red, 0);
        if (check) {
            h = fnv(h, out->data, out->len);
            bytes += out->len;
        }
    }
    double t = now_s() - t0;
    if (check) {
        st->digest = h;
        st->out_bytes = bytes;
    }
    return t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nonzero if a secret line (no character that JSON escapes) shows in any output. */
static int leaks(struct set *st, const struct corpus *c, const struct secrets *k,
                 struct lf__buf *out)
{
    int bad = 0;
    for (size_t i = 0; i < c->n; i++) {
        lf__buf_reset(out);
        lf__json_str(out, c->text.data + c->off[i], c->len[i], st->red, 0);
        for (int j = 0; j < k->nlines; j++)
            bad |= memmem(out->data, out->len, k->lines[j], strlen(k->lines[j])) != NULL;
        bad |= memmem(out->data, out->len, k->key_id, strlen(k->key_id)) != NULL;
    }
    return bad;
}

int main(int argc, char **argv)
{
    int runs = 15;
    size_t mib = 4;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--wall"))
            clock_id = CLOCK_MONOTONIC;
        else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
            mib = (size_t)atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--runs N (11..512, default 15)] [--mib M (default 4)] "
                    "[--wall]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 11 || runs > 512 || mib < 1) {
        fprintf(stderr, "escape_bench: --runs takes 11..512, --mib at least 1\n");
        return 2;
    }

    struct secrets k;
    make_secrets(&k);
    struct corpus c;
    make_corpus(&c, mib << 20, &k);

    struct lf__redactor *shapes = lf__redactor_new();
    struct lf__redactor *keys = api_keys(lf__redactor_ref(shapes), &k);
    struct lf__redactor *sa = service_account(lf__redactor_ref(keys), &k);
    struct lf__redactor *sa_short = add(lf__redactor_ref(sa), k.short_one);
    const char *naive_list[128];
    size_t nn = 0;
    const char *plain_keys[] = {k.lf_secret, k.lf_public, k.anthropic, k.bot, k.github, k.pem};
    for (size_t i = 0; i < sizeof plain_keys / sizeof *plain_keys; i++)
        naive_list[nn++] = plain_keys[i];
    for (int i = 0; i < k.nlines; i++)
        naive_list[nn++] = k.lines[i];
    naive_list[nn++] = k.key_id;
    naive_list[nn++] = k.refresh;
    naive_list[nn++] = k.client_secret;

    struct set sets[] = {
        {.name = "no-redactor", .red = NULL},
        {.name = "shapes", .red = shapes},
        {.name = "api-keys", .red = keys},
        {.name = "service-acct", .red = sa},
        {.name = "+short-secret", .red = sa_short},
        {.name = "naive", .red = shapes, .naive = naive_list, .nnaive = nn},
    };
    size_t nsets = sizeof sets / sizeof *sets;

    struct lf__buf out, tmp, tmp2;
    lf__buf_init(&out, 0);
    lf__buf_init(&tmp, 0);
    lf__buf_init(&tmp2, 0);
    int leaked = 0;
    for (size_t s = 0; s < nsets; s++) {
        run(&sets[s], &c, &out, &tmp, &tmp2, 1); /* warm-up, and the digest */
        if (sets[s].red == sa || sets[s].red == sa_short) leaked |= leaks(&sets[s], &c, &k, &out);
    }
    for (int r = 0; r < runs; r++)
        for (size_t s = 0; s < nsets; s++)
            sets[s].mbs[r] = (double)c.text.len / 1e6 / run(&sets[s], &c, &out, &tmp, &tmp2, 0);

    printf("corpus: %zu values, %.2f MB; %d runs, median MB/s of %s time (min..max)\n", c.n,
           (double)c.text.len / 1e6, runs, clock_id == CLOCK_MONOTONIC ? "wall" : "CPU");
    printf("registered secrets: api-keys 5, service-acct %d more (PEM, %d lines, 3 fields)\n",
           k.nlines + 4, k.nlines);
    for (size_t s = 0; s < nsets; s++)
        qsort(sets[s].mbs, (size_t)runs, sizeof(double), cmp_double);
    double base = sets[1].mbs[runs / 2];
    for (size_t s = 0; s < nsets; s++) {
        double med = sets[s].mbs[runs / 2];
        printf("%-14s %8.1f MB/s  (%7.1f..%7.1f)  x%.2f of shapes   output %zu B digest %016llx\n",
               sets[s].name, med, sets[s].mbs[0], sets[s].mbs[runs - 1], med / base,
               sets[s].out_bytes, (unsigned long long)sets[s].digest);
    }
    if (leaked) printf("LEAK: a secret line is in the service-acct output\n");

    lf__buf_free(&out);
    lf__buf_free(&tmp);
    lf__buf_free(&tmp2);
    lf__redactor_free(sa_short);
    lf__redactor_free(sa);
    lf__redactor_free(keys);
    lf__redactor_free(shapes);
    lf__buf_free(&c.text);
    free(c.off);
    free(c.len);
    char *owned[] = {k.lf_secret, k.lf_public, k.anthropic, k.bot,           k.github,
                     k.pem,       k.key_id,    k.refresh,   k.client_secret, k.short_one};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        free(owned[i]);
    for (int i = 0; i < k.nlines; i++)
        free(k.lines[i]);
    return leaked;
}
