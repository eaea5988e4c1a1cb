/* wasl_convert — readable UTF-8 text from what mailers send: charsets, HTML, format=flowed,
 * one-line fields, the clean-up of a body. Moved out of intake's email.c (issue 14) so that the
 * MIME walker there only walks MIME. */
#include "wasl_convert.h"

#include "wasl_text.h"

#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of an HTML part searched for a <meta charset> when the part declares none. */
#define HTML_META_SCAN_BYTES 2048
#define ICONV_CHUNK_BYTES    8192
#define CHARSET_NAME_MAX     40

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Appends s[0..len) to out, each ill-formed UTF-8 subpart replaced by U+FFFD. Valid text (nearly
 * all of it) is appended as is; the rest goes through wasl_utf8_sanitize, the one policy. */
static void append_sanitized(GString *out, const char *s, size_t len)
{
    if (wasl_utf8_valid(s, len, true)) {
        g_string_append_len(out, s, (gssize)len);
        return;
    }
    size_t n = 0;
    char *clean = wasl_utf8_sanitize(s, len, &n);
    if (clean) {
        g_string_append_len(out, clean, (gssize)n);
        free(clean);
    }
}

static void append_codepoint(GString *out, uint32_t cp)
{
    if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        g_string_append(out, WASL_UTF8_REPLACEMENT);
    } else {
        g_string_append_unichar(out, (gunichar)cp);
    }
}

/* Control characters that must not reach a one-line field or the body: C0 (tab and newline are
 * decided by the caller), DEL, C1, and the Unicode line/paragraph separators. */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029;
}

char *wasl_convert_one_line(const char *in)
{
    GString *clean = g_string_new(NULL);
    append_sanitized(clean, in ? in : "", in ? strlen(in) : 0);
    GString *out = g_string_sized_new(clean->len);
    size_t i = 0, len = clean->len;
    bool space = false;
    while (i < len) {
        uint32_t cp;
        size_t n = wasl_utf8_decode(clean->str + i, len - i, &cp, NULL);
        if (cp == ' ' || is_control(cp)) {
            space = true;
        } else {
            if (space && out->len > 0) {
                g_string_append_c(out, ' ');
            }
            space = false;
            g_string_append_len(out, clean->str + i, (gssize)n);
        }
        i += n;
    }
    g_string_free(clean, TRUE);
    char *result = strdup(out->str);
    g_string_free(out, TRUE);
    return result;
}

/* ---- charsets ------------------------------------------------------------------------------- */

static bool charset_is(const char *canon, const char *name)
{
    return canon && g_ascii_strcasecmp(canon, name) == 0;
}

/* Whether a declared charset name is worth asking GMime and iconv about (GMime caches every name
 * it is asked; a hostile one is treated as undeclared instead). */
static bool charset_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > CHARSET_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!g_ascii_isalnum(name[i]) && !strchr("-_.:+()", name[i])) {
            return false;
        }
    }
    return true;
}

/* Appends raw converted from `iconv_name` to UTF-8; each byte iconv rejects becomes U+FFFD.
 * Returns -1 when iconv does not know the charset (nothing appended). */
static int append_iconv(GString *out, const char *raw, size_t len, const char *iconv_name)
{
    iconv_t cd = iconv_open("UTF-8", iconv_name);
    if (cd == (iconv_t)-1) {
        return -1;
    }
    char buf[ICONV_CHUNK_BYTES];
    char *in = (char *)raw;
    size_t inleft = len;
    GString *conv = g_string_sized_new(len + len / 2);
    while (inleft > 0) {
        char *outp = buf;
        size_t outleft = sizeof buf;
        size_t r = iconv(cd, &in, &inleft, &outp, &outleft);
        int saved = errno;
        g_string_append_len(conv, buf, (gssize)(outp - buf));
        if (r != (size_t)-1 || saved == E2BIG) {
            continue;
        }
        g_string_append(conv, WASL_UTF8_REPLACEMENT);
        if (saved != EILSEQ) { /* EINVAL: a truncated sequence at the end */
            break;
        }
        in++;
        inleft--;
        iconv(cd, NULL, NULL, NULL, NULL); /* back to the initial shift state */
    }
    char *outp = buf;
    size_t outleft = sizeof buf;
    iconv(cd, NULL, NULL, &outp, &outleft);
    g_string_append_len(conv, buf, (gssize)(outp - buf));
    iconv_close(cd);
    append_sanitized(out, conv->str, conv->len); /* iconv's output, checked anyway */
    g_string_free(conv, TRUE);
    return 0;
}

/* ISO-8859-1 needs no table: every byte is the code point of the same number. */
static void append_latin1(GString *out, const char *raw, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        g_string_append_unichar(out, (unsigned char)raw[i]);
    }
}

void wasl_convert_append_utf8(GString *out, const char *raw, size_t len, const char *charset)
{
    const char *canon = charset_name_ok(charset) ? g_mime_charset_canon_name(charset) : NULL;
    if (charset_is(canon, "utf-8") || charset_is(canon, "utf8")) {
        append_sanitized(out, raw, len);
        return;
    }
    bool lax = !canon || charset_is(canon, "us-ascii") || charset_is(canon, "ascii") ||
               charset_is(canon, "unknown-8bit") || charset_is(canon, "x-unknown") ||
               charset_is(canon, "iso-8859-1") || charset_is(canon, "latin1") ||
               charset_is(canon, "windows-cp1252") || charset_is(canon, "cp1252");
    if (lax && wasl_utf8_valid(raw, len, true)) {
        g_string_append_len(out, raw, (gssize)len);
        return;
    }
    if (!canon || charset_is(canon, "us-ascii") || charset_is(canon, "ascii") ||
        charset_is(canon, "unknown-8bit") || charset_is(canon, "x-unknown")) {
        canon = "windows-1256";
    }
    if (append_iconv(out, raw, len, g_mime_charset_iconv_name(canon)) == 0) {
        return;
    }
    if (wasl_utf8_valid(raw, len, true)) {
        g_string_append_len(out, raw, (gssize)len);
    } else if (append_iconv(out, raw, len, "CP1256") != 0) {
        append_latin1(out, raw, len);
    }
}

char *wasl_convert_html_charset(const char *s, size_t n)
{
    size_t scan = n < HTML_META_SCAN_BYTES ? n : HTML_META_SCAN_BYTES;
    size_t at = wasl_ascii_find_ci(s, scan, "charset=");
    if (at == scan) {
        return NULL;
    }
    size_t i = at + strlen("charset=");
    while (i < scan && (s[i] == '"' || s[i] == '\'' || s[i] == ' ')) {
        i++;
    }
    size_t start = i;
    while (i < scan && (g_ascii_isalnum(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == ':')) {
        i++;
    }
    return i > start ? g_strndup(s + start, i - start) : NULL;
}

/* ---- plain text ----------------------------------------------------------------------------- */

void wasl_convert_newlines(GString *s)
{
    size_t w = 0;
    for (size_t r = 0; r < s->len; r++) {
        char c = s->str[r];
        if (c == '\r') {
            if (r + 1 < s->len && s->str[r + 1] == '\n') {
                continue;
            }
            c = '\n';
        }
        s->str[w++] = c;
    }
    g_string_truncate(s, w);
}

GString *wasl_convert_unflow(const GString *in, bool delsp)
{
    GString *out = g_string_sized_new(in->len);
    const char *p = in->str, *end = in->str + in->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        size_t n = (size_t)(eol - p);
        const char *line = p;
        if (n > 0 && line[0] == ' ') {
            line++;
            n--;
        }
        bool signature = n == 3 && memcmp(line, "-- ", 3) == 0;
        bool flowed = nl && n > 0 && line[n - 1] == ' ' && !signature;
        g_string_append_len(out, line, (gssize)(flowed && delsp ? n - 1 : n));
        if (nl && !flowed) {
            g_string_append_c(out, '\n');
        }
        p = nl ? nl + 1 : end;
    }
    return out;
}

GString *wasl_convert_clean_body(const GString *s)
{
    GString *out = g_string_sized_new(s->len);
    size_t i = 0;
    size_t newlines = 0; /* newlines ending out */
    while (i < s->len) {
        uint32_t cp;
        bool bad;
        size_t n = wasl_utf8_decode(s->str + i, s->len - i, &cp, &bad);
        if (bad) { /* cannot happen on converted text; be safe anyway */
            g_string_append(out, WASL_UTF8_REPLACEMENT);
            newlines = 0;
            i += n;
            continue;
        }
        if (cp == '\n') {
            while (out->len > 0 &&
                   (out->str[out->len - 1] == ' ' || out->str[out->len - 1] == '\t')) {
                g_string_truncate(out, out->len - 1);
            }
            if (out->len > 0 && newlines < 2) {
                g_string_append_c(out, '\n');
                newlines++;
            }
        } else if (cp == 0xA0) {
            g_string_append_c(out, ' ');
        } else if (cp == '\t' || !is_control(cp)) {
            g_string_append_len(out, s->str + i, (gssize)n);
            if (cp != ' ' && cp != '\t') {
                newlines = 0;
            }
        }
        i += n;
    }
    while (out->len > 0 && g_ascii_isspace(out->str[out->len - 1])) {
        g_string_truncate(out, out->len - 1);
    }
    return out;
}

/* ---- HTML ----------------------------------------------------------------------------------- */

/* Ends the current line (trailing spaces dropped) unless the text is empty or already at the
 * start of a line. */
static void text_newline(GString *out)
{
    while (out->len > 0 && out->str[out->len - 1] == ' ') {
        g_string_truncate(out, out->len - 1);
    }
    if (out->len > 0 && out->str[out->len - 1] != '\n') {
        g_string_append_c(out, '\n');
    }
}

static const struct {
    const char *name;
    uint32_t cp;
} html_entities[] = {
    {"amp", '&'},      {"lt", '<'},       {"gt", '>'},       {"quot", '"'},     {"apos", '\''},
    {"nbsp", 0xA0},    {"copy", 0xA9},    {"reg", 0xAE},     {"trade", 0x2122}, {"hellip", 0x2026},
    {"mdash", 0x2014}, {"ndash", 0x2013}, {"laquo", 0xAB},   {"raquo", 0xBB},   {"lsquo", 0x2018},
    {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D}, {"bull", 0x2022},  {"middot", 0xB7},
    {"times", 0xD7},   {"divide", 0xF7},  {"euro", 0x20AC},  {"deg", 0xB0},     {"sect", 0xA7},
    {"para", 0xB6},    {"shy", 0xAD},     {"rlm", 0x200F},   {"lrm", 0x200E},   {"zwnj", 0x200C},
    {"zwj", 0x200D},
};

/* Decodes the character reference at s[0] == '&' (s has n bytes). Returns the bytes consumed
 * and appends the character, or returns 0 when it is not a reference ('&' is then literal). */
static size_t html_entity(const char *s, size_t n, GString *out)
{
    size_t i = 1;
    if (i < n && s[i] == '#') {
        i++;
        bool hex = i < n && (s[i] == 'x' || s[i] == 'X');
        if (hex) {
            i++;
        }
        uint32_t cp = 0;
        size_t digits = 0;
        while (i < n && (hex ? g_ascii_isxdigit(s[i]) : g_ascii_isdigit(s[i]))) {
            if (cp <= 0x10FFFF) {
                cp = cp * (hex ? 16 : 10) +
                     (uint32_t)(hex ? g_ascii_xdigit_value(s[i]) : g_ascii_digit_value(s[i]));
            }
            i++;
            digits++;
        }
        if (digits == 0) {
            return 0;
        }
        if (i < n && s[i] == ';') {
            i++;
        }
        append_codepoint(out, cp);
        return i;
    }
    size_t start = i;
    while (i < n && i - start < 8 && g_ascii_isalnum(s[i])) {
        i++;
    }
    if (i == start || i >= n || s[i] != ';') {
        return 0;
    }
    for (size_t k = 0; k < G_N_ELEMENTS(html_entities); k++) {
        if (strlen(html_entities[k].name) == i - start &&
            memcmp(html_entities[k].name, s + start, i - start) == 0) {
            append_codepoint(out, html_entities[k].cp);
            return i + 1;
        }
    }
    return 0;
}

/* Offset just past the '>' closing the tag that starts at s[start] (quoted attribute values may
 * hold '>'), or n when it is never closed. last_quote[0] and [1] are the offsets of the last '"'
 * and '\'' in s (n when none): a quote at or after its last occurrence is never closed, and the
 * first '>' ends the tag instead. Every byte looked at is consumed, so a document of broken tags
 * costs linear time. */
static size_t tag_end(const char *s, size_t n, size_t start, const size_t last_quote[2])
{
    for (size_t i = start + 1; i < n; i++) {
        if (s[i] == '>') {
            return i + 1;
        }
        if (s[i] == '"' || s[i] == '\'') {
            if (i >= last_quote[s[i] == '\'']) {
                const char *gt = memchr(s + i, '>', n - i);
                return gt ? (size_t)(gt - s) + 1 : n;
            }
            const char *close = memchr(s + i + 1, s[i], n - i - 1); /* exists: i < last */
            i = (size_t)(close - s);
        }
    }
    return n;
}

static size_t last_of(const char *s, size_t n, char c)
{
    for (size_t i = n; i > 0; i--) {
        if (s[i - 1] == c) {
            return i - 1;
        }
    }
    return n;
}

static bool tag_is(const char *name, const char *const *set)
{
    for (size_t i = 0; set[i]; i++) {
        if (strcmp(name, set[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The state of one HTML conversion. */
typedef struct {
    const char *s;
    size_t n;
    size_t last_quote[2]; /* see tag_end */
    GString *out;
    bool space; /* white space seen since the last character written */
} html_t;

/* Writes the white space collapsed before a character, unless at the start of a line. */
static void html_pending_space(html_t *h)
{
    if (h->space && h->out->len > 0 && h->out->str[h->out->len - 1] != '\n') {
        g_string_append_c(h->out, ' ');
    }
    h->space = false;
}

/* What an element's tag does to the text: a line break, a list item, a gap between cells. */
static void html_element(html_t *h, const char *name, bool closing)
{
    static const char *const breaks[] = {
        "br",      "p",       "div",      "tr",     "h1",      "h2",         "h3", "h4",
        "h5",      "h6",      "ul",       "ol",     "table",   "blockquote", "hr", "pre",
        "section", "article", "header",   "footer", "address", "center",     "dl", "dt",
        "dd",      "form",    "fieldset", "body",   "li",      NULL};
    GString *out = h->out;
    if (strcmp(name, "li") == 0 && !closing) {
        text_newline(out);
        g_string_append(out, "- ");
        h->space = false;
    } else if (strcmp(name, "br") == 0) {
        /* a line break even on an empty line: two in a row make a blank line */
        while (out->len > 0 && out->str[out->len - 1] == ' ') {
            g_string_truncate(out, out->len - 1);
        }
        if (out->len > 0) {
            g_string_append_c(out, '\n');
        }
        h->space = false;
    } else if (tag_is(name, breaks)) {
        text_newline(out);
        h->space = false;
    } else if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0) {
        h->space = true;
    }
}

/* The markup that starts at s[i] == '<': a comment, a declaration, or a tag (a dropped
 * element's content included). Returns the offset just past it, or i when the '<' is a
 * literal ("x < 5"). */
static size_t html_markup(html_t *h, size_t i)
{
    static const char *const dropped[] = {"script", "style", "title", NULL};
    const char *s = h->s;
    size_t n = h->n;
    if (n - i >= 4 && memcmp(s + i, "<!--", 4) == 0) {
        size_t e = wasl_ascii_find_ci(s + i + 4, n - i - 4, "-->");
        return e == n - i - 4 ? n : i + 4 + e + 3;
    }
    size_t j = i + 1;
    bool closing = j < n && s[j] == '/';
    if (closing) {
        j++;
    }
    if (j < n && (s[j] == '!' || s[j] == '?')) {
        return tag_end(s, n, i, h->last_quote);
    }
    if (j >= n || !g_ascii_isalpha(s[j])) {
        return i;
    }
    char name[16];
    size_t k = 0;
    while (j < n && (g_ascii_isalnum(s[j]) || s[j] == '-' || s[j] == ':')) {
        if (k + 1 < sizeof name) {
            name[k++] = g_ascii_tolower(s[j]);
        }
        j++;
    }
    name[k] = '\0';
    size_t end = tag_end(s, n, i, h->last_quote);
    if (!closing && tag_is(name, dropped)) {
        char close[24];
        snprintf(close, sizeof close, "</%s", name);
        size_t e = wasl_ascii_find_ci(s + end, n - end, close);
        return e == n - end ? n : tag_end(s, n, end + e, h->last_quote);
    }
    html_element(h, name, closing);
    return end;
}

GString *wasl_convert_html_to_text(const char *s, size_t n)
{
    html_t h = {.s = s,
                .n = n,
                .last_quote = {last_of(s, n, '"'), last_of(s, n, '\'')},
                .out = g_string_sized_new(n / 2)};
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '<') {
            size_t next = html_markup(&h, i);
            if (next != i) {
                i = next;
                continue;
            }
        } else if (c == '&') {
            html_pending_space(&h);
            size_t used = html_entity(s + i, n - i, h.out);
            if (used) {
                i += used;
                continue;
            }
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
            h.space = true;
            i++;
            continue;
        }
        html_pending_space(&h);
        g_string_append_c(h.out, c);
        i++;
    }
    return h.out;
}
