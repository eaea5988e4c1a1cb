#!/usr/bin/python3
"""gen.py — generates Wasl's C message codec and embedded SQL migrations from proto/.

    gen.py codec proto/wasl.proto build/gen        -> wasl_proto.h, wasl_proto.c
    gen.py migrations proto/migrations build/gen [proto/grants.sql]
                                                   -> wasl_migrations.h, wasl_migrations.c

Run through `make proto`. Python 3.11 standard library only. Errors go to stderr as
`FILE:LINE: message` (model) or `FILE: message` (migrations) and exit with status 1.

The codec is table-driven: the model becomes one C struct per message plus a table of field
descriptors (name, kind, limits, offset); one static encoder, decoder and destructor walk that
table. The decoder never trusts its input: a structural pre-scan bounds every length before
msgpack-c allocates anything, then every value is type-, size- and UTF-8-checked.
"""

import hashlib
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field

# Pipeline stages a message can be addressed to (one bus streamer each), plus "rpc" for the
# request/reply pair. A new stage must be added here on purpose: a typo should not silently
# create one.
STAGES = ("classify", "route", "notify", "rpc")
KINDS = ("u64", "i64", "f64", "bool", "str", "bin", "strlist")
SIZED_KINDS = ("str", "bin", "strlist")
RESERVED_FIELDS = ("type", "v")
MIN_LIMIT = 64
MAX_LIMIT = 1 << 30  # msgpack-c and our size_t arithmetic are comfortable far below 2^32
MAX_VERSION = 2**31 - 1
C_KEYWORDS = set("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while bool true false errno assert offsetof
    _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn _Static_assert
    _Thread_local""".split())

TYPE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
FIELD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
VERSION_RE = re.compile(r"^v([0-9]+)$")
OPTION_RE = re.compile(r"^(max|item)=([0-9]+)$")
MIGRATION_RE = re.compile(r"^([0-9]{4})_([a-z0-9_]+)\.sql$")

C_LINE_MAX = 100


class GenError(Exception):
    """A problem in the input; str() is the complete user-facing message."""


# ---- model ---------------------------------------------------------------------------------


@dataclass
class Field:
    name: str
    kind: str
    required: bool
    max: int | None
    item: int | None
    doc: str
    line: int


@dataclass
class Message:
    type: str
    version: int
    stage: str
    purpose: str
    line: int
    fields: list[Field] = field(default_factory=list)

    @property
    def ident(self) -> str:
        """C identifier stem: ticket.received -> ticket_received."""
        return self.type.replace(".", "_")

    @property
    def enum(self) -> str:
        return "WASL_MSG_" + self.ident.upper()


@dataclass
class Model:
    path: str
    limit: int
    messages: list[Message]


def tokenize(text: str, where: str) -> list[tuple[str, str]]:
    """Split one model line into ("word", w) and ("string", s) tokens; '#' starts a comment."""
    tokens = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
        elif c == "#":
            break
        elif c == '"':
            i += 1
            out = []
            while True:
                if i >= n:
                    raise GenError(f"{where}: unterminated string")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    if i + 1 >= n or text[i + 1] not in '"\\':
                        raise GenError(f'{where}: only \\" and \\\\ escapes are allowed in strings')
                    out.append(text[i + 1])
                    i += 2
                    continue
                out.append(c)
                i += 1
            tokens.append(("string", "".join(out)))
        else:
            j = i
            while j < n and text[j] not in ' \t\r#"':
                j += 1
            tokens.append(("word", text[i:j]))
            i = j
    return tokens


def parse_positive(value: str, what: str, where: str, low: int, high: int) -> int:
    if not value.isdigit():
        raise GenError(f"{where}: {what} must be a number, not '{value}'")
    number = int(value)
    if number < low or number > high:
        raise GenError(f"{where}: {what} {number} is out of range [{low}, {high}]")
    return number


def parse_field(tokens: list[tuple[str, str]], where: str, line: int) -> Field:
    words = [t for kind, t in tokens if kind == "word"]
    strings = [t for kind, t in tokens if kind == "string"]
    if len(strings) > 1 or (strings and tokens[-1][0] != "string"):
        raise GenError(f"{where}: a field takes at most one doc string, at the end of the line")
    if len(words) < 3:
        raise GenError(f"{where}: expected `<field> <kind> required|optional [max=N] [item=N]`")
    name, kind, presence, options = words[0], words[1], words[2], words[3:]
    if not FIELD_NAME_RE.match(name):
        raise GenError(f"{where}: field name '{name}' must match [a-z][a-z0-9_]*")
    if name in RESERVED_FIELDS:
        raise GenError(f"{where}: field name '{name}' is reserved for the envelope")
    if name in C_KEYWORDS:
        raise GenError(f"{where}: field name '{name}' is a C keyword")
    if kind not in KINDS:
        raise GenError(f"{where}: unknown kind '{kind}' (known: {' '.join(KINDS)})")
    if presence not in ("required", "optional"):
        raise GenError(f"{where}: expected 'required' or 'optional', not '{presence}'")
    values: dict[str, int] = {}
    for option in options:
        m = OPTION_RE.match(option)
        if not m:
            raise GenError(f"{where}: unknown option '{option}' (expected max=N or item=N)")
        key = m.group(1)
        if key in values:
            raise GenError(f"{where}: option '{key}' given twice")
        values[key] = parse_positive(m.group(2), key, where, 1, MAX_LIMIT)
    if kind in SIZED_KINDS and "max" not in values:
        raise GenError(f"{where}: {kind} field '{name}' needs max=N")
    if kind not in SIZED_KINDS and "max" in values:
        raise GenError(f"{where}: max= applies only to {', '.join(SIZED_KINDS)}")
    if kind == "strlist" and "item" not in values:
        raise GenError(f"{where}: strlist field '{name}' needs item=N (largest item, in bytes)")
    if kind != "strlist" and "item" in values:
        raise GenError(f"{where}: item= applies only to strlist")
    return Field(name, kind, presence == "required", values.get("max"), values.get("item"),
                 strings[0] if strings else "", line)


def c_members(f: Field) -> list[str]:
    """Names of the C struct members a field occupies."""
    if f.kind == "bin":
        return [f.name, f.name + "_len"]
    if f.kind == "strlist":
        return [f.name, f.name + "_count"]
    if not f.required and f.kind in ("u64", "i64", "f64", "bool"):
        return [f.name, "has_" + f.name]
    return [f.name]


def parse_model(path: str) -> Model:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise GenError(f"{path}: cannot read model: {exc}") from None
    limit = None
    messages: list[Message] = []
    current: Message | None = None
    by_type: dict[str, Message] = {}
    by_ident: dict[str, Message] = {}
    for number, text in enumerate(lines, start=1):
        where = f"{path}:{number}"
        tokens = tokenize(text, where)
        if not tokens:
            continue
        if text[:1] in (" ", "\t"):
            if current is None:
                raise GenError(f"{where}: field outside a message")
            f = parse_field(tokens, where, number)
            taken = {m for other in current.fields for m in c_members(other)}
            clash = taken.intersection(c_members(f))
            if clash:
                raise GenError(f"{where}: field '{f.name}' collides with "
                               f"'{sorted(clash)[0]}' already in {current.type}")
            current.fields.append(f)
            continue
        kind, word = tokens[0]
        if kind != "word":
            raise GenError(f"{where}: expected 'limit' or 'message'")
        if word == "limit":
            if limit is not None:
                raise GenError(f"{where}: 'limit' given twice")
            if len(tokens) != 2 or tokens[1][0] != "word":
                raise GenError(f"{where}: expected `limit <bytes>`")
            limit = parse_positive(tokens[1][1], "limit", where, MIN_LIMIT, MAX_LIMIT)
        elif word == "message":
            if (len(tokens) != 5 or any(k != "word" for k, _ in tokens[:4])
                    or tokens[4][0] != "string"):
                raise GenError(f'{where}: expected `message <type> v<version> <stage> "<purpose>"`')
            type_name, version_word, stage = tokens[1][1], tokens[2][1], tokens[3][1]
            if not TYPE_NAME_RE.match(type_name):
                raise GenError(f"{where}: message type '{type_name}' must be dotted lowercase "
                               "words, e.g. ticket.received")
            m = VERSION_RE.match(version_word)
            if not m:
                raise GenError(f"{where}: expected a version like v1, not '{version_word}'")
            version = parse_positive(m.group(1), "version", where, 1, MAX_VERSION)
            if stage not in STAGES:
                raise GenError(f"{where}: unknown stage '{stage}' (known: {' '.join(STAGES)}; "
                               "a new one goes into STAGES in proto/gen.py)")
            if type_name in by_type:
                raise GenError(f"{where}: message type '{type_name}' already defined at line "
                               f"{by_type[type_name].line}")
            current = Message(type_name, version, stage, tokens[4][1], number)
            if current.ident in by_ident:
                raise GenError(f"{where}: '{type_name}' and '{by_ident[current.ident].type}' "
                               f"both become {current.enum} in C")
            by_type[type_name] = current
            by_ident[current.ident] = current
            messages.append(current)
        else:
            raise GenError(f"{where}: unknown directive '{word}' (expected 'limit' or 'message'; "
                           "field lines are indented)")
    if limit is None:
        raise GenError(f"{path}:1: the model needs a `limit <bytes>` line")
    if not messages:
        raise GenError(f"{path}:{len(lines)}: the model defines no message")
    for msg in messages:
        # wasl_rpc resends a request that timed out, possibly to another worker: the worker can
        # only answer a resend once (the same reply, one audit row) if it can tell it is one.
        rid = next((f for f in msg.fields if f.name == "request_id"), None)
        if msg.stage == "rpc" and (rid is None or rid.kind != "str" or not rid.required):
            raise GenError(f"{path}:{msg.line}: rpc message '{msg.type}' needs a required str "
                           "field request_id (resends are deduplicated by it)")
        for f in msg.fields:
            for value in (f.max, f.item):
                if value is not None and value > limit:
                    raise GenError(f"{path}:{f.line}: {value} is larger than the message limit "
                                   f"{limit}")
    return Model(path, limit, messages)


# ---- C helpers -----------------------------------------------------------------------------


def comment_text(text: str) -> str:
    """Text made safe to sit inside a C block comment."""
    return text.replace("*/", "* /").replace("/*", "/ *")


def block_comment(text: str, indent: str) -> list[str]:
    width = C_LINE_MAX - len(indent) - 3
    lines = textwrap.wrap(comment_text(text), width=width - 3) or [""]
    if len(lines) == 1 and len(lines[0]) <= width - 6:
        return [f"{indent}/* {lines[0]} */"]
    out = [f"{indent}/* {lines[0]}"]
    out += [f"{indent} * {line}" for line in lines[1:]]
    out.append(f"{indent} */")
    return out


def banner(name: str, purpose: str, source: str) -> str:
    """The opening comment of a generated file: what it is, and that it must not be edited."""
    source = comment_text(source)
    return (f"/* {name} — GENERATED from {source} by proto/gen.py. DO NOT EDIT:\n"
            f" * change {source} and run `make proto`.\n"
            f" *\n"
            f" * {purpose}\n"
            f" */\n")


def write_outputs(outdir: str, files: dict[str, str]) -> None:
    """Write each file atomically, so a failed run never leaves half a file for make."""
    os.makedirs(outdir, exist_ok=True)
    for name, content in files.items():
        path = os.path.join(outdir, name)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(content)
        os.replace(tmp, path)


# ---- codec: header -------------------------------------------------------------------------

HEADER_TOP = r"""
#ifndef WASL_PROTO_H
#define WASL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <czmq.h>

/* Largest encoded message in bytes (the model's `limit`); larger frames are refused. */
#define WASL_MSG_LIMIT @LIMIT@
/* Deepest container nesting the decoder accepts; the top-level map is depth 1. */
#define WASL_MSG_MAX_DEPTH 3

/* Message types, in model order. Valid types are 1..WASL_MSG_TYPE_COUNT. */
typedef enum {
    WASL_MSG_NONE = 0,
@ENUM@} wasl_msg_type_t;
#define WASL_MSG_TYPE_COUNT @COUNT@
"""

HEADER_BOTTOM = r"""
/* A message of any type: `type` says which member of `u` is live. Every pointer inside is owned
 * by the message and freed by wasl_msg_destroy(), so fill it with malloc'd memory (strdup). */
typedef struct {
    wasl_msg_type_t type;
    union {
@UNION@    } u;
} wasl_msg_t;

/* Why encoding or decoding failed. */
typedef enum {
    WASL_MSG_OK = 0,
    WASL_MSG_ETRUNCATED, /* input ends inside an object (or is empty) */
    WASL_MSG_EGARBAGE,   /* not msgpack, not a map, non-string key, duplicate key, trailing
                          * bytes, or nested deeper than WASL_MSG_MAX_DEPTH */
    WASL_MSG_ETOOBIG,    /* frame over WASL_MSG_LIMIT, or a field over its max */
    WASL_MSG_EUNKNOWN,   /* unknown message type or version */
    WASL_MSG_EMISSING,   /* a required field is absent (or NULL when encoding) */
    WASL_MSG_ETYPE,      /* wrong msgpack type, integer out of range, or a string that is not
                          * UTF-8 or holds a NUL byte */
    WASL_MSG_ENOMEM,     /* out of memory */
    WASL_MSG_ESEND       /* the socket refused the frame (wasl_msg_send only; see errno) */
} wasl_msg_errcode_t;

/* Error details: `code` is a wasl_msg_errcode_t; `field` names the offending field ("type", "v"
 * or a model field) or is empty; `message` is a human-readable explanation. Strings are always
 * NUL-terminated and never echo raw input bytes. */
typedef struct {
    int code;
    char field[64];
    char message[160];
} wasl_msg_error_t;

/* Returns the wire name of a type ("ticket.received"), or "unknown" for an invalid type. */
const char *wasl_msg_type_name(wasl_msg_type_t t);

/* Returns the model version of a type, or 0 for an invalid type. */
int wasl_msg_type_version(wasl_msg_type_t t);

/* Returns the stage a type is addressed to ("classify", "route", "notify" or "rpc"), or
 * "unknown" for an invalid type. */
const char *wasl_msg_type_stage(wasl_msg_type_t t);

/* Returns a static description of an error code; never NULL. */
const char *wasl_msg_strerror(int code);

/* Returns a new zeroed message of `type` (strings NULL, optional numbers absent), owned by the
 * caller; NULL when `type` is not a message type or memory is exhausted. */
wasl_msg_t *wasl_msg_new(wasl_msg_type_t type);

/* Frees a message and everything it points to and sets *self_p to NULL; safe on NULL and
 * twice. */
void wasl_msg_destroy(wasl_msg_t **self_p);

/* Encodes `msg` (borrowed) as a msgpack map: "type", "v", then every present field. Returns 0
 * with *data a malloc'd buffer of *len bytes that the caller frees; or -1 with *data NULL and
 * `err` (may be NULL) filled: EUNKNOWN for an invalid type, EMISSING for a required string, bin
 * or strlist that is NULL, ETOOBIG for a value over its max or a result over WASL_MSG_LIMIT,
 * ETYPE for a string that is not UTF-8, ENOMEM. A str/bin/strlist is absent when its pointer is
 * NULL; an optional number or bool is absent when its has_ flag is false. */
int wasl_msg_encode(const wasl_msg_t *msg, char **data, size_t *len, wasl_msg_error_t *err);

/* Decodes one message from `len` bytes at `data` (borrowed; hostile input is fine). Returns a new
 * message owned by the caller, or NULL with `err` (may be NULL) filled. Unknown fields are
 * skipped; a nil value counts as absent. Present str/bin/strlist fields are never NULL; a
 * strlist is also NULL-terminated. */
wasl_msg_t *wasl_msg_decode(const void *data, size_t len, wasl_msg_error_t *err);

/* Encodes `msg` (borrowed) and sends it as one frame on `sock` (blocking, like zframe_send).
 * Returns 0, or -1 with `err` filled (ESEND when the socket refused; errno says why). */
int wasl_msg_send(const wasl_msg_t *msg, zsock_t *sock, wasl_msg_error_t *err);

/* Decodes a received frame (borrowed; the caller still destroys it). Returns a new message owned
 * by the caller, or NULL with `err` filled (ETRUNCATED for a NULL frame). */
wasl_msg_t *wasl_msg_recv_frame(zframe_t *frame, wasl_msg_error_t *err);

#endif
"""

C_TYPES = {"u64": "uint64_t", "i64": "int64_t", "f64": "double", "bool": "bool"}


def field_doc(f: Field) -> str:
    parts = ["required" if f.required else "optional"]
    if f.kind == "str":
        parts.append(f"max {f.max} bytes UTF-8" + ("" if f.required else ", NULL when absent"))
    elif f.kind == "bin":
        parts.append(f"max {f.max} bytes" + ("" if f.required else ", NULL when absent"))
    elif f.kind == "strlist":
        parts.append(f"max {f.max} items of max {f.item} bytes, NULL-terminated"
                     + ("" if f.required else ", NULL when absent"))
    head = ", ".join(parts)
    return f"{head}: {f.doc}" if f.doc else head


def gen_header(model: Model) -> str:
    out = [banner("wasl_proto.h", "The Wasl message codec: one struct per message, an encoder and "
                  "a validating\n * decoder.", model.path)]
    enum_lines = []
    for m in model.messages:
        enum_lines.append(f"    {m.enum}, /* {m.type} v{m.version} -> {m.stage} */\n")
    top = (HEADER_TOP.replace("@LIMIT@", str(model.limit))
           .replace("@ENUM@", "".join(enum_lines))
           .replace("@COUNT@", str(len(model.messages))))
    out.append(top)
    for m in model.messages:
        out.append("\n")
        out.append("\n".join(block_comment(f"{m.type} v{m.version}, stage {m.stage}: {m.purpose}",
                                           "")) + "\n")
        out.append("typedef struct {\n")
        if not m.fields:
            out.append("    char unused_; /* no fields, but C forbids empty structs */\n")
        for f in m.fields:
            out.append("\n".join(block_comment(field_doc(f), "    ")) + "\n")
            if f.kind in C_TYPES:
                out.append(f"    {C_TYPES[f.kind]} {f.name};\n")
                if not f.required:
                    out.append(f"    bool has_{f.name};\n")
            elif f.kind == "str":
                out.append(f"    char *{f.name};\n")
            elif f.kind == "bin":
                out.append(f"    uint8_t *{f.name};\n    size_t {f.name}_len;\n")
            else:
                out.append(f"    char **{f.name};\n    size_t {f.name}_count;\n")
        out.append(f"}} wasl_msg_{m.ident}_t;\n")
    union = "".join(f"        wasl_msg_{m.ident}_t {m.ident};\n" for m in model.messages)
    out.append(HEADER_BOTTOM.replace("@UNION@", union))
    return "".join(out)


# ---- codec: source -------------------------------------------------------------------------

SOURCE_TOP = r"""
#include "wasl_proto.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

typedef enum {
    KIND_U64,
    KIND_I64,
    KIND_F64,
    KIND_BOOL,
    KIND_STR,
    KIND_BIN,
    KIND_STRLIST
} field_kind_t;

/* One field of one message. `offset` locates the value inside wasl_msg_t; `aux_offset` locates
 * its companion: the has_ flag of an optional number/bool, the _len of a bin, the _count of a
 * strlist (NO_AUX when there is none). `max` is bytes for str/bin and items for strlist;
 * `item_max` is bytes per strlist item. */
typedef struct {
    const char *name;
    size_t name_len;
    field_kind_t kind;
    bool required;
    size_t max;
    size_t item_max;
    size_t offset;
    size_t aux_offset;
} field_desc_t;

typedef struct {
    const char *name;
    int version;
    const char *stage;
    const field_desc_t *fields;
    size_t field_count;
} msg_desc_t;

#define NO_AUX SIZE_MAX
#define REQUIRED true
#define OPTIONAL false
#define AT(msg, member) offsetof(wasl_msg_t, u.msg.member)
"""

SOURCE_STATIC = r"""
/* Typed views of a field inside a message, located by a descriptor's offset. */
#define FIELD(msg, offset, type) (*(type *)(void *)((char *)(msg) + (offset)))
#define CFIELD(msg, offset, type) (*(type const *)(const void *)((const char *)(msg) + (offset)))

static bool type_valid(wasl_msg_type_t t)
{
    return t > WASL_MSG_NONE && t <= WASL_MSG_TYPE_COUNT;
}

/* Fills `err` (when not NULL) with a code, a field name ("" for none) and a formatted message. */
static void set_error(wasl_msg_error_t *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_error(wasl_msg_error_t *err, int code, const char *field, const char *fmt, ...)
{
    if (!err)
        return;
    err->code = code;
    snprintf(err->field, sizeof err->field, "%s", field ? field : "");
    va_list args;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, args);
    va_end(args);
}

static void clear_error(wasl_msg_error_t *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}

/* Copies at most 32 bytes of untrusted text into `out`, replacing anything that is not printable
 * ASCII with '?', so error messages never carry raw input into logs. */
static void sanitize(char *out, size_t out_size, const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 4 < out_size && i < 32; i++) {
        unsigned char c = (unsigned char)text[i];
        out[n++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (len > 32 && n + 4 < out_size) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* True when two byte ranges are equal; safe on empty ranges with NULL pointers. */
static bool bytes_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

/* True when s[0..len) is well-formed UTF-8 without NUL bytes: no overlong forms, no surrogates,
 * nothing above U+10FFFF, no truncated sequences. */
static bool utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t follow;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            follow = 1, cp = c & 0x1fu, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            follow = 2, cp = c & 0x0fu, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            follow = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return false; /* continuation byte, 0xc0/0xc1 (always overlong) or 0xf5.. */
        }
        if (len - i - 1 < follow)
            return false;
        for (size_t k = 1; k <= follow; k++) {
            unsigned char cc = s[i + k];
            if ((cc & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (cc & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += follow + 1;
    }
    return true;
}

/* ---- structural pre-scan ----------------------------------------------------------------- */

/* Reads an n-byte big-endian unsigned integer; the caller has checked the bytes exist. */
static uint64_t read_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Walks the msgpack bytes without allocating and without recursion. Returns WASL_MSG_OK when
 * they hold exactly one object, that object is a map, no container is nested deeper than
 * WASL_MSG_MAX_DEPTH and every declared length fits in the bytes that follow it (so msgpack-c,
 * which allocates container storage from the declared count, allocates at most a small multiple
 * of `len`). Otherwise returns the error code with `err` filled: ETOOBIG over the limit,
 * ETRUNCATED when the input ends early or a length overruns it, EGARBAGE for an invalid byte,
 * a non-map top level, too deep nesting or trailing bytes. */
static int prescan(const unsigned char *p, size_t len, wasl_msg_error_t *err)
{
    if (len > WASL_MSG_LIMIT) {
        set_error(err, WASL_MSG_ETOOBIG, "", "frame of %zu bytes is over the %d-byte limit", len,
                  WASL_MSG_LIMIT);
        return WASL_MSG_ETOOBIG;
    }
    if (len == 0) {
        set_error(err, WASL_MSG_ETRUNCATED, "", "empty frame");
        return WASL_MSG_ETRUNCATED;
    }
    unsigned char first = p[0];
    if (!((first >= 0x80 && first <= 0x8f) || first == 0xde || first == 0xdf)) {
        set_error(err, WASL_MSG_EGARBAGE, "", "frame is not a msgpack map (first byte 0x%02x)",
                  first);
        return WASL_MSG_EGARBAGE;
    }
    /* pending[d] = objects still to read inside the container opened at depth d (depth 0 is the
     * frame itself, holding one object). */
    uint64_t pending[WASL_MSG_MAX_DEPTH + 1];
    size_t depth = 0;
    size_t pos = 0;
    pending[0] = 1;
    for (;;) {
        if (pending[depth] == 0) {
            if (depth == 0)
                break;
            depth--;
            continue;
        }
        pending[depth]--;
        if (pos >= len)
            goto truncated;
        unsigned char b = p[pos++];
        size_t width = 0;      /* bytes of length/value that follow the type byte */
        uint64_t body = 0;     /* payload bytes after those */
        uint64_t children = 0; /* objects inside, for containers */
        bool container = false;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool: the byte is the whole object */
        } else if (b <= 0x8f) {
            container = true, children = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            container = true, children = b & 0x0fu;
        } else if (b <= 0xbf) {
            body = b & 0x1fu;
        } else {
            switch (b) {
            case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
            case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
                width = (b == 0xc4 || b == 0xd9) ? 1 : (b == 0xc5 || b == 0xda) ? 2 : 4;
                if (len - pos < width)
                    goto truncated;
                body = read_be(p + pos, width);
                break;
            case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, then a type byte */
                width = (size_t)1 << (b - 0xc7);
                if (len - pos < width)
                    goto truncated;
                body = read_be(p + pos, width) + 1;
                break;
            case 0xca: width = 4; break;                         /* float 32 */
            case 0xcb: width = 8; break;                         /* float 64 */
            case 0xcc: case 0xd0: width = 1; break;              /* (u)int 8 */
            case 0xcd: case 0xd1: width = 2; break;              /* (u)int 16 */
            case 0xce: case 0xd2: width = 4; break;              /* (u)int 32 */
            case 0xcf: case 0xd3: width = 8; break;              /* (u)int 64 */
            case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext 1..16 + type */
                body = ((uint64_t)1 << (b - 0xd4)) + 1;
                break;
            case 0xdc: case 0xdd: /* array 16/32 */
            case 0xde: case 0xdf: /* map 16/32 */
                width = (b == 0xdc || b == 0xde) ? 2 : 4;
                if (len - pos < width)
                    goto truncated;
                container = true;
                children = read_be(p + pos, width) * ((b >= 0xde) ? 2u : 1u);
                break;
            default: /* 0xc1 is never used */
                set_error(err, WASL_MSG_EGARBAGE, "", "invalid msgpack byte 0x%02x at offset %zu",
                          b, pos - 1);
                return WASL_MSG_EGARBAGE;
            }
        }
        if (len - pos < width)
            goto truncated;
        pos += width;
        if (container) {
            if (depth + 1 > WASL_MSG_MAX_DEPTH) {
                set_error(err, WASL_MSG_EGARBAGE, "", "nested deeper than %d at offset %zu",
                          WASL_MSG_MAX_DEPTH, pos - width - 1);
                return WASL_MSG_EGARBAGE;
            }
            if (children > len - pos) /* every object takes at least one byte */
                goto truncated;
            pending[++depth] = children;
        } else {
            if (body > len - pos)
                goto truncated;
            pos += (size_t)body;
        }
    }
    if (pos != len) {
        set_error(err, WASL_MSG_EGARBAGE, "", "%zu trailing bytes after the message", len - pos);
        return WASL_MSG_EGARBAGE;
    }
    return WASL_MSG_OK;
truncated:
    set_error(err, WASL_MSG_ETRUNCATED, "", "frame of %zu bytes ends inside an object", len);
    return WASL_MSG_ETRUNCATED;
}

/* ---- types ------------------------------------------------------------------------------- */

const char *wasl_msg_type_name(wasl_msg_type_t t)
{
    return type_valid(t) ? msg_descs[t].name : "unknown";
}

int wasl_msg_type_version(wasl_msg_type_t t)
{
    return type_valid(t) ? msg_descs[t].version : 0;
}

const char *wasl_msg_type_stage(wasl_msg_type_t t)
{
    return type_valid(t) ? msg_descs[t].stage : "unknown";
}

const char *wasl_msg_strerror(int code)
{
    switch (code) {
    case WASL_MSG_OK: return "ok";
    case WASL_MSG_ETRUNCATED: return "message truncated";
    case WASL_MSG_EGARBAGE: return "malformed message";
    case WASL_MSG_ETOOBIG: return "message or field too big";
    case WASL_MSG_EUNKNOWN: return "unknown message type or version";
    case WASL_MSG_EMISSING: return "required field missing";
    case WASL_MSG_ETYPE: return "field has the wrong type or invalid text";
    case WASL_MSG_ENOMEM: return "out of memory";
    case WASL_MSG_ESEND: return "socket send failed";
    default: return "unknown error";
    }
}

wasl_msg_t *wasl_msg_new(wasl_msg_type_t type)
{
    if (!type_valid(type))
        return NULL;
    wasl_msg_t *self = calloc(1, sizeof *self);
    if (self)
        self->type = type;
    return self;
}

void wasl_msg_destroy(wasl_msg_t **self_p)
{
    assert(self_p);
    wasl_msg_t *self = *self_p;
    if (!self)
        return;
    if (type_valid(self->type)) {
        const msg_desc_t *desc = &msg_descs[self->type];
        for (size_t i = 0; i < desc->field_count; i++) {
            const field_desc_t *f = &desc->fields[i];
            if (f->kind == KIND_STR) {
                free(FIELD(self, f->offset, char *));
            } else if (f->kind == KIND_BIN) {
                free(FIELD(self, f->offset, uint8_t *));
            } else if (f->kind == KIND_STRLIST) {
                char **items = FIELD(self, f->offset, char **);
                size_t count = FIELD(self, f->aux_offset, size_t);
                for (size_t k = 0; items && k < count; k++)
                    free(items[k]);
                free(items);
            }
        }
    }
    free(self);
    *self_p = NULL;
}

/* ---- decoding ---------------------------------------------------------------------------- */

static const char *msgpack_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "positive int";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "negative int";
    case MSGPACK_OBJECT_FLOAT32: return "float32";
    case MSGPACK_OBJECT_FLOAT64: return "float64";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_EXT: return "ext";
    default: return "?";
    }
}

static const char *kind_name(field_kind_t kind)
{
    static const char *const names[] = {"u64", "i64", "f64", "bool", "str", "bin", "strlist"};
    return names[kind];
}

/* Copies a validated msgpack str into a new NUL-terminated string; NULL when out of memory. */
static char *copy_str(const msgpack_object_str *s)
{
    char *copy = malloc((size_t)s->size + 1);
    if (!copy)
        return NULL;
    if (s->size)
        memcpy(copy, s->ptr, s->size);
    copy[s->size] = '\0';
    return copy;
}

/* Checks one str value against a field's byte limit and UTF-8. Returns 0 or -1 with `err` set. */
static int check_str(const field_desc_t *f, const msgpack_object_str *s, size_t max,
                     wasl_msg_error_t *err)
{
    if (s->size > max) {
        set_error(err, WASL_MSG_ETOOBIG, f->name, "%s: %u bytes, max %zu", f->name,
                  (unsigned)s->size, max);
        return -1;
    }
    if (!utf8_valid(s->ptr, s->size)) {
        set_error(err, WASL_MSG_ETYPE, f->name, "%s: not valid UTF-8 text", f->name);
        return -1;
    }
    return 0;
}

/* Stores value `v` into field `f` of `msg`. Returns 0, or -1 with `err` set. Whatever it
 * allocates is attached to `msg` at once, so the caller's wasl_msg_destroy() frees it on any
 * later error. */
static int decode_field(wasl_msg_t *msg, const field_desc_t *f, const msgpack_object *v,
                        wasl_msg_error_t *err)
{
    switch (f->kind) {
    case KIND_U64:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            goto wrong_type;
        FIELD(msg, f->offset, uint64_t) = v->via.u64;
        break;
    case KIND_I64:
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            if (v->via.u64 > (uint64_t)INT64_MAX) {
                set_error(err, WASL_MSG_ETYPE, f->name, "%s: integer out of i64 range", f->name);
                return -1;
            }
            FIELD(msg, f->offset, int64_t) = (int64_t)v->via.u64;
        } else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            FIELD(msg, f->offset, int64_t) = v->via.i64;
        } else {
            goto wrong_type;
        }
        break;
    case KIND_F64:
        if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            FIELD(msg, f->offset, double) = v->via.f64;
        else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            FIELD(msg, f->offset, double) = (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            FIELD(msg, f->offset, double) = (double)v->via.i64;
        else
            goto wrong_type;
        break;
    case KIND_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            goto wrong_type;
        FIELD(msg, f->offset, bool) = v->via.boolean;
        break;
    case KIND_STR: {
        if (v->type != MSGPACK_OBJECT_STR)
            goto wrong_type;
        if (check_str(f, &v->via.str, f->max, err) != 0)
            return -1;
        char *copy = copy_str(&v->via.str);
        if (!copy)
            goto no_memory;
        FIELD(msg, f->offset, char *) = copy;
        break;
    }
    case KIND_BIN: {
        if (v->type != MSGPACK_OBJECT_BIN)
            goto wrong_type;
        size_t size = v->via.bin.size;
        if (size > f->max) {
            set_error(err, WASL_MSG_ETOOBIG, f->name, "%s: %zu bytes, max %zu", f->name, size,
                      f->max);
            return -1;
        }
        uint8_t *copy = malloc(size ? size : 1); /* present-but-empty stays non-NULL */
        if (!copy)
            goto no_memory;
        if (size)
            memcpy(copy, v->via.bin.ptr, size);
        FIELD(msg, f->offset, uint8_t *) = copy;
        FIELD(msg, f->aux_offset, size_t) = size;
        break;
    }
    case KIND_STRLIST: {
        if (v->type != MSGPACK_OBJECT_ARRAY)
            goto wrong_type;
        size_t count = v->via.array.size;
        if (count > f->max) {
            set_error(err, WASL_MSG_ETOOBIG, f->name, "%s: %zu items, max %zu", f->name, count,
                      f->max);
            return -1;
        }
        char **items = calloc(count + 1, sizeof *items);
        if (!items)
            goto no_memory;
        FIELD(msg, f->offset, char **) = items;
        FIELD(msg, f->aux_offset, size_t) = 0; /* grows with each item so destroy frees them */
        for (size_t i = 0; i < count; i++) {
            const msgpack_object *item = &v->via.array.ptr[i];
            if (item->type != MSGPACK_OBJECT_STR) {
                set_error(err, WASL_MSG_ETYPE, f->name, "%s: item %zu is %s, expected str",
                          f->name, i, msgpack_type_name(item->type));
                return -1;
            }
            if (check_str(f, &item->via.str, f->item_max, err) != 0)
                return -1;
            items[i] = copy_str(&item->via.str);
            if (!items[i])
                goto no_memory;
            FIELD(msg, f->aux_offset, size_t) = i + 1;
        }
        break;
    }
    }
    if (f->aux_offset != NO_AUX && f->kind != KIND_BIN && f->kind != KIND_STRLIST)
        FIELD(msg, f->aux_offset, bool) = true;
    return 0;
wrong_type:
    set_error(err, WASL_MSG_ETYPE, f->name, "%s: got %s, expected %s", f->name,
              msgpack_type_name(v->type), kind_name(f->kind));
    return -1;
no_memory:
    set_error(err, WASL_MSG_ENOMEM, f->name, "%s: out of memory", f->name);
    return -1;
}

static int compare_keys(const void *a, const void *b)
{
    const msgpack_object_str *x = *(const msgpack_object_str *const *)a;
    const msgpack_object_str *y = *(const msgpack_object_str *const *)b;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return x->size ? memcmp(x->ptr, y->ptr, x->size) : 0;
}

/* Returns 0 when the map's (string) keys are distinct, else -1 with `err` set. Sorting keeps
 * this O(n log n) for maps with many thousands of keys. */
static int check_duplicate_keys(const msgpack_object_map *map, wasl_msg_error_t *err)
{
    if (map->size < 2)
        return 0;
    const msgpack_object_str **keys = malloc(map->size * sizeof *keys);
    if (!keys) {
        set_error(err, WASL_MSG_ENOMEM, "", "out of memory checking keys");
        return -1;
    }
    for (uint32_t i = 0; i < map->size; i++)
        keys[i] = &map->ptr[i].key.via.str;
    qsort(keys, map->size, sizeof *keys, compare_keys);
    int rc = 0;
    for (uint32_t i = 1; i < map->size && rc == 0; i++) {
        if (compare_keys(&keys[i - 1], &keys[i]) == 0) {
            char shown[48];
            sanitize(shown, sizeof shown, keys[i]->ptr, keys[i]->size);
            set_error(err, WASL_MSG_EGARBAGE, "", "duplicate key '%s'", shown);
            rc = -1;
        }
    }
    free(keys);
    return rc;
}

static bool key_is(const msgpack_object *key, const char *name, size_t name_len)
{
    return bytes_equal(key->via.str.ptr, key->via.str.size, name, name_len);
}

/* Finds the message type for a "type" string and "v" number. Returns it, or WASL_MSG_NONE with
 * `err` set (EUNKNOWN on "type" when no type has that name, on "v" when the version differs). */
static wasl_msg_type_t lookup_type(const msgpack_object_str *name, uint64_t version,
                                   wasl_msg_error_t *err)
{
    for (int t = 1; t <= WASL_MSG_TYPE_COUNT; t++) {
        const msg_desc_t *desc = &msg_descs[t];
        if (!bytes_equal(name->ptr, name->size, desc->name, strlen(desc->name)))
            continue;
        if (version == (uint64_t)desc->version)
            return (wasl_msg_type_t)t;
        set_error(err, WASL_MSG_EUNKNOWN, "v", "%s v%llu is unknown (this build speaks v%d)",
                  desc->name, (unsigned long long)version, desc->version);
        return WASL_MSG_NONE;
    }
    char shown[48];
    sanitize(shown, sizeof shown, name->ptr, name->size);
    set_error(err, WASL_MSG_EUNKNOWN, "type", "unknown message type '%s'", shown);
    return WASL_MSG_NONE;
}

/* Turns the unpacked top-level object into a message. Returns it (owned by the caller) or NULL
 * with `err` set. */
static wasl_msg_t *decode_object(const msgpack_object *root, wasl_msg_error_t *err)
{
    wasl_msg_t *msg = NULL;
    if (root->type != MSGPACK_OBJECT_MAP) {
        set_error(err, WASL_MSG_EGARBAGE, "", "top level is %s, expected map",
                  msgpack_type_name(root->type));
        goto malformed;
    }
    const msgpack_object_map *map = &root->via.map;
    const msgpack_object *type_value = NULL;
    const msgpack_object *version_value = NULL;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *key = &map->ptr[i].key;
        if (key->type != MSGPACK_OBJECT_STR) {
            set_error(err, WASL_MSG_EGARBAGE, "", "key %u is %s, expected str", (unsigned)i,
                      msgpack_type_name(key->type));
            goto malformed;
        }
        if (key_is(key, "type", 4))
            type_value = &map->ptr[i].val;
        else if (key_is(key, "v", 1))
            version_value = &map->ptr[i].val;
    }
    if (check_duplicate_keys(map, err) != 0)
        goto malformed;
    if (!type_value) {
        set_error(err, WASL_MSG_EMISSING, "type", "no \"type\" field");
        goto malformed;
    }
    if (type_value->type != MSGPACK_OBJECT_STR) {
        set_error(err, WASL_MSG_ETYPE, "type", "type: got %s, expected str",
                  msgpack_type_name(type_value->type));
        goto malformed;
    }
    if (!version_value) {
        set_error(err, WASL_MSG_EMISSING, "v", "no \"v\" field");
        goto malformed;
    }
    if (version_value->type != MSGPACK_OBJECT_POSITIVE_INTEGER || version_value->via.u64 == 0) {
        set_error(err, WASL_MSG_ETYPE, "v", "v: expected a positive integer");
        goto malformed;
    }
    wasl_msg_type_t type = lookup_type(&type_value->via.str, version_value->via.u64, err);
    if (type == WASL_MSG_NONE)
        goto malformed;
    msg = wasl_msg_new(type);
    if (!msg) {
        set_error(err, WASL_MSG_ENOMEM, "", "out of memory");
        goto malformed;
    }
    const msg_desc_t *desc = &msg_descs[type];
    bool seen[MAX_FIELDS] = {false};
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *key = &map->ptr[i].key;
        const msgpack_object *value = &map->ptr[i].val;
        for (size_t k = 0; k < desc->field_count; k++) {
            const field_desc_t *f = &desc->fields[k];
            if (!key_is(key, f->name, f->name_len))
                continue;
            if (value->type != MSGPACK_OBJECT_NIL) { /* nil means absent */
                if (decode_field(msg, f, value, err) != 0)
                    goto malformed;
                seen[k] = true;
            }
            break;
        }
        /* keys that match no field (including "type" and "v") are skipped */
    }
    for (size_t k = 0; k < desc->field_count; k++) {
        if (desc->fields[k].required && !seen[k]) {
            set_error(err, WASL_MSG_EMISSING, desc->fields[k].name, "%s: required by %s v%d",
                      desc->fields[k].name, desc->name, desc->version);
            goto malformed;
        }
    }
    return msg;
malformed:
    wasl_msg_destroy(&msg);
    return NULL;
}

wasl_msg_t *wasl_msg_decode(const void *data, size_t len, wasl_msg_error_t *err)
{
    assert(data || len == 0);
    clear_error(err);
    if (prescan(data, len, err) != WASL_MSG_OK)
        return NULL;
    msgpack_unpacked unpacked;
    msgpack_unpacked_init(&unpacked);
    size_t offset = 0;
    wasl_msg_t *msg = NULL;
    switch (msgpack_unpack_next(&unpacked, data, len, &offset)) {
    case MSGPACK_UNPACK_SUCCESS:
        if (offset != len)
            set_error(err, WASL_MSG_EGARBAGE, "", "%zu trailing bytes", len - offset);
        else
            msg = decode_object(&unpacked.data, err);
        break;
    case MSGPACK_UNPACK_EXTRA_BYTES:
        set_error(err, WASL_MSG_EGARBAGE, "", "trailing bytes after the message");
        break;
    case MSGPACK_UNPACK_CONTINUE:
        set_error(err, WASL_MSG_ETRUNCATED, "", "message truncated");
        break;
    case MSGPACK_UNPACK_NOMEM_ERROR:
        set_error(err, WASL_MSG_ENOMEM, "", "out of memory unpacking");
        break;
    default:
        set_error(err, WASL_MSG_EGARBAGE, "", "not msgpack");
        break;
    }
    msgpack_unpacked_destroy(&unpacked);
    return msg;
}

/* ---- encoding ---------------------------------------------------------------------------- */

/* Checks that field `f` of `msg` can be encoded. Returns 1 when present, 0 when absent (and
 * optional), -1 with `err` set when it cannot be encoded. */
static int check_field(const wasl_msg_t *msg, const field_desc_t *f, wasl_msg_error_t *err)
{
    switch (f->kind) {
    case KIND_U64:
    case KIND_I64:
    case KIND_F64:
    case KIND_BOOL:
        return f->aux_offset == NO_AUX || CFIELD(msg, f->aux_offset, bool);
    case KIND_STR: {
        const char *s = CFIELD(msg, f->offset, char *);
        if (!s)
            break;
        size_t len = strnlen(s, f->max + 1);
        if (len > f->max) {
            set_error(err, WASL_MSG_ETOOBIG, f->name, "%s: over %zu bytes", f->name, f->max);
            return -1;
        }
        if (!utf8_valid(s, len)) {
            set_error(err, WASL_MSG_ETYPE, f->name, "%s: not valid UTF-8 text", f->name);
            return -1;
        }
        return 1;
    }
    case KIND_BIN: {
        size_t len = CFIELD(msg, f->aux_offset, size_t);
        if (!CFIELD(msg, f->offset, uint8_t *)) {
            if (len) {
                set_error(err, WASL_MSG_ETYPE, f->name, "%s: NULL with length %zu", f->name, len);
                return -1;
            }
            break;
        }
        if (len > f->max) {
            set_error(err, WASL_MSG_ETOOBIG, f->name, "%s: %zu bytes, max %zu", f->name, len,
                      f->max);
            return -1;
        }
        return 1;
    }
    case KIND_STRLIST: {
        char *const *items = CFIELD(msg, f->offset, char **);
        size_t count = CFIELD(msg, f->aux_offset, size_t);
        if (!items) {
            if (count) {
                set_error(err, WASL_MSG_ETYPE, f->name, "%s: NULL with %zu items", f->name,
                          count);
                return -1;
            }
            break;
        }
        if (count > f->max) {
            set_error(err, WASL_MSG_ETOOBIG, f->name, "%s: %zu items, max %zu", f->name, count,
                      f->max);
            return -1;
        }
        for (size_t i = 0; i < count; i++) {
            if (!items[i]) {
                set_error(err, WASL_MSG_EMISSING, f->name, "%s: item %zu is NULL", f->name, i);
                return -1;
            }
            size_t len = strnlen(items[i], f->item_max + 1);
            if (len > f->item_max) {
                set_error(err, WASL_MSG_ETOOBIG, f->name, "%s: item %zu over %zu bytes",
                          f->name, i, f->item_max);
                return -1;
            }
            if (!utf8_valid(items[i], len)) {
                set_error(err, WASL_MSG_ETYPE, f->name, "%s: item %zu is not valid UTF-8",
                          f->name, i);
                return -1;
            }
        }
        return 1;
    }
    }
    if (f->required) {
        set_error(err, WASL_MSG_EMISSING, f->name, "%s: required", f->name);
        return -1;
    }
    return 0;
}

/* msgpack-c's pack calls return 0 on success; these return true on success. */
static bool pack_text(msgpack_packer *pk, const char *s, size_t len)
{
    return msgpack_pack_str(pk, len) == 0 && msgpack_pack_str_body(pk, s, len) == 0;
}

static bool pack_field(msgpack_packer *pk, const wasl_msg_t *msg, const field_desc_t *f)
{
    if (!pack_text(pk, f->name, f->name_len))
        return false;
    switch (f->kind) {
    case KIND_U64:
        return msgpack_pack_uint64(pk, CFIELD(msg, f->offset, uint64_t)) == 0;
    case KIND_I64:
        return msgpack_pack_int64(pk, CFIELD(msg, f->offset, int64_t)) == 0;
    case KIND_F64:
        return msgpack_pack_double(pk, CFIELD(msg, f->offset, double)) == 0;
    case KIND_BOOL:
        return (CFIELD(msg, f->offset, bool) ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) == 0;
    case KIND_STR: {
        const char *s = CFIELD(msg, f->offset, char *);
        return pack_text(pk, s, strlen(s));
    }
    case KIND_BIN: {
        size_t len = CFIELD(msg, f->aux_offset, size_t);
        const uint8_t *bytes = CFIELD(msg, f->offset, uint8_t *);
        return msgpack_pack_bin(pk, len) == 0
               && (len == 0 || msgpack_pack_bin_body(pk, bytes, len) == 0);
    }
    case KIND_STRLIST: {
        char *const *items = CFIELD(msg, f->offset, char **);
        size_t count = CFIELD(msg, f->aux_offset, size_t);
        if (msgpack_pack_array(pk, count) != 0)
            return false;
        for (size_t i = 0; i < count; i++)
            if (!pack_text(pk, items[i], strlen(items[i])))
                return false;
        return true;
    }
    }
    return false;
}

int wasl_msg_encode(const wasl_msg_t *msg, char **data, size_t *len, wasl_msg_error_t *err)
{
    assert(msg && data && len);
    *data = NULL;
    *len = 0;
    clear_error(err);
    if (!type_valid(msg->type)) {
        set_error(err, WASL_MSG_EUNKNOWN, "type", "cannot encode message type %d", (int)msg->type);
        return -1;
    }
    const msg_desc_t *desc = &msg_descs[msg->type];
    size_t present = 0;
    for (size_t i = 0; i < desc->field_count; i++) {
        int rc = check_field(msg, &desc->fields[i], err);
        if (rc < 0)
            return -1;
        present += (size_t)rc;
    }
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    bool ok = msgpack_pack_map(&pk, 2 + present) == 0 && pack_text(&pk, "type", 4)
              && pack_text(&pk, desc->name, strlen(desc->name)) && pack_text(&pk, "v", 1)
              && msgpack_pack_int(&pk, desc->version) == 0;
    for (size_t i = 0; ok && i < desc->field_count; i++) {
        const field_desc_t *f = &desc->fields[i];
        if (check_field(msg, f, NULL) == 1)
            ok = pack_field(&pk, msg, f);
    }
    if (!ok) {
        msgpack_sbuffer_destroy(&sbuf);
        set_error(err, WASL_MSG_ENOMEM, "", "out of memory encoding %s", desc->name);
        return -1;
    }
    if (sbuf.size > WASL_MSG_LIMIT) {
        set_error(err, WASL_MSG_ETOOBIG, "", "%s encodes to %zu bytes, over the %d-byte limit",
                  desc->name, sbuf.size, WASL_MSG_LIMIT);
        msgpack_sbuffer_destroy(&sbuf);
        return -1;
    }
    *len = sbuf.size;
    *data = msgpack_sbuffer_release(&sbuf); /* ownership passes to the caller */
    return 0;
}

/* ---- CZMQ convenience -------------------------------------------------------------------- */

int wasl_msg_send(const wasl_msg_t *msg, zsock_t *sock, wasl_msg_error_t *err)
{
    assert(sock);
    char *data = NULL;
    size_t len = 0;
    if (wasl_msg_encode(msg, &data, &len, err) != 0)
        return -1;
    int rc = zmq_send(zsock_resolve(sock), data, len, 0); /* libzmq copies the bytes */
    int saved_errno = errno;
    free(data);
    if (rc < 0) {
        set_error(err, WASL_MSG_ESEND, "", "send failed: %s", zmq_strerror(saved_errno));
        errno = saved_errno;
        return -1;
    }
    return 0;
}

wasl_msg_t *wasl_msg_recv_frame(zframe_t *frame, wasl_msg_error_t *err)
{
    if (!frame) {
        clear_error(err);
        set_error(err, WASL_MSG_ETRUNCATED, "", "no frame");
        return NULL;
    }
    return wasl_msg_decode(zframe_data(frame), zframe_size(frame), err);
}
"""


def gen_source(model: Model) -> str:
    out = [banner("wasl_proto.c", "The Wasl message codec: field tables from the model, and one "
                  "table-driven\n * encoder and validating decoder.", model.path)]
    out.append(SOURCE_TOP)
    kind_enum = {"u64": "KIND_U64", "i64": "KIND_I64", "f64": "KIND_F64", "bool": "KIND_BOOL",
                 "str": "KIND_STR", "bin": "KIND_BIN", "strlist": "KIND_STRLIST"}
    for m in model.messages:
        if not m.fields:
            continue
        out.append(f"\nstatic const field_desc_t {m.ident}_fields[] = {{\n")
        for f in m.fields:
            members = c_members(f)
            aux = f"AT({m.ident}, {members[1]})" if len(members) > 1 else "NO_AUX"
            out.append(f'    {{"{f.name}", {len(f.name)}, {kind_enum[f.kind]}, '
                       f'{"REQUIRED" if f.required else "OPTIONAL"}, {f.max or 0}, {f.item or 0},\n'
                       f"     AT({m.ident}, {f.name}), {aux}}},\n")
        out.append("};\n")
    out.append("\nstatic const msg_desc_t msg_descs[WASL_MSG_TYPE_COUNT + 1] = {\n")
    out.append('    [WASL_MSG_NONE] = {"none", 0, "none", NULL, 0},\n')
    for m in model.messages:
        fields = f"{m.ident}_fields" if m.fields else "NULL"
        out.append(f'    [{m.enum}] = {{"{m.type}", {m.version}, "{m.stage}", {fields}, '
                   f"{len(m.fields)}}},\n")
    out.append("};\n")
    max_fields = max([len(m.fields) for m in model.messages] + [1])
    out.append(f"\n/* Most fields in any one message. */\n#define MAX_FIELDS {max_fields}\n")
    out.append(SOURCE_STATIC)
    return "".join(out)


def run_codec(model_path: str, outdir: str) -> None:
    model = parse_model(model_path)
    write_outputs(outdir, {"wasl_proto.h": gen_header(model), "wasl_proto.c": gen_source(model)})


# ---- migrations ----------------------------------------------------------------------------

LITERAL_CHARS_MAX = 3000  # per source line; C11 only promises 4095-character literals


def c_escape_byte(b: int) -> str:
    if b == 0x0A:
        return "\\n"
    if b == 0x09:
        return "\\t"
    if b == 0x0D:
        return "\\r"
    if b == 0x22:
        return '\\"'
    if b == 0x5C:
        return "\\\\"
    if b == 0x3F:
        return "\\?"  # no accidental trigraphs (??=, ??/ ...)
    if 0x20 <= b < 0x7F:
        return chr(b)
    return f"\\{b:03o}"  # always three octal digits, so the next character cannot join it


def c_string_lines(data: bytes, indent: str) -> list[str]:
    """The bytes as adjacent C string literals: one per source line, each under the limit."""
    lines = []
    current: list[str] = []
    size = 0
    for b in data:
        piece = c_escape_byte(b)
        if size + len(piece) > LITERAL_CHARS_MAX:
            lines.append(indent + '"' + "".join(current) + '"')
            current, size = [], 0
        current.append(piece)
        size += len(piece)
        if b == 0x0A:
            lines.append(indent + '"' + "".join(current) + '"')
            current, size = [], 0
    if current or not lines:
        lines.append(indent + '"' + "".join(current) + '"')
    return lines


def read_sql_file(path: str) -> bytes:
    """The bytes of an SQL file to embed in C: readable, no NUL (it would cut the embedded SQL
    short), UTF-8."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise GenError(f"{path}: cannot read: {exc}") from None
    if b"\0" in data:
        raise GenError(f"{path}: contains a NUL byte (it would cut the embedded SQL short)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GenError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return data

def load_migrations(directory: str) -> list[tuple[int, str, str, bytes]]:
    """(version, name, path, bytes) for every *.sql file, sorted by version."""
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise GenError(f"{directory}: cannot list migrations: {exc}") from None
    found: dict[int, str] = {}
    migrations = []
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(".") or not name.endswith(".sql") or not os.path.isfile(path):
            continue
        m = MIGRATION_RE.match(name)
        if not m:
            raise GenError(f"{path}: bad migration file name (want NNNN_name.sql: four digits, "
                           "an underscore, then [a-z0-9_])")
        version = int(m.group(1))
        if version < 1:
            raise GenError(f"{path}: migration versions start at 0001")
        if version in found:
            raise GenError(f"{path}: duplicate migration version {version:04d} "
                           f"(also {found[version]})")
        found[version] = path
        migrations.append((version, m.group(2), path, read_sql_file(path)))
    migrations.sort(key=lambda item: item[0])
    return migrations


MIGRATIONS_HEADER = r"""
#ifndef WASL_MIGRATIONS_H
#define WASL_MIGRATIONS_H

#include <stddef.h>

/* One schema migration: proto/migrations/NNNN_name.sql. `sha256` is the lowercase hex digest
 * of the file's bytes, so an applied migration whose file later changed can be detected. */
typedef struct {
    int version;
    const char *name;
    const char *sql;
    const char *sha256;
} wasl_migration_t;

/* Every migration in ascending version order: wasl_migrations[0 .. wasl_migrations_n - 1]. One
 * more all-zero entry follows as a sentinel (so the array is never empty). */
extern const wasl_migration_t wasl_migrations[];
extern const size_t wasl_migrations_n;

/* proto/grants.sql: what each PostgreSQL role may do, applied after the migrations on every
 * run (idempotent, not versioned). "" when the generator was given no grants file. */
extern const char wasl_grants_sql[];

#endif
"""


def load_grants(path: str | None) -> bytes:
    """The bytes of the grants file (b"" without one), checked like a migration."""
    return b"" if path is None else read_sql_file(path)


def gen_migrations(directory: str, migrations: list[tuple[int, str, str, bytes]],
                   grants: bytes = b"") -> dict:
    source = directory.rstrip("/") or directory
    header = banner("wasl_migrations.h", "The SQL schema migrations, embedded in the binary.",
                    source) + MIGRATIONS_HEADER
    out = [banner("wasl_migrations.c", "The SQL schema migrations, embedded in the binary.",
                  source)]
    out.append('\n#include "wasl_migrations.h"\n\n')
    out.append("/* Adjacent literals keep each source line short; the joined string may still\n"
               " * exceed the 4095 characters ISO C requires compilers to support, which GCC and\n"
               " * Clang handle but -Woverlength-strings (part of -pedantic) reports. */\n")
    out.append('#pragma GCC diagnostic ignored "-Woverlength-strings"\n')
    for version, name, _path, data in migrations:
        out.append(f"\n/* {version:04d}_{name}.sql */\n")
        out.append(f"static const char sql_{version:04d}[] =\n")
        out.append("\n".join(c_string_lines(data, "    ")) + ";\n")
    out.append("\nconst wasl_migration_t wasl_migrations[] = {\n")
    for version, name, _path, data in migrations:
        digest = hashlib.sha256(data).hexdigest()
        out.append(f'    {{{version}, "{name}", sql_{version:04d},\n'
                   f'     "{digest}"}},\n')
    out.append("    {0, NULL, NULL, NULL}, /* sentinel */\n};\n")
    out.append(f"\nconst size_t wasl_migrations_n = {len(migrations)};\n")
    out.append("\n/* grants.sql */\nconst char wasl_grants_sql[] =\n")
    out.append("\n".join(c_string_lines(grants, "    ")) + ";\n")
    return {"wasl_migrations.h": header, "wasl_migrations.c": "".join(out)}


def run_migrations(directory: str, outdir: str, grants: str | None = None) -> None:
    write_outputs(outdir, gen_migrations(directory, load_migrations(directory),
                                         load_grants(grants)))


# ---- main ----------------------------------------------------------------------------------

USAGE = """usage: gen.py codec MODEL OUTDIR        e.g. gen.py codec proto/wasl.proto build/gen
       gen.py migrations DIR OUTDIR [GRANTS]
                                       e.g. gen.py migrations proto/migrations build/gen \\
                                            proto/grants.sql"""


def main(argv: list[str]) -> int:
    if not (len(argv) == 4 or (len(argv) == 5 and argv[1] == "migrations")) or \
            argv[1] not in ("codec", "migrations"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if argv[1] == "codec":
            run_codec(argv[2], argv[3])
        else:
            run_migrations(argv[2], argv[3], argv[4] if len(argv) == 5 else None)
    except GenError as exc:
        print(exc, file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"gen.py: cannot write output: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
