/* authres — whether a trusted MTA authenticated an email's From (RFC 8601 Authentication-Results).
 */
#include "authres.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest authserv-id, method, result or property value looked at (longer ones never match). */
#define TOKEN_MAX 256

static void set_how(char *how, size_t howlen, const char *text)
{
    if (how && howlen) {
        snprintf(how, howlen, "%s", text);
    }
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A copy of the field value with every comment replaced by one space (nested parentheses and
 * backslash escapes as RFC 5322 allows) and quoted strings kept. New string (malloc) or NULL. */
static char *strip_comments(const char *value)
{
    size_t len = strlen(value);
    char *out = malloc(len + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0, depth = 0;
    bool quoted = false;
    for (size_t i = 0; i < len; i++) {
        char c = value[i];
        if (depth > 0) {
            if (c == '\\' && i + 1 < len) {
                i++;
            } else if (c == '(') {
                depth++;
            } else if (c == ')' && --depth == 0) {
                out[o++] = ' ';
            }
            continue;
        }
        if (quoted) {
            out[o++] = c;
            if (c == '\\' && i + 1 < len) {
                out[o++] = value[++i];
            } else if (c == '"') {
                quoted = false;
            }
            continue;
        }
        if (c == '(') {
            depth = 1;
        } else {
            if (c == '"') {
                quoted = true;
            }
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

/* Reads one token at *p (a quoted string unquoted, or up to white space, '=' or ';') into tok.
 * Returns false when there is none or it is too long. */
static bool read_token(const char **p, char tok[TOKEN_MAX])
{
    const char *s = *p;
    while (is_ws(*s)) {
        s++;
    }
    size_t k = 0;
    if (*s == '"') {
        s++;
        while (*s && *s != '"') {
            if (*s == '\\' && s[1]) {
                s++;
            }
            if (k + 1 >= TOKEN_MAX) {
                return false;
            }
            tok[k++] = *s++;
        }
        if (*s != '"') {
            return false;
        }
        s++;
    } else {
        while (*s && !is_ws(*s) && *s != '=' && *s != ';') {
            if (k + 1 >= TOKEN_MAX) {
                return false;
            }
            tok[k++] = *s++;
        }
    }
    tok[k] = '\0';
    *p = s;
    return k > 0;
}

/* Reads "key = value" at *p. Returns false when the text there is not one. */
static bool read_pair(const char **p, char key[TOKEN_MAX], char value[TOKEN_MAX])
{
    const char *s = *p;
    if (!read_token(&s, key)) {
        return false;
    }
    while (is_ws(*s)) {
        s++;
    }
    if (*s != '=') {
        return false;
    }
    s++;
    if (!read_token(&s, value)) {
        return false;
    }
    *p = s;
    return true;
}

static bool in_list(const char *id, const char *list)
{
    size_t n = strlen(id);
    for (const char *p = list; p && *p;) {
        while (*p == ',' || is_ws(*p)) {
            p++;
        }
        const char *end = p;
        while (*end && *end != ',') {
            end++;
        }
        const char *last = end;
        while (last > p && is_ws(last[-1])) {
            last--;
        }
        if ((size_t)(last - p) == n && n > 0 && strncasecmp(p, id, n) == 0) {
            return true;
        }
        p = end;
    }
    return false;
}

/* The domain of an address or a bare domain ("user@d" or "d"). */
static const char *domain_of(const char *addr)
{
    const char *at = strrchr(addr, '@');
    return at ? at + 1 : addr;
}

/* What one resinfo (one ';'-separated segment) says. */
typedef struct {
    char method[TOKEN_MAX];
    char result[TOKEN_MAX];
    bool aligned;  /* its identity property names the From domain */
    bool has_from; /* dmarc: header.from was given */
} resinfo_t;

/* Parses one segment "method[/version]=result [reason=…] ptype.prop=value…". */
static bool parse_resinfo(const char *seg, const char *domain, resinfo_t *r)
{
    memset(r, 0, sizeof *r);
    const char *p = seg;
    if (!read_pair(&p, r->method, r->result)) {
        return false;
    }
    char *slash = strchr(r->method, '/');
    if (slash) {
        *slash = '\0';
    }
    char key[TOKEN_MAX], value[TOKEN_MAX];
    while (read_pair(&p, key, value)) {
        bool dmarc = strcasecmp(r->method, "dmarc") == 0;
        bool dkim = strcasecmp(r->method, "dkim") == 0;
        bool spf = strcasecmp(r->method, "spf") == 0;
        if (dmarc && strcasecmp(key, "header.from") == 0) {
            r->has_from = true;
            r->aligned = strcasecmp(domain_of(value), domain) == 0;
        } else if (dkim && strcasecmp(key, "header.d") == 0) {
            r->aligned = r->aligned || strcasecmp(value, domain) == 0;
        } else if (dkim && strcasecmp(key, "header.i") == 0) {
            const char *at = strrchr(value, '@');
            r->aligned = r->aligned || (at && strcasecmp(at + 1, domain) == 0);
        } else if (spf && strcasecmp(key, "smtp.mailfrom") == 0) {
            r->aligned = r->aligned || strcasecmp(domain_of(value), domain) == 0;
        }
    }
    return true;
}

/* The verdict of one field (already known to come from a trusted authserv-id); `rest` is the
 * text after the authserv-id segment. */
static intake_authres_t judge(char *rest, const char *domain, char *how, size_t howlen)
{
    const char *passed = NULL;
    bool dmarc_failed = false;
    char *save = NULL;
    for (char *seg = strtok_r(rest, ";", &save); seg; seg = strtok_r(NULL, ";", &save)) {
        resinfo_t r;
        if (!parse_resinfo(seg, domain, &r)) {
            continue;
        }
        bool pass = strcasecmp(r.result, "pass") == 0;
        if (strcasecmp(r.method, "dmarc") == 0) {
            if (strcasecmp(r.result, "fail") == 0) {
                dmarc_failed = true;
            } else if (pass && (!r.has_from || r.aligned)) {
                passed = "dmarc";
            }
        } else if (pass && r.aligned && !passed &&
                   (strcasecmp(r.method, "dkim") == 0 || strcasecmp(r.method, "spf") == 0)) {
            passed = strcasecmp(r.method, "dkim") == 0 ? "dkim" : "spf";
        }
    }
    if (dmarc_failed) {
        set_how(how, howlen, "dmarc=fail");
        return INTAKE_AUTHRES_FAIL;
    }
    if (!passed) {
        set_how(how, howlen, "nothing aligned with From passed");
        return INTAKE_AUTHRES_FAIL;
    }
    set_how(how, howlen, passed);
    return INTAKE_AUTHRES_PASS;
}

/* Splits off the authserv-id segment: the id into id[], and *rest at the text after the first
 * ';' outside quotes (NULL when there is none). Modifies text. */
static bool split_authserv(char *text, char id[TOKEN_MAX], char **rest)
{
    bool quoted = false;
    *rest = NULL;
    for (char *p = text; *p; p++) {
        if (*p == '\\' && quoted && p[1]) {
            p++;
        } else if (*p == '"') {
            quoted = !quoted;
        } else if (*p == ';' && !quoted) {
            *p = '\0';
            *rest = p + 1;
            break;
        }
    }
    const char *s = text;
    return read_token(&s, id);
}

intake_authres_t intake_authres_check(const char *const *values, size_t n, const char *trusted,
                                      const char *from_addr, char *how, size_t howlen)
{
    set_how(how, howlen, "no trusted Authentication-Results");
    if (!trusted || !*trusted || !from_addr || !strchr(from_addr, '@')) {
        return INTAKE_AUTHRES_NONE;
    }
    const char *domain = domain_of(from_addr);
    for (size_t i = 0; i < n; i++) {
        if (!values[i]) {
            continue;
        }
        char *text = strip_comments(values[i]);
        if (!text) {
            set_how(how, howlen, "out of memory");
            return INTAKE_AUTHRES_FAIL; /* never a pass by accident */
        }
        char id[TOKEN_MAX], *rest;
        if (!split_authserv(text, id, &rest) || !in_list(id, trusted)) {
            free(text);
            continue;
        }
        /* The topmost field of a trusted MTA: it alone decides, pass or not. */
        intake_authres_t verdict = INTAKE_AUTHRES_FAIL;
        if (rest) {
            verdict = judge(rest, domain, how, howlen);
        } else {
            set_how(how, howlen, "nothing aligned with From passed");
        }
        free(text);
        return verdict;
    }
    return INTAKE_AUTHRES_NONE;
}
