/*
 * split_scan.c - the bodies of the functions a C file defines at its top level, found by a
 * lexical scan, and a range of them blanked: what bench/split_parse.py needs to parse one big
 * file in two processes, each with the other's half of the bodies blanked.
 *
 * A body is a '{' at brace depth 0 that follows a ')' (the parameter list, or an attribute's),
 * to its matching '}'.  Comments, string and character literals and preprocessor directive
 * lines (with their continuations, and a comment begun on one) are skipped; each branch of an
 * #if starts from the depth its #if had, and after #endif the scan goes on from the depth the
 * first branch ended at; code under `#ifdef __cplusplus` (or `#if defined(__cplusplus)`) is
 * skipped as not C.  So a body made by a macro is not found, and a span in an inactive #if
 * branch may be found: the caller checks each span against the parse.
 *
 * Blanking a body replaces every character between its braces with a space, but newlines and
 * the directive lines inside it: every place in the file stays where it was, and every macro is
 * defined where it was.
 */
#include <stddef.h>
#include <string.h>

#define MAX_IF 512

/* The end of the logical line at i: the offset of the newline that ends it (backslash
 * continuations included), or n. */
static size_t line_end(const char *s, size_t n, size_t i)
{
    for (; i < n; i++)
        if (s[i] == '\n' && !(i > 0 && s[i - 1] == '\\'))
            return i;
    return n;
}

/* i at the opening quote of a literal: the offset after it (a literal ends at its quote, or at
 * a newline no backslash continues). */
static size_t literal_end(const char *s, size_t n, size_t i)
{
    char q = s[i++];
    while (i < n && s[i] != q && s[i] != '\n')
        i += s[i] == '\\' ? 2 : 1;
    return i < n && s[i] == q ? i + 1 : i;
}

/* i at "/" "*" or "//": the offset after the comment (a line comment's newline not included). */
static size_t comment_end(const char *s, size_t n, size_t i)
{
    if (s[i + 1] == '*') {
        for (i += 2; i + 1 < n; i++)
            if (s[i] == '*' && s[i + 1] == '/')
                return i + 2;
        return n;
    }
    return line_end(s, n, i);
}

static int is_comment(const char *s, size_t n, size_t i)
{
    return s[i] == '/' && i + 1 < n && (s[i + 1] == '*' || s[i + 1] == '/');
}

/* i at a directive's '#': the end of its line, past a block comment begun on it. */
static size_t directive_end(const char *s, size_t n, size_t i)
{
    size_t end = line_end(s, n, i);
    while (i < end) {
        if (s[i] == '"' || s[i] == '\'') {
            i = literal_end(s, n, i);
        } else if (is_comment(s, n, i)) {
            size_t after = comment_end(s, n, i);
            if (after >= end) {
                if (s[i + 1] == '/')
                    return end;
                end = line_end(s, n, after);
            }
            i = after;
        } else {
            i++;
        }
    }
    return end;
}

/* The directive's word (if, ifdef, else ...) at i, a '#': its start and length in *word, *len. */
static void directive_word(const char *s, size_t end, size_t i, size_t *word, size_t *len)
{
    for (i++; i < end && (s[i] == ' ' || s[i] == '\t'); i++)
        ;
    *word = i;
    while (i < end && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_'))
        i++;
    *len = i - *word;
}

static int word_is(const char *s, size_t word, size_t len, const char *what)
{
    return len == strlen(what) && memcmp(s + word, what, len) == 0;
}

static int contains(const char *s, size_t from, size_t to, const char *what)
{
    size_t k = strlen(what);
    for (size_t i = from; i + k <= to; i++)
        if (memcmp(s + i, what, k) == 0)
            return 1;
    return 0;
}

/* The line at i (after an #if line's newline): the offset of the #else, #elif or #endif that
 * ends the branch, or n. */
static size_t skip_branch(const char *s, size_t n, size_t i)
{
    int level = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && (s[j] == ' ' || s[j] == '\t'))
            j++;
        size_t end = line_end(s, n, i);
        if (j < n && s[j] == '#') {
            size_t word, len;
            directive_word(s, end, j, &word, &len);
            if (level == 0 && (word_is(s, word, len, "else") || word_is(s, word, len, "elif") ||
                               word_is(s, word, len, "endif")))
                return i;
            if (word_is(s, word, len, "if") || word_is(s, word, len, "ifdef") || word_is(s, word, len, "ifndef"))
                level++;
            else if (word_is(s, word, len, "endif"))
                level--;
        }
        i = end + 1;
    }
    return n;
}

/* Blanks buf from from to to (inside a body's braces): every character a space but newlines and
 * the directive lines. */
static void blank_span(char *buf, size_t from, size_t to)
{
    const char *s = buf;
    size_t i = from;
    int line_start = 0;
    while (i < to) {
        char c = s[i];
        if (c == '\n') {
            line_start = 1;
            i++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            i++;
            continue;
        }
        if (line_start && c == '#') {
            i = directive_end(s, to, i);
            continue;
        }
        size_t next;
        if (is_comment(s, to, i)) {
            next = comment_end(s, to, i);
            if (memchr(s + i, '\n', next - i))
                line_start = 1;     /* what follows a comment over lines begins its line */
        } else {
            next = c == '"' || c == '\'' ? literal_end(s, to, i) : i + 1;
            line_start = 0;
        }
        for (size_t k = i; k < next; k++)
            if (s[k] != '\n')
                buf[k] = ' ';
        i = next;
    }
}

/* The first character after i that is not white space or a comment, or 0 at the end. */
static char next_significant(const char *s, size_t n, size_t i)
{
    while (i < n) {
        if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n' || s[i] == '\f' || s[i] == '\v')
            i++;
        else if (is_comment(s, n, i))
            i = comment_end(s, n, i);
        else
            return s[i];
    }
    return 0;
}

/* Scans buf (len bytes): stores the first max bodies' spans in spans (the offsets of '{' and of
 * its '}', two per body) and blanks, in buf, the bodies numbered blank_from to blank_to - 1 (in
 * the file's order, from 0).  Returns the number of bodies found.  A '{' ... '}' followed by ';',
 * ',' or ')' is no body (a compound literal at file scope, `(struct p){1, 2};`). */
long qpm_bodies(char *buf, size_t len, size_t *spans, size_t max, size_t blank_from, size_t blank_to)
{
    const char *s = buf;
    size_t n = len, i = 0, found = 0, start = 0;
    long depth = 0;
    int in_body = 0, line_start = 1;
    char prev = 0;
    struct { long depth, first_end; int cplusplus; } ifs[MAX_IF];
    int nifs = 0, lost = 0;          /* lost: #if levels deeper than MAX_IF, not followed */
    while (i < n) {
        char c = s[i];
        if (c == '\n') {
            line_start = 1;
            i++;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || (c == '\\' && i + 1 < n && s[i + 1] == '\n')) {
            i += c == '\\' ? 2 : 1;
            continue;
        }
        if (line_start && c == '#') {
            size_t end = directive_end(s, n, i), word, wlen;
            directive_word(s, end, i, &word, &wlen);
            if (word_is(s, word, wlen, "if") || word_is(s, word, wlen, "ifdef") ||
                word_is(s, word, wlen, "ifndef")) {
                int cplusplus = !word_is(s, word, wlen, "ifndef") && contains(s, word, end, "__cplusplus") &&
                                !contains(s, word, end, "!");
                if (nifs < MAX_IF && lost == 0) {
                    ifs[nifs].depth = depth;
                    ifs[nifs].first_end = -1;
                    ifs[nifs].cplusplus = cplusplus;
                    nifs++;
                    if (cplusplus) {                /* C++ only: never C */
                        i = skip_branch(s, n, end < n ? end + 1 : n);
                        line_start = 1;
                        continue;
                    }
                } else {
                    lost++;
                }
            } else if ((word_is(s, word, wlen, "else") || word_is(s, word, wlen, "elif")) && lost == 0 && nifs > 0) {
                if (ifs[nifs - 1].first_end < 0)
                    ifs[nifs - 1].first_end = depth;
                depth = ifs[nifs - 1].depth;
            } else if (word_is(s, word, wlen, "endif")) {
                if (lost > 0) {
                    lost--;
                } else if (nifs > 0) {
                    nifs--;
                    if (!ifs[nifs].cplusplus && ifs[nifs].first_end >= 0)
                        depth = ifs[nifs].first_end;
                }
            }
            i = end;
            continue;
        }
        size_t next;
        if (is_comment(s, n, i)) {
            next = comment_end(s, n, i);
            if (memchr(s + i, '\n', next - i))
                line_start = 1;     /* what follows a comment over lines begins its line */
        } else if (c == '"' || c == '\'') {
            next = literal_end(s, n, i);
            prev = c;
            line_start = 0;
        } else {
            next = i + 1;
            line_start = 0;
            if (c == '{') {
                if (depth == 0 && prev == ')') {
                    in_body = 1;
                    start = i;
                }
                depth++;
            } else if (c == '}') {
                depth = depth > 0 ? depth - 1 : 0;
                if (depth == 0 && in_body) {
                    char after = next_significant(s, n, next);
                    if (after != ';' && after != ',' && after != ')') {
                        if (found < max) {
                            spans[2 * found] = start;
                            spans[2 * found + 1] = i;
                        }
                        if (found >= blank_from && found < blank_to)
                            blank_span(buf, start + 1, i);
                        found++;
                    }
                    in_body = 0;
                }
            }
            prev = c;
        }
        i = next;
    }
    return (long)found;
}
