/* wasl_convert — readable UTF-8 text from what mailers send: any declared (or mislabelled)
 * charset to valid UTF-8, HTML to text, RFC 3676 format=flowed undone, one-line header fields,
 * and the final clean-up of a body. Pure functions, no I/O, thread-safe. They work on GLib's
 * GString because their caller, the MIME walker in services/intake/email.c, reads parts through
 * GMime into GStrings: no copy between the two. Invalid UTF-8 follows wasl_text's policy (one
 * U+FFFD per maximal ill-formed subpart). */
#ifndef WASL_CONVERT_H
#define WASL_CONVERT_H

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>

/* Appends raw[0..len), in `charset` (the MIME or <meta> name; NULL when undeclared), to out as
 * valid UTF-8. What people's mail really carries decides the rules:
 * - UTF-8 declared: kept, ill-formed sequences replaced by U+FFFD.
 * - undeclared, us-ascii, unknown-8bit, ISO-8859-1 or windows-1252, but the bytes are valid
 *   UTF-8: kept as UTF-8 (the usual mislabelling).
 * - undeclared or us-ascii with 8-bit bytes: windows-1256 (Arabic Windows is the likely writer).
 * - a charset iconv does not know: UTF-8 if valid, else windows-1256, else ISO-8859-1.
 * A byte iconv rejects becomes U+FFFD; a hostile charset name (over 40 bytes, or characters no
 * charset name has) counts as undeclared. NUL bytes are kept (clean_body drops them). Uses
 * GMime's charset table: call after g_mime_init() (intake_email_init()). */
void wasl_convert_append_utf8(GString *out, const char *raw, size_t len, const char *charset);

/* The charset an HTML document names in a <meta ... charset=...> within its first 2048 bytes,
 * for a part whose MIME header names none; a new string (g_free) or NULL. */
char *wasl_convert_html_charset(const char *s, size_t n);

/* CRLF and lone CR become LF, in place. */
void wasl_convert_newlines(GString *s);

/* RFC 3676 format=flowed undone: a line ending in a space continues on the next line (that
 * space dropped under delsp=yes); one leading space is stuffing and goes; the signature
 * separator "-- " stays a line of its own. `in` has LF line ends. Returns a new GString. */
GString *wasl_convert_unflow(const GString *in, bool delsp);

/* Readable text from UTF-8 HTML s[0..n): tags stripped; comments, <script>, <style> and
 * <title> dropped with their content; block elements and <br> become line breaks, <li> a "- "
 * item, cells a space; character references decoded (numeric ones and the common named ones;
 * an invalid code point becomes U+FFFD); white space collapsed as a browser would. Linear time
 * on any input, broken tags and unclosed quotes included. Returns a new GString. */
GString *wasl_convert_html_to_text(const char *s, size_t n);

/* The final clean-up of a body (valid UTF-8 in): C0/C1 controls other than tab and newline
 * removed, no-break spaces made plain, trailing white space of each line dropped, at most one
 * blank line in a row, none at either end. Returns a new GString. */
GString *wasl_convert_clean_body(const GString *s);

/* A one-line field (a subject, a display name, a file name) from decoded header text: valid
 * UTF-8, every run of white space or control characters (a CR/LF smuggled in an encoded word,
 * U+2028/U+2029) collapsed to one space, trimmed. `in` may be NULL (gives ""). Returns a new
 * string (malloc, free it); NULL only on allocation failure. */
char *wasl_convert_one_line(const char *in);

#endif
