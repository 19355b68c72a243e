/*
 * walker.c - the analyzer's one walk over a parsed translation unit.
 *
 * Walking a large translation unit cursor by cursor from Python costs seconds (half a million
 * cursors in the SQLite amalgamation), so this walk runs in C against libclang's stable C API
 * and emits only the facts the program model needs.  It makes them as records, each a tag and
 * its fields (below: "file line col" is a place, the file a number), and writes each as the fact
 * the analyzer keeps of it (see "The facts as the walk writes them" below), to a file descriptor
 * as the walk goes:
 *
 *   F usr name file line col isdef linkage variadic storage ret_enc ret_spelling fn_type annots binding
 *   P idx name type_enc type_spelling annots line col end_line end_col    (after its F)
 *   G usr name file line col isdef linkage type_enc type_spelling annots
 *   S usr name file line col kind                   a struct or union definition ("S" or "U")
 *   D name type_enc type_spelling annots line col   a field (after its S)
 *   C caller callee_usr callee_name file line col loops branches          a direct call
 *   I caller fn_type callee_text file line col loops branches slot        an indirect call
 *   T holder target_usr dest file line col          a function whose address is taken
 *   W holder dest source                            a function pointer copied (see below)
 *   R holder var_usr mode                           a global read (r), written (w) or addressed (a)
 *   A caller callee_usr callee_name arg kind ref file line col
 *                     a call argument that is a plain reference (through casts and parentheses) to
 *                     the caller's parameter (kind "p", ref its index) or to a function (kind "f",
 *                     ref its USR); callee "-" for an indirect call (see "Function pointers")
 *   X holder callee_usr callee_name file line col   the function returns what this call returned
 *                     (return f(…), or a local variable the call's result was stored in)
 *   U holder param_index uses                       how the body uses a parameter, other than as
 *                     an A argument: "W" written through (p[i] = …, *p = …, p->f = …), "M" read
 *                     and written through (p[i] += …), "R" read otherwise, "V" the parameter
 *                     itself assigned, "A" its address taken
 *
 * qpm_parse_walk parses the unit too, and writes before the walk's records its diagnostics, and
 * after them the files it included:
 *
 *   E severity file line col message option         a diagnostic of the parse (severity as libclang's
 *                     CXDiagnosticSeverity, file "" when it has no place; message escaped: "\\",
 *                     "\t", "\n", "\r")
 *   K file line col text                            a fix-it of the E before it that inserts text
 *                     (escaped as the message) at one place
 *   H path size mtime_ns                            a file the unit included, as stat found it right
 *                     after the parse (size "-" when it could not be stat'ed)
 *
 * qpm_parse_walk_split (see "The parse split by function bodies" at the end) writes the records of
 * one half of the file's function bodies, each E record with one more field (the half of the
 * body its place is in, or "-"), and before the records of each top-level declaration:
 *
 *   B number                                        the number of the declaration among those the
 *                     walk writes, in the file's order (the same in both halves)
 *
 * A function's binding is a bit set: 1 declared inline, 2 given hidden or protected visibility by an
 * attribute: either way gcc may bind the calls of its unit to its body.  (A visibility pragma leaves
 * no attribute to see; the build finds those in the object.)
 *
 * The facts as the walk writes them.  Python reads text a line at a time at a microsecond a
 * record, some six times what loading the same facts from a pickle takes; so the walk writes a
 * pickle (protocol 4), which the analyzer loads with pickle's C loader (unit.walked): one tuple of
 * lists, in this order (unit._LISTS):
 *
 *   lines        the E, K and H records, each a line of text: its fields joined by tabs
 *   functions    unit.FunctionDecl each: an F record with its P records (unit.ParamFact each)
 *   globals      unit.GlobalDecl: a G record (the analyzer takes those annotated
 *                qpm_file_component for their files' components)
 *   structs      unit.StructFact: an S record with its D records (unit.FieldFact each)
 *   calls        unit.Call: C;  indirect: unit.Call, I;  taken: T;  flows: W;  refs: R;
 *   arguments    unit.ArgumentFact: A;  param_uses: U;  returned: X
 *   groups       a split walk's B records: (number, the length of each list from functions
 *                to returned before the declaration's facts)
 *
 * each fact a tuple laid out as unit.py's named tuples say (out_end makes it of its record):
 * places as (file, line, column), the file's name as os.path.normpath makes it ("" for none),
 * annotations the Annotations unit._annotations makes of the field (a call in the pickle), and
 * each string valid UTF-8 (a bad byte replaced as Python's "replace" decoding does, and tabs and
 * newlines as spaces), written once and referred to after.
 *
 * Function pointers.  A call is direct when its callee, under parentheses, casts, `*` and `&`,
 * names a function: `f(x)`, `(*f)(x)`, `(&f)(x)`.  Any other call is indirect (`fp(x)`,
 * `(**fp)(x)`, `s->h(x)`, `t[i].h(x)`, `((T)p)(x)` ...): its fn_type is the canonical type of
 * the function called, callee_text the pointer expression as written, and slot the storage the
 * pointer is read from.  A slot is "v<usr>" a variable (every element of an array of them),
 * "a<usr>#i" parameter i of a function, "f<usr>" a struct field (one slot for every object of
 * the struct type) or "r<usr>" what a function returns; "?" is storage the walk does not follow
 * (`(*pp)(x)`, `p[i](x)` through a pointer).  Every expression is walked with a destination,
 * where its value goes: a slot (the left side of `=`, a variable's initializer, the field an
 * initializer list element initializes, a direct call's parameter, a return), "-" anywhere
 * else (escapes: stored through a pointer, cast to an integer, passed to an indirect call ...),
 * or "." nowhere (tested, compared, called, discarded).  A function designator is then a T
 * record with that destination, and a function pointer read from a slot is a W record: dest
 * slot or "-", source a slot, or "?" for a value from somewhere the walk does not follow, which
 * leaves the destination slot open; a slot whose address is taken is open and escapes.  The
 * analyzer resolves targets from these records (see pointers.py).
 *
 * Types are encoded canonically: "*" pointer (then "c" when the pointee is const), "[N]" and
 * "[]" arrays, "S<usr>"/"U<usr>" records, "E" enums, "V" void, "B<name>" other
 * builtins, "A" atomic, "F<spelling>" functions, "O<spelling>" anything else.  Declarations in system headers are
 * skipped: they belong to no component (calls into them are still recorded, C and A records).
 * The libclang declarations below mirror clang-c/Index.h, whose ABI is stable; the wheel ships
 * the library but not that header.
 */
#define _POSIX_C_SOURCE 200809L     /* clock_gettime under -std=c11 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/stat.h>

typedef void *CXTranslationUnit;
typedef void *CXFile;
typedef void *CXClientData;
typedef struct { int kind; int xdata; const void *data[3]; } CXCursor;
typedef struct { int kind; void *data[2]; } CXType;
typedef struct { const void *data; unsigned private_flags; } CXString;
typedef struct { const void *ptr_data[2]; unsigned int_data; } CXSourceLocation;
typedef struct { const void *ptr_data[2]; unsigned begin_int_data; unsigned end_int_data; } CXSourceRange;
typedef int (*CXCursorVisitor)(CXCursor, CXCursor, CXClientData);

extern CXCursor clang_getTranslationUnitCursor(CXTranslationUnit);
extern unsigned clang_visitChildren(CXCursor, CXCursorVisitor, CXClientData);
extern int clang_getCursorKind(CXCursor);
extern CXCursor clang_getCursorReferenced(CXCursor);
extern CXCursor clang_getCursorSemanticParent(CXCursor);
extern CXCursor clang_getTypeDeclaration(CXType);
extern CXString clang_getCursorUSR(CXCursor);
extern CXString clang_getCursorSpelling(CXCursor);
extern CXSourceLocation clang_getCursorLocation(CXCursor);
extern CXSourceRange clang_getCursorExtent(CXCursor);
extern CXSourceLocation clang_getRangeEnd(CXSourceRange);
extern void clang_getExpansionLocation(CXSourceLocation, CXFile *, unsigned *, unsigned *, unsigned *);
extern void clang_getSpellingLocation(CXSourceLocation, CXFile *, unsigned *, unsigned *, unsigned *);
extern int clang_Location_isInSystemHeader(CXSourceLocation);
extern CXString clang_getFileName(CXFile);
extern const char *clang_getCString(CXString);
extern void clang_disposeString(CXString);
extern unsigned clang_isCursorDefinition(CXCursor);
extern int clang_getCursorLinkage(CXCursor);
extern int clang_Cursor_getStorageClass(CXCursor);
extern int clang_Cursor_isVariadic(CXCursor);
extern unsigned clang_Cursor_isFunctionInlined(CXCursor);
extern int clang_getCursorVisibility(CXCursor);
extern int clang_Cursor_getNumArguments(CXCursor);
extern CXCursor clang_Cursor_getArgument(CXCursor, unsigned);
extern CXType clang_getCursorType(CXCursor);
extern CXType clang_getCursorResultType(CXCursor);
extern CXType clang_getCanonicalType(CXType);
extern CXType clang_getPointeeType(CXType);
extern CXType clang_getArrayElementType(CXType);
extern long long clang_getArraySize(CXType);
extern CXType clang_Type_getValueType(CXType);
extern unsigned clang_isConstQualifiedType(CXType);
extern CXString clang_getTypeSpelling(CXType);
extern int clang_getCursorBinaryOperatorKind(CXCursor);
extern int clang_getCursorUnaryOperatorKind(CXCursor);
extern int clang_Cursor_isNull(CXCursor);
extern CXCursor clang_getCursorDefinition(CXCursor);
extern CXCursor clang_getNullCursor(void);
extern int clang_Location_isFromMainFile(CXSourceLocation);
extern unsigned clang_equalCursors(CXCursor, CXCursor);
extern unsigned clang_equalTypes(CXType, CXType);
extern unsigned clang_Cursor_isBitField(CXCursor);
typedef int (*CXFieldVisitor)(CXCursor, CXClientData);
extern unsigned clang_Type_visitFields(CXType, CXFieldVisitor, CXClientData);
typedef struct { unsigned int_data[4]; void *ptr_data; } CXToken;
extern void clang_tokenize(CXTranslationUnit, CXSourceRange, CXToken **, unsigned *);
extern void clang_disposeTokens(CXTranslationUnit, CXToken *, unsigned);
extern CXString clang_getTokenSpelling(CXTranslationUnit, CXToken);
extern CXTranslationUnit clang_Cursor_getTranslationUnit(CXCursor);
extern const char *clang_getFileContents(CXTranslationUnit, CXFile, size_t *);
typedef void *CXIndex;
typedef void *CXDiagnostic;
typedef void (*CXInclusionVisitor)(CXFile, CXSourceLocation *, unsigned, CXClientData);
extern CXIndex clang_createIndex(int, int);
extern int clang_parseTranslationUnit2(CXIndex, const char *, const char *const *, int, void *, unsigned,
                                       unsigned, CXTranslationUnit *);
extern void clang_disposeTranslationUnit(CXTranslationUnit);
extern int clang_reparseTranslationUnit(CXTranslationUnit, unsigned, void *, unsigned);
extern unsigned clang_getNumDiagnostics(CXTranslationUnit);
extern CXDiagnostic clang_getDiagnostic(CXTranslationUnit, unsigned);
extern void clang_disposeDiagnostic(CXDiagnostic);
extern int clang_getDiagnosticSeverity(CXDiagnostic);
extern CXSourceLocation clang_getDiagnosticLocation(CXDiagnostic);
extern CXString clang_getDiagnosticSpelling(CXDiagnostic);
extern CXString clang_getDiagnosticOption(CXDiagnostic, CXString *);
extern unsigned clang_getDiagnosticNumFixIts(CXDiagnostic);
extern CXString clang_getDiagnosticFixIt(CXDiagnostic, unsigned, CXSourceRange *);
extern CXSourceLocation clang_getRangeStart(CXSourceRange);
extern void clang_getInclusions(CXTranslationUnit, CXInclusionVisitor, CXClientData);
extern CXFile clang_getFile(CXTranslationUnit, const char *);
extern int clang_File_isEqual(CXFile, CXFile);

enum {
    K_STRUCT = 2, K_UNION = 3, K_FIELD = 6, K_FUNCTION = 8, K_VAR = 9, K_PARM = 10,
    K_UNEXPOSED_EXPR = 100, K_DECL_REF = 101, K_MEMBER_REF = 102, K_CALL = 103,
    K_PAREN = 111, K_UNARY = 112, K_SUBSCRIPT = 113, K_BINARY = 114, K_COMPOUND_ASSIGN = 115,
    K_CONDITIONAL = 116, K_CSTYLE_CAST = 117,
    K_CASE = 203, K_DEFAULT = 204, K_IF = 205, K_SWITCH = 206, K_WHILE = 207, K_DO = 208,
    K_FOR = 209, K_TRANSLATION_UNIT = 350, K_ANNOTATE = 406, K_VISIBILITY_ATTR = 417,
    K_FIRST_REF = 40, K_LAST_REF = 51, K_MEMBER_DESIGNATOR = 47, K_FIRST_EXPR = 100,
    K_LAST_EXPR = 199, K_INTEGER_LITERAL = 106, K_FLOATING_LITERAL = 107, K_STRING_LITERAL = 109,
    K_CHARACTER_LITERAL = 110, K_COMPOUND_LITERAL = 118,
    K_INIT_LIST = 119, K_SIZEOF = 136, K_LABEL = 201, K_COMPOUND_STMT = 202, K_RETURN = 214,
    K_DECL_STMT = 231,
};
enum { VISIT_BREAK = 0, VISIT_CONTINUE = 1, VISIT_RECURSE = 2 };
enum { BO_CMP = 10, BO_NE = 16, BO_LAND = 20, BO_LOR = 21, BO_ASSIGN = 22, BO_COMMA = 33 };
enum { UO_POSTINC = 1, UO_PREDEC = 4, UO_ADDROF = 5, UO_DEREF = 6, UO_LNOT = 10 };
enum { T_POINTER = 101, T_RECORD = 105, T_FUNCTION_NOPROTO = 110, T_FUNCTION = 111,
       T_CONSTANT_ARRAY = 112, T_DEPENDENT_ARRAY = 116 };

/* A cursor's kind, the null cursor and the test for it, as libclang makes them
 * (clang_getCursorKind returns the field; clang_getNullCursor is a cursor of kind
 * CXCursor_InvalidFile and no data; clang_Cursor_isNull compares a cursor's kind and data with
 * it), without a call into the library for each: a large unit's walk asks some millions of
 * times.  walk_begin checks that libclang agrees. */
enum { K_INVALID_FILE = 70 };
static const CXCursor NULL_CURSOR = {K_INVALID_FILE, 0, {NULL, NULL, NULL}};

static inline int kind_of(CXCursor c)
{
    return c.kind;
}

static inline int is_null(CXCursor c)
{
    return c.kind == K_INVALID_FILE && !c.data[0] && !c.data[1] && !c.data[2];
}

/*
 * The output: records made field by field (out_field, out_num, out_str ... out_end), each turned
 * by out_end into the fact the analyzer keeps of it, written as a pickle (protocol 4) that
 * Python loads at C speed: one tuple of lists, the facts of each kind in walk order (see "The
 * facts as the walk writes them" at the top).  Each string is written once (a memo entry, then a
 * reference).
 * A failed allocation sticks and is reported once; whole records are written to fd once FLUSH_AT
 * bytes wait.
 */
enum { L_LINES, L_FUNCTIONS, L_GLOBALS, L_STRUCTS, L_CALLS, L_INDIRECT, L_TAKEN, L_FLOWS, L_REFS,
       L_ARGUMENTS, L_PARAM_USES, L_RETURNED, L_GROUPS, L_COUNT };

enum { MAX_FIELDS = 16, NO_MEMO = 0xffffffffu };

struct field {
    long long num;          /* a number's value */
    size_t off, len;        /* a string's bytes in text */
    int is_num;
};

/* The strings written so far, by content: their memo indices (open addressing, cap a power of 2). */
struct string_slot {
    uint64_t hash;
    size_t off;             /* where in bytes it is kept */
    unsigned memo;          /* NO_MEMO: a free slot */
};

struct strings {
    struct string_slot *slots;
    size_t n, cap;
    char *bytes;            /* each string kept: its length (a size_t), then its bytes */
    size_t len, bcap;
};

struct out {
    char *buf;              /* the pickle's bytes not yet written */
    size_t len, cap;
    int oom;
    int fd;
    int err;                /* errno of a failed write, which sticks */
    char tag;               /* the record being made */
    int nf;
    struct field f[MAX_FIELDS];
    char *text;             /* its fields' bytes */
    size_t tlen, tcap;
    struct strings strings;
    unsigned memo;          /* memo entries so far */
    unsigned annotations;   /* the memo index of unit._annotations, once written */
    char open;              /* 'F' or 'S': a function's parameters, or a struct's fields, being written */
    unsigned open_file;     /* an open struct's file (a memo index) */
    long long counts[L_COUNT];
    char **paths;           /* the files' names (normalized), by number less base */
    size_t npaths, pcap;
    unsigned base;
};

enum { FLUSH_AT = 1 << 16 };

/* p, an array of *cap items of size bytes, made room for need of them (its capacity doubled from
 * 1024 until it does); NULL, with p as it was and o->oom set, when memory ran out. */
static void *grow(struct out *o, void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return p;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * size);
    if (!q) {
        o->oom = 1;
        return NULL;
    }
    *cap = c;
    return q;
}

/* The decimal digits of v, written backwards from the end of tmp[32]; returns where they start. */
static char *decimal(char tmp[32], long long v)
{
    char *p = tmp + 31;
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
    *p = '\0';
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return p;
}

/* Room for extra more bytes of pickle; 0 when memory ran out. */
static int pk_room(struct out *o, size_t extra)
{
    if (o->oom)
        return 0;
    if (o->len + extra > o->cap) {
        size_t cap = o->cap;
        char *p = grow(o, o->buf, &cap, o->len + extra, 1);
        if (!p)
            return 0;
        o->buf = p;
        o->cap = cap;
    }
    return 1;
}

static void pk_op(struct out *o, unsigned char op)
{
    if (pk_room(o, 1))
        o->buf[o->len++] = (char)op;
}

static void pk_le(struct out *o, unsigned long long v, int n)
{
    for (int i = 0; i < n; i++)
        o->buf[o->len++] = (char)(v >> (8 * i));
}

static void pk_int(struct out *o, long long v)
{
    if (!pk_room(o, 10))
        return;
    if (v >= 0 && v < 256) {
        o->buf[o->len++] = 'K';             /* BININT1 */
        pk_le(o, (unsigned long long)v, 1);
    } else if (v >= 0 && v < 65536) {
        o->buf[o->len++] = 'M';             /* BININT2 */
        pk_le(o, (unsigned long long)v, 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
        o->buf[o->len++] = 'J';             /* BININT */
        pk_le(o, (unsigned long long)v, 4);
    } else {
        o->buf[o->len++] = (char)0x8a;      /* LONG1, 8 bytes of two's complement */
        o->buf[o->len++] = 8;
        pk_le(o, (unsigned long long)v, 8);
    }
}

static void pk_get(struct out *o, unsigned index)
{
    if (!pk_room(o, 5))
        return;
    if (index < 256) {
        o->buf[o->len++] = 'h';             /* BINGET */
        pk_le(o, index, 1);
    } else {
        o->buf[o->len++] = 'j';             /* LONG_BINGET */
        pk_le(o, index, 4);
    }
}

static void pk_bool(struct out *o, int v)
{
    pk_op(o, v ? 0x88 : 0x89);              /* NEWTRUE, NEWFALSE */
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    for (size_t i = 1; i < k; i++) {
        if (i >= n || s[i] < lo || s[i] > hi)
            return 0;
        lo = 0x80;
        hi = 0xbf;
    }
    return k;
}

/* How many bytes at s (n left, s[0] not starting a valid sequence) one U+FFFD replaces, as
 * Python's "replace" decoding does: the longest start of a valid sequence there, or the byte. */
static size_t utf8_invalid(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    size_t i = 1;
    unsigned char lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
    while (i < k && i < n && s[i] >= lo && s[i] <= hi) {
        i++;
        lo = 0x80;
        hi = 0xbf;
    }
    return i;
}

static uint64_t string_hash(const char *s, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t v = 0;
    memcpy(&v, s + i, n - i);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static int strings_grow(struct out *o, struct strings *t)
{
    size_t cap = t->cap ? t->cap * 2 : 4096;
    struct string_slot *slots = malloc(cap * sizeof *slots);
    if (!slots) {
        o->oom = 1;
        return 0;
    }
    for (size_t i = 0; i < cap; i++)
        slots[i].memo = NO_MEMO;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].memo == NO_MEMO)
            continue;
        size_t h = (size_t)t->slots[i].hash & (cap - 1);
        while (slots[h].memo != NO_MEMO)
            h = (h + 1) & (cap - 1);
        slots[h] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 1;
}

/* Writes a string (n bytes of UTF-8, a bad byte replaced as Python's decoding replaces it): a
 * reference to its memo entry when it was written before.  Returns its memo index (NO_MEMO when
 * memory ran out). */
static unsigned pk_str(struct out *o, const char *s, size_t n)
{
    struct strings *t = &o->strings;
    if (o->oom || ((t->n + 1) * 2 > t->cap && !strings_grow(o, t)))
        return NO_MEMO;
    uint64_t hash = string_hash(s, n);
    size_t h = (size_t)hash & (t->cap - 1);
    for (; t->slots[h].memo != NO_MEMO; h = (h + 1) & (t->cap - 1)) {
        if (t->slots[h].hash == hash) {
            size_t at = t->slots[h].off, len;
            memcpy(&len, t->bytes + at, sizeof len);
            if (len == n && memcmp(t->bytes + at + sizeof len, s, n) == 0) {
                pk_get(o, t->slots[h].memo);
                return t->slots[h].memo;
            }
        }
    }
    /* Kept: its length, then the bytes as given (what a later string is compared with). */
    size_t bcap = t->bcap;
    char *bytes = grow(o, t->bytes, &bcap, t->len + sizeof n + n, 1);
    if (!bytes)
        return NO_MEMO;
    t->bytes = bytes;
    t->bcap = bcap;
    memcpy(t->bytes + t->len, &n, sizeof n);
    memcpy(t->bytes + t->len + sizeof n, s, n);
    t->slots[h].hash = hash;
    t->slots[h].off = t->len;
    t->slots[h].memo = o->memo;
    t->len += n + sizeof n;
    t->n++;
    /* The bytes, each bad one replaced (U+FFFD is 3 bytes for 1 at most). */
    if (!pk_room(o, 3 * n + 10))
        return NO_MEMO;
    size_t at = o->len + 5, k = 0;
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (u[i] < 0x80) {
            o->buf[at + k++] = (char)u[i++];
            continue;
        }
        size_t seq = utf8_sequence(u + i, n - i);
        if (seq) {
            memcpy(o->buf + at + k, u + i, seq);
            k += seq;
            i += seq;
        } else {
            memcpy(o->buf + at + k, "\xef\xbf\xbd", 3);
            k += 3;
            i += utf8_invalid(u + i, n - i);
        }
    }
    if (k < 256) {
        o->buf[o->len++] = (char)0x8c;      /* SHORT_BINUNICODE */
        o->buf[o->len++] = (char)k;
        memmove(o->buf + o->len, o->buf + at, k);
    } else {
        o->buf[o->len++] = 'X';             /* BINUNICODE */
        pk_le(o, k, 4);
        memmove(o->buf + o->len, o->buf + at, k);
    }
    o->len += k;
    o->buf[o->len++] = (char)0x94;          /* MEMOIZE */
    return o->memo++;
}

static unsigned pk_cstr(struct out *o, const char *s)
{
    return pk_str(o, s, strlen(s));
}

/* Appends a field of n bytes to the record being made, replacing the record separators (tab,
 * newline) as the text of the records has them: a record's lines (E, K, H) stay one line each. */
static void out_bytes(struct out *o, const char *s, size_t n)
{
    if (o->nf >= MAX_FIELDS) {
        o->oom = 1;
        return;
    }
    size_t tcap = o->tcap;
    char *text = grow(o, o->text, &tcap, o->tlen + n + 1, 1);
    if (!text)
        return;
    o->text = text;
    o->tcap = tcap;
    char *d = o->text + o->tlen;
    memcpy(d, s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)d[i] <= '\r' && (d[i] == '\t' || d[i] == '\n' || d[i] == '\r'))
            d[i] = ' ';
    struct field *f = &o->f[o->nf++];
    f->is_num = 0;
    f->off = o->tlen;
    f->len = n;
    o->tlen += n;
}

/* The first field of a record is its tag. */
static void out_field(struct out *o, const char *s)
{
    if (o->tag == 0 && o->nf == 0) {
        o->tag = s[0];
        o->nf = 1;
        o->tlen = 0;
        return;
    }
    out_bytes(o, s ? s : "", s ? strlen(s) : 0);
}

static void out_num(struct out *o, long long v)
{
    if (o->nf >= MAX_FIELDS) {
        o->oom = 1;
        return;
    }
    struct field *f = &o->f[o->nf++];
    f->is_num = 1;
    f->num = v;
}

static void out_str(struct out *o, CXString s)
{
    out_field(o, clang_getCString(s));
    clang_disposeString(s);
}

static const char *field_text(const struct out *o, int k, size_t *n)
{
    *n = o->f[k].len;
    return o->text + o->f[k].off;
}

static int field_is(const struct out *o, int k, const char *s)
{
    if (k >= o->nf || o->f[k].is_num)
        return 0;
    size_t n;
    const char *t = field_text(o, k, &n);
    return n == strlen(s) && memcmp(t, s, n) == 0;
}

/* Field k, a number (0 for a string, or a field the record does not have). */
static long long field_num(const struct out *o, int k)
{
    return k < o->nf && o->f[k].is_num ? o->f[k].num : 0;
}

/* Field k, a string (a number as its digits); pk_field_int: a number (see field_num). */
static unsigned pk_field(struct out *o, int k)
{
    if (k >= o->nf) {
        o->oom = 1;
        return NO_MEMO;
    }
    if (o->f[k].is_num) {
        char tmp[32];
        const char *d = decimal(tmp, o->f[k].num);
        return pk_str(o, d, (size_t)(tmp + 31 - d));
    }
    size_t n;
    const char *t = field_text(o, k, &n);
    return pk_str(o, t, n);
}

static void pk_field_int(struct out *o, int k)
{
    pk_int(o, field_num(o, k));
}

/* The name of file number k (a field), normalized; "" for none (-1). */
static unsigned pk_file(struct out *o, int k)
{
    long long id = field_num(o, k);
    if (id < 0 || (unsigned long long)id - o->base >= o->npaths || !o->paths[id - o->base])
        return pk_str(o, "", 0);
    return pk_cstr(o, o->paths[id - o->base]);
}

/* Fields k, k+1, k+2 (file number, line, column) as a place: (file, line, column). */
static void pk_place(struct out *o, int k)
{
    pk_file(o, k);
    pk_field_int(o, k + 1);
    pk_field_int(o, k + 2);
    pk_op(o, 0x87);                         /* TUPLE3 */
}

/* Field k, annotations ("-": none; else "qpm_…" items separated by \x1f): the tuple of
 * Annotations unit._annotations makes of it. */
static void pk_annotations(struct out *o, int k)
{
    if (k >= o->nf || field_is(o, k, "-")) {
        pk_op(o, ')');                      /* EMPTY_TUPLE */
        return;
    }
    if (o->annotations == NO_MEMO) {
        pk_cstr(o, "qtool.analyzer.unit");
        pk_cstr(o, "_annotations");
        pk_op(o, 0x93);                     /* STACK_GLOBAL */
        pk_op(o, 0x94);                     /* MEMOIZE */
        o->annotations = o->memo++;
    } else {
        pk_get(o, o->annotations);
    }
    pk_field(o, k);
    pk_op(o, 0x85);                         /* TUPLE1 */
    pk_op(o, 'R');                          /* REDUCE */
}

/* Field k, a linkage (libclang's CXLinkageKind), as the facts name it. */
static void pk_linkage(struct out *o, int k)
{
    long long v = field_num(o, k);
    pk_cstr(o, v == 2 || v == 3 ? "internal" : v == 4 ? "external" : "none");
}

/* Field k, or "" when it is "-" (an A record's callee and its name, for an indirect call). */
static void pk_field_or_empty(struct out *o, int k)
{
    if (field_is(o, k, "-"))
        pk_str(o, "", 0);
    else
        pk_field(o, k);
}

/* The list a fact goes to, on the stack above it (APPEND then pops the fact, POP the list). */
static void pk_list(struct out *o, int list)
{
    pk_get(o, (unsigned)list);
}

/* The fields an F and a G record begin with (out_decl_head's, then whether it is a definition
 * and its linkage), begun as a fact of the list. */
static void pk_declaration(struct out *o, int list)
{
    pk_list(o, list);
    pk_op(o, '(');
    pk_field(o, 1);
    pk_field(o, 2);
    pk_place(o, 3);
    pk_bool(o, field_num(o, 6) == 1);
    pk_linkage(o, 7);
}

static void pk_append(struct out *o, int list)
{
    pk_op(o, 'a');                          /* APPEND */
    pk_op(o, '0');                          /* POP */
    o->counts[list]++;
}

/* The function or struct whose parameters or fields were being written, appended. */
static void pk_close(struct out *o)
{
    if (!o->open)
        return;
    pk_op(o, 't');                          /* TUPLE: the parameters or fields */
    pk_op(o, 't');                          /* TUPLE: the function or struct */
    pk_append(o, o->open == 'F' ? L_FUNCTIONS : L_STRUCTS);
    o->open = 0;
}

/* A record of text (E, K, H): its fields joined by tabs, as one string of the lines list. */
static void pk_line(struct out *o)
{
    size_t need = 2;
    for (int k = 1; k < o->nf; k++)
        need += (o->f[k].is_num ? 24 : o->f[k].len) + 1;
    char *line = malloc(need);
    if (!line) {
        o->oom = 1;
        return;
    }
    size_t n = 0;
    line[n++] = o->tag;
    for (int k = 1; k < o->nf; k++) {
        line[n++] = '\t';
        if (o->f[k].is_num) {
            char tmp[32];
            const char *d = decimal(tmp, o->f[k].num);
            memcpy(line + n, d, (size_t)(tmp + 31 - d));
            n += (size_t)(tmp + 31 - d);
        } else {
            memcpy(line + n, o->text + o->f[k].off, o->f[k].len);
            n += o->f[k].len;
        }
    }
    pk_list(o, L_LINES);
    pk_str(o, line, n);
    pk_append(o, L_LINES);
    free(line);
}

/* Writes the waiting bytes to o->fd and empties the buffer. */
static void out_flush(struct out *o)
{
    if (o->fd < 0 || o->oom)
        return;
    size_t done = 0;
    while (done < o->len && !o->err) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n < 0 && errno != EINTR)
            o->err = errno;
        else if (n > 0)
            done += (size_t)n;
    }
    o->len = 0;
}

/* The record made since its tag, written as its fact. */
static void out_end(struct out *o)
{
    char tag = o->tag;
    if (o->open && !((o->open == 'F' && tag == 'P') || (o->open == 'S' && tag == 'D')))
        pk_close(o);
    switch (tag) {
    case 'C':   /* (caller, callee, name, place, loops, branches, "?") */
    case 'I':   /* (caller, function type, pointer text, place, loops, branches, slot) */
        pk_list(o, tag == 'C' ? L_CALLS : L_INDIRECT);
        pk_op(o, '(');
        pk_field(o, 1);
        pk_field(o, 2);
        pk_field(o, 3);
        pk_place(o, 4);
        pk_field_int(o, 7);
        pk_field_int(o, 8);
        if (tag == 'C')
            pk_cstr(o, "?");
        else
            pk_field(o, 9);
        pk_op(o, 't');
        pk_append(o, tag == 'C' ? L_CALLS : L_INDIRECT);
        break;
    case 'T':   /* (holder, function, destination, place) */
    case 'X':   /* (holder, callee, name, place) */
        pk_list(o, tag == 'T' ? L_TAKEN : L_RETURNED);
        pk_op(o, '(');
        pk_field(o, 1);
        pk_field(o, 2);
        pk_field(o, 3);
        pk_place(o, 4);
        pk_op(o, 't');
        pk_append(o, tag == 'T' ? L_TAKEN : L_RETURNED);
        break;
    case 'R':   /* (holder, global, mode) */
    case 'W':   /* (holder, destination, source) */
        pk_list(o, tag == 'R' ? L_REFS : L_FLOWS);
        pk_field(o, 1);
        pk_field(o, 2);
        pk_field(o, 3);
        pk_op(o, 0x87);
        pk_append(o, tag == 'R' ? L_REFS : L_FLOWS);
        break;
    case 'U':   /* (holder, parameter, uses) */
        pk_list(o, L_PARAM_USES);
        pk_field(o, 1);
        pk_field_int(o, 2);
        pk_field(o, 3);
        pk_op(o, 0x87);
        pk_append(o, L_PARAM_USES);
        break;
    case 'A': { /* (caller, callee or "", its name or "", argument, parameter or None, function or None, place) */
        int param = field_is(o, 5, "p");
        pk_list(o, L_ARGUMENTS);
        pk_op(o, '(');
        pk_field(o, 1);
        pk_field_or_empty(o, 2);
        pk_field_or_empty(o, 3);
        pk_field_int(o, 4);
        if (param)
            pk_field_int(o, 6);
        else
            pk_op(o, 'N');
        if (field_is(o, 5, "f"))
            pk_field(o, 6);
        else
            pk_op(o, 'N');
        pk_place(o, 7);
        pk_op(o, 't');
        pk_append(o, L_ARGUMENTS);
        break;
    }
    case 'F':   /* unit.FunctionDecl, its parameters (P records) to come */
        pk_declaration(o, L_FUNCTIONS);
        pk_bool(o, field_num(o, 8) == 1);
        pk_bool(o, field_num(o, 9) == 3);
        pk_field(o, 11);
        pk_field(o, 10);
        pk_field(o, 12);
        pk_annotations(o, 13);
        pk_bool(o, field_num(o, 14) & 1);
        pk_bool(o, field_num(o, 14) & 2);
        pk_op(o, '(');
        o->open = 'F';                  /* appended (and counted) when closed: pk_close */
        break;
    case 'P':   /* unit.ParamFact, of the open function */
        if (o->open != 'F')
            break;
        pk_op(o, '(');
        pk_field_int(o, 1);
        pk_field(o, 2);
        pk_field(o, 4);
        pk_field(o, 3);
        pk_annotations(o, 5);
        pk_place(o, 6);
        pk_file(o, 6);
        pk_field_int(o, 9);
        pk_field_int(o, 10);
        pk_op(o, 0x87);
        pk_op(o, 't');
        break;
    case 'G':   /* unit.GlobalDecl (one with a file_component annotation: that file's component) */
        pk_declaration(o, L_GLOBALS);
        pk_field(o, 9);
        pk_field(o, 8);
        pk_annotations(o, 10);
        pk_op(o, 't');
        pk_append(o, L_GLOBALS);
        break;
    case 'S':   /* unit.StructFact, its fields (D records) to come */
        pk_list(o, L_STRUCTS);
        pk_op(o, '(');
        pk_field(o, 1);
        pk_field(o, 2);
        pk_cstr(o, field_is(o, 6, "U") ? "union" : "struct");
        o->open_file = pk_file(o, 3);
        pk_field_int(o, 4);
        pk_field_int(o, 5);
        pk_op(o, 0x87);
        pk_op(o, '(');
        o->open = 'S';
        break;
    case 'D':   /* unit.FieldFact, of the open struct */
        if (o->open != 'S')
            break;
        pk_op(o, '(');
        pk_field(o, 1);
        pk_field(o, 3);
        pk_field(o, 2);
        pk_annotations(o, 4);
        if (o->open_file == NO_MEMO)
            o->oom = 1;
        else
            pk_get(o, o->open_file);
        pk_field_int(o, 5);
        pk_field_int(o, 6);
        pk_op(o, 0x87);
        pk_op(o, 't');
        break;
    case 'B':   /* a split walk's declaration: (its number, each list's length before it) */
        pk_list(o, L_GROUPS);
        pk_op(o, '(');
        pk_field_int(o, 1);
        for (int list = L_FUNCTIONS; list < L_GROUPS; list++)
            pk_int(o, o->counts[list]);
        pk_op(o, 't');
        pk_append(o, L_GROUPS);
        break;
    case 'E':
    case 'K':
    case 'H':
        pk_line(o);
        break;
    default:
        break;
    }
    o->tag = 0;
    o->nf = 0;
    o->tlen = 0;
    if (o->fd >= 0 && o->len >= FLUSH_AT)
        out_flush(o);
}

/* The pickle begun: protocol 4, and the lists, memo entries 0 to L_COUNT - 1, on the stack. */
static void out_begin(struct out *o, int fd, unsigned base)
{
    memset(o, 0, sizeof *o);
    o->fd = fd;
    o->base = base;
    o->annotations = NO_MEMO;
    o->open_file = NO_MEMO;
    pk_op(o, 0x80);                         /* PROTO 4 */
    pk_op(o, 4);
    pk_op(o, '(');
    for (int list = 0; list < L_COUNT; list++) {
        pk_op(o, ']');                      /* EMPTY_LIST */
        pk_op(o, 0x94);
        o->memo++;
    }
}

/* The pickle ended (the lists made a tuple) and written; the buffers freed.  Returns 0, -12
 * (ENOMEM) when memory ran out, or -errno when a write failed. */
static int out_finish(struct out *o)
{
    pk_close(o);
    pk_op(o, 't');
    pk_op(o, '.');                          /* STOP */
    out_flush(o);
    free(o->buf);
    free(o->text);
    free(o->strings.slots);
    free(o->strings.bytes);
    for (size_t i = 0; i < o->npaths; i++)
        free(o->paths[i]);
    free(o->paths);
    if (o->oom)
        return -12;
    return o->err ? -o->err : 0;
}

/* A file's name made as os.path.normpath makes it (a malloc'd copy). */
static char *normalized_path(const char *path)
{
    size_t n = strlen(path);
    char *out = malloc(n + 2);
    if (!out)
        return NULL;
    if (n == 0) {
        strcpy(out, ".");
        return out;
    }
    size_t slashes = path[0] == '/' ? (path[1] == '/' && path[2] != '/' ? 2 : 1) : 0;
    size_t len = 0, ncomps = 0;
    size_t *starts = malloc((n / 2 + 2) * sizeof *starts);     /* where each kept component starts */
    if (!starts) {
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < slashes; i++)
        out[len++] = '/';
    size_t root = len;
    for (size_t i = 0; i < n;) {
        while (i < n && path[i] == '/')
            i++;
        size_t j = i;
        while (j < n && path[j] != '/')
            j++;
        size_t k = j - i;
        if (k == 0 || (k == 1 && path[i] == '.')) {
            /* nothing */
        } else if (k == 2 && path[i] == '.' && path[i + 1] == '.' &&
                   ((slashes && ncomps == 0) ||
                    (ncomps > 0 && !(len - starts[ncomps - 1] == 2 && out[starts[ncomps - 1]] == '.' &&
                                     out[starts[ncomps - 1] + 1] == '.')))) {
            if (ncomps > 0) {           /* the component before it goes */
                len = starts[--ncomps];
                if (len > root)
                    len--;              /* and its separator */
            }
        } else {
            if (len > root)
                out[len++] = '/';
            starts[ncomps++] = len;
            memcpy(out + len, path + i, k);
            len += k;
        }
        i = j;
    }
    free(starts);
    if (len == 0)
        out[len++] = '.';
    out[len] = '\0';
    return out;
}

/* Notes the name of the file numbered id. */
static void out_file(struct out *o, unsigned id, const char *path)
{
    size_t k = id - o->base;
    if (k >= o->pcap) {
        size_t cap = o->pcap;
        char **paths = grow(o, o->paths, &cap, k + 1, sizeof *paths);
        if (!paths)
            return;
        memset(paths + o->pcap, 0, (cap - o->pcap) * sizeof *paths);
        o->paths = paths;
        o->pcap = cap;
    }
    free(o->paths[k]);
    o->paths[k] = normalized_path(path ? path : "");
    if (!o->paths[k]) {
        o->oom = 1;
        return;
    }
    for (char *p = o->paths[k]; *p; p++)       /* as out_bytes has a field */
        if (*p == '\t' || *p == '\n' || *p == '\r')
            *p = ' ';
    if (k >= o->npaths)
        o->npaths = k + 1;
}

/* Open-addressing tables of pointers (cap a power of 2): where a key's probe starts, and the
 * first free slot from there (a table grown copies its keys into those). */
static size_t home_slot(const void *key, size_t cap)
{
    return ((uintptr_t)key >> 4) & (cap - 1);
}

static size_t free_slot(const void **keys, size_t cap, const void *key)
{
    size_t h = home_slot(key, cap);
    while (keys[h])
        h = (h + 1) & (cap - 1);
    return h;
}

struct split;

/* Files are numbered on first sight; a small open-addressing table maps CXFile to number. */
struct walk {
    struct out out;
    const void **files;
    unsigned *file_ids;
    size_t nfiles, file_cap;
    unsigned id_base;   /* the first file number (a split walk's second process: its own) */
    struct split *split;    /* a split walk's (qpm_parse_walk_split), else NULL */
};

static long file_id(struct walk *w, CXFile f)
{
    if (!f)
        return -1;
    if (w->nfiles * 2 >= w->file_cap) {
        size_t cap = w->file_cap ? w->file_cap * 2 : 256;
        const void **files = calloc(cap, sizeof *files);
        unsigned *ids = calloc(cap, sizeof *ids);
        if (!files || !ids) {
            free(files);
            free(ids);
            w->out.oom = 1;
            return -1;
        }
        for (size_t i = 0; i < w->file_cap; i++) {
            if (!w->files[i])
                continue;
            size_t h = free_slot(files, cap, w->files[i]);
            files[h] = w->files[i];
            ids[h] = w->file_ids[i];
        }
        free(w->files);
        free(w->file_ids);
        w->files = files;
        w->file_ids = ids;
        w->file_cap = cap;
    }
    size_t h = home_slot(f, w->file_cap);
    while (w->files[h]) {
        if (w->files[h] == f)
            return w->file_ids[h];
        h = (h + 1) & (w->file_cap - 1);
    }
    w->files[h] = f;
    w->file_ids[h] = w->id_base + (unsigned)w->nfiles;
    CXString name = clang_getFileName(f);
    out_file(&w->out, w->file_ids[h], clang_getCString(name));
    clang_disposeString(name);
    w->nfiles++;
    return (long)w->file_ids[h];
}

/* clang's USR for an internal-linkage entity names only its file's base name, so `static int
 * helper` in net/util.c and in store/util.c would be one entity; append the full path.  The
 * result is malloc'd. */
static char *usr_make(CXCursor c)
{
    CXString usr = clang_getCursorUSR(c);
    const char *u = clang_getCString(usr);
    const char *path = NULL;
    CXString name = {0, 0};
    if (clang_getCursorLinkage(c) == 2) {
        CXFile f;
        clang_getExpansionLocation(clang_getCursorLocation(c), &f, NULL, NULL, NULL);
        if (f) {
            name = clang_getFileName(f);
            path = clang_getCString(name);
        }
    }
    size_t nu = u ? strlen(u) : 0, np = path ? strlen(path) : 0;
    char *out = malloc(nu + (path ? np + 1 : 0) + 1);
    if (out) {
        memcpy(out, u ? u : "", nu);
        if (path) {
            out[nu] = '@';
            memcpy(out + nu + 1, path, np);
        }
        out[nu + (path ? np + 1 : 0)] = '\0';
    }
    clang_disposeString(usr);
    if (path)
        clang_disposeString(name);
    return out;
}

/* The USRs made during the walk of this thread, by declaration (cursor kind and clang's Decl): a
 * function's USR is written at every call of it, a global's at every use.  Emptied by qpm_walk. */
struct usr_memo {
    const void **decls;
    int *kinds;
    char **usrs;
    size_t n, cap;
};
static _Thread_local struct usr_memo usr_memo;

enum { K_FIRST_DECL = 1, K_LAST_DECL = 39 };

static void usr_memo_free(void)
{
    struct usr_memo *m = &usr_memo;
    for (size_t i = 0; i < m->cap; i++)
        free(m->usrs[i]);
    free(m->decls);
    free(m->kinds);
    free(m->usrs);
    memset(m, 0, sizeof *m);
}

/* Grows the table to twice its size (or its first); 0 when out of memory. */
static int usr_memo_grow(struct usr_memo *m)
{
    size_t cap = m->cap ? m->cap * 2 : 4096;
    const void **decls = calloc(cap, sizeof *decls);
    int *kinds = calloc(cap, sizeof *kinds);
    char **usrs = calloc(cap, sizeof *usrs);
    if (!decls || !kinds || !usrs) {
        free(decls);
        free(kinds);
        free(usrs);
        return 0;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->decls[i])
            continue;
        size_t h = free_slot(decls, cap, m->decls[i]);
        decls[h] = m->decls[i];
        kinds[h] = m->kinds[i];
        usrs[h] = m->usrs[i];
    }
    free(m->decls);
    free(m->kinds);
    free(m->usrs);
    m->decls = decls;
    m->kinds = kinds;
    m->usrs = usrs;
    m->cap = cap;
    return 1;
}

static char *copy_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *out = malloc(n);
    if (out)
        memcpy(out, s, n);
    return out;
}

/* The USR of a cursor (see usr_make), malloc'd; a declaration's is made once. */
static char *usr_of(CXCursor c)
{
    const void *decl = c.data[0];
    if (c.kind < K_FIRST_DECL || c.kind > K_LAST_DECL || !decl)
        return usr_make(c);
    struct usr_memo *m = &usr_memo;
    if (m->n * 2 >= m->cap && !usr_memo_grow(m))
        return usr_make(c);
    size_t h = home_slot(decl, m->cap);
    while (m->decls[h]) {
        if (m->decls[h] == decl && m->kinds[h] == c.kind)
            return copy_string(m->usrs[h]);
        h = (h + 1) & (m->cap - 1);
    }
    char *u = usr_make(c);
    char *kept = u ? copy_string(u) : NULL;
    if (kept) {
        m->decls[h] = decl;
        m->kinds[h] = c.kind;
        m->usrs[h] = kept;
        m->n++;
    }
    return u;
}

static void out_usr(struct out *o, CXCursor c)
{
    char *u = usr_of(c);
    if (!u)
        o->oom = 1;
    out_field(o, u ? u : "");
    free(u);
}

/* Emits "file line col" of a location, where macros are attributed to their expansion site. */
static void out_location(struct walk *w, CXSourceLocation loc)
{
    CXFile f;
    unsigned line, col, off;
    clang_getExpansionLocation(loc, &f, &line, &col, &off);
    long id = file_id(w, f);
    out_num(&w->out, id);
    out_num(&w->out, line);
    out_num(&w->out, col);
}


static void type_encode_into(char **buf, size_t *len, size_t *cap, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        while (*len + n + 1 > c)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p)
            return;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, s, n + 1);
    *len += n;
}

/* Builds the canonical encoding of a type into a malloc'd string (see the header comment). */
static void type_encode_str(char **buf, size_t *len, size_t *cap, CXType t, int depth)
{
    t = clang_getCanonicalType(t);
    if (depth > 16) {
        type_encode_into(buf, len, cap, "O...");
        return;
    }
    char tmp[64];
    switch (t.kind) {
    case 2:
        type_encode_into(buf, len, cap, "V");
        return;
    case 101: {
        CXType p = clang_getPointeeType(t);
        type_encode_into(buf, len, cap, clang_isConstQualifiedType(p) ? "*c" : "*");
        type_encode_str(buf, len, cap, p, depth + 1);
        return;
    }
    case 112:
        snprintf(tmp, sizeof tmp, "[%lld]", clang_getArraySize(t));
        type_encode_into(buf, len, cap, tmp);
        type_encode_str(buf, len, cap, clang_getArrayElementType(t), depth + 1);
        return;
    case 114: case 115: case 116:
        type_encode_into(buf, len, cap, "[]");
        type_encode_str(buf, len, cap, clang_getArrayElementType(t), depth + 1);
        return;
    case 105: {
        CXCursor d = clang_getTypeDeclaration(t);
        type_encode_into(buf, len, cap, kind_of(d) == K_UNION ? "U" : "S");
        CXString usr = clang_getCursorUSR(d);
        type_encode_into(buf, len, cap, clang_getCString(usr));
        clang_disposeString(usr);
        return;
    }
    case 106:
        type_encode_into(buf, len, cap, "E");
        return;
    case 110: case 111: {
        /* The spelling is kept, so that generated code can call through such a pointer. */
        CXString s = clang_getTypeSpelling(t);
        type_encode_into(buf, len, cap, "F<");
        type_encode_into(buf, len, cap, clang_getCString(s));
        type_encode_into(buf, len, cap, ">");
        clang_disposeString(s);
        return;
    }
    case 177:
        type_encode_into(buf, len, cap, "A");
        type_encode_str(buf, len, cap, clang_Type_getValueType(t), depth + 1);
        return;
    default: {
        CXString s = clang_getTypeSpelling(t);
        const char *name = clang_getCString(s);
        /* Qualifiers are the pointer's business ("*c"), not the builtin's name. */
        for (int again = 1; again && name;) {
            again = 0;
            static const char *const quals[] = {"const ", "volatile ", "restrict "};
            for (size_t i = 0; i < 3; i++) {
                size_t n = strlen(quals[i]);
                if (strncmp(name, quals[i], n) == 0) {
                    name += n;
                    again = 1;
                }
            }
        }
        type_encode_into(buf, len, cap, (t.kind >= 3 && t.kind <= 40) ? "B" : "O");
        type_encode_into(buf, len, cap, name ? name : "?");
        clang_disposeString(s);
        return;
    }
    }
}

static void type_encode(struct out *o, CXType t, int depth)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    type_encode_str(&buf, &len, &cap, t, depth);
    out_field(o, buf ? buf : "O?");
    free(buf);
}

static void out_type(struct out *o, CXType t)
{
    type_encode(o, t, 0);
    out_str(o, clang_getTypeSpelling(t));
}

/* Collects the annotate("...") attributes of a declaration, separated by \x1f. */
struct annots {
    char buf[4096];
    size_t len;
};

static int annots_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    struct annots *a = data;
    if (kind_of(c) != K_ANNOTATE)
        return VISIT_CONTINUE;
    CXString s = clang_getCursorSpelling(c);
    const char *t = clang_getCString(s);
    if (t && strncmp(t, "qpm_", 4) == 0) {
        size_t n = strlen(t);
        if (a->len + n + 2 < sizeof a->buf) {
            if (a->len)
                a->buf[a->len++] = '\x1f';
            memcpy(a->buf + a->len, t, n);
            a->len += n;
            a->buf[a->len] = '\0';
        }
    }
    clang_disposeString(s);
    return VISIT_CONTINUE;
}

static int has_annotations(CXCursor c)
{
    struct annots a;
    a.len = 0;
    a.buf[0] = '\0';
    clang_visitChildren(c, annots_visit, &a);
    return a.len > 0;
}

static int visibility_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    if (kind_of(c) == K_VISIBILITY_ATTR) {
        *(int *)data = 1;
        return 0;   /* CXChildVisit_Break */
    }
    return 1;       /* CXChildVisit_Continue */
}

/* The binding bits of a function (see the record list at the top). */
static int binding(CXCursor c)
{
    int attr = 0;
    clang_visitChildren(c, visibility_visit, &attr);
    int vis = clang_getCursorVisibility(c);     /* 1 hidden, 2 protected, 3 default */
    return (clang_Cursor_isFunctionInlined(c) != 0) | ((attr && (vis == 1 || vis == 2)) << 1);
}

static void out_annots(struct out *o, CXCursor c)
{
    struct annots a;
    a.len = 0;
    a.buf[0] = '\0';
    clang_visitChildren(c, annots_visit, &a);
    out_field(o, a.len ? a.buf : "-");
}

/* A function's parameters while its body is walked, and the uses of each met so far (U_* bits). */
enum { U_WRITE = 1, U_MODIFY = 2, U_READ = 4, U_VAR = 8, U_ADDR = 16 };

struct params {
    CXCursor *cursors;
    unsigned char *uses;
    int n;
};

static int param_index(const struct params *ps, CXCursor ref)
{
    if (!ps)
        return -1;
    for (int i = 0; i < ps->n; i++)
        if (clang_equalCursors(ps->cursors[i], ref))
            return i;
    return -1;
}

/* Context of the body walk: who holds the code, how deep it is in loops and branches, whether
 * the expression is the target of a write ('w'), of an address-of ('a') or read ('r'), and where
 * its value goes (dest: a slot, DEST_ESCAPE or DEST_NONE; see the header comment).  A node's
 * children get their context from the node: body_visit computes it from the parent's kind and
 * operator, what body_enter prepared for them (slot, fields, callee) and the child's position. */
static const char DEST_ESCAPE[] = "-";
static const char DEST_NONE[] = ".";

/* The fields of a struct or union that an initializer list initializes, in order. */
struct fields {
    CXCursor *at;
    size_t n, cap;
    size_t next;        /* the field the next element without a designator initializes */
    int lost;           /* after brace elision or a nested designator, elements map to no field */
};

struct body {
    struct walk *w;
    const char *holder;
    int loops, branches;
    char mode;
    int parent_kind, parent_op, direct_call;
    int index;
    struct params *params;      /* the holder function's parameters; NULL for a global's initializer */
    char pmode;                 /* how a parameter met here is used (see param_mode) */
    struct returns *returns;    /* locals holding call results (see visit_returns); NULL outside functions */
    int returns_pointer;        /* the holder is a function returning function pointers */
    const char *dest;
    /* What body_enter prepared for the node's children. */
    const char *slot;           /* '=': the left side's slot; a variable: its own; return: "r<holder>" */
    struct fields *fields;      /* an initializer list of a struct or union */
    int array_list;             /* an initializer list of an array ... */
    CXType element;             /* ... of these */
    const char *callee;         /* a direct call: the USR of the function whose parameters ... */
    int callee_params;          /* ... (this many) the arguments go to */
};

static int body_visit(CXCursor c, CXCursor parent, CXClientData data);

struct children {
    CXCursor first, last;
    int n;
};

static int children_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    struct children *ch = data;
    if (ch->n++ == 0)
        ch->first = c;
    ch->last = c;
    return VISIT_CONTINUE;
}

static struct children children_of(CXCursor c)
{
    struct children ch;
    ch.first = ch.last = NULL_CURSOR;
    ch.n = 0;
    clang_visitChildren(c, children_visit, &ch);
    return ch;
}

static int is_function_type(CXType t)
{
    t = clang_getCanonicalType(t);
    return t.kind == T_FUNCTION || t.kind == T_FUNCTION_NOPROTO;
}

static int is_array_type(CXType t)
{
    t = clang_getCanonicalType(t);
    return t.kind == T_CONSTANT_ARRAY || (t.kind >= 114 && t.kind <= T_DEPENDENT_ARRAY);
}

static int is_function_pointer(CXType t)
{
    t = clang_getCanonicalType(t);
    return t.kind == T_POINTER && is_function_type(clang_getPointeeType(t));
}

/* What a slot holds: a function pointer, or an array of them. */
static int holds_function_pointers(CXType t)
{
    t = clang_getCanonicalType(t);
    for (int depth = 0; is_array_type(t) && depth < 16; depth++)
        t = clang_getCanonicalType(clang_getArrayElementType(t));
    return is_function_pointer(t);
}

/* tag, then s, then "#index" when index >= 0; malloc'd, NULL when out of memory. */
static char *slot_name(const char *tag, const char *s, int index)
{
    if (!s)
        return NULL;
    char tmp[32];
    const char *num = index < 0 ? "" : decimal(tmp, index);
    size_t nt = strlen(tag), ns = strlen(s), nn = strlen(num);
    char *out = malloc(nt + ns + nn + 2);
    if (out) {
        char *p = out;
        memcpy(p, tag, nt);
        memcpy(p += nt, s, ns);
        p += ns;
        if (index >= 0) {
            *p++ = '#';
            memcpy(p, num, nn);
            p += nn;
        }
        *p = '\0';
    }
    return out;
}

static char *decl_slot(const char *tag, CXCursor decl, int index)
{
    char *usr = usr_of(decl);
    char *out = slot_name(tag, usr, index);
    free(usr);
    return out;
}

/* An expression under its parentheses and implicit conversions. */
static CXCursor strip(CXCursor c)
{
    for (int depth = 0; depth < 64; depth++) {
        int kind = kind_of(c);
        if (kind != K_PAREN && kind != K_UNEXPOSED_EXPR)
            break;
        struct children ch = children_of(c);
        if (ch.n != 1)
            break;
        c = ch.first;
    }
    return c;
}

/* A call's callee under parentheses, conversions, casts, and `*` and `&` applied to a function
 * or a function pointer: a function's name for a direct call, else the pointer's expression. */
static CXCursor strip_callee(CXCursor c)
{
    for (int depth = 0; depth < 64; depth++) {
        c = strip(c);
        int kind = kind_of(c);
        if (kind != K_CSTYLE_CAST && kind != K_UNARY)
            break;
        CXCursor in = children_of(c).last;
        if (is_null(in))
            break;
        if (kind == K_UNARY) {
            int op = clang_getCursorUnaryOperatorKind(c);
            CXType t = clang_getCursorType(in);
            if ((op != UO_DEREF && op != UO_ADDROF) || !(is_function_type(t) || is_function_pointer(t)))
                break;
        }
        c = in;
    }
    return c;
}

/* The slot an lvalue names (see the header comment), malloc'd; NULL for storage the walk does
 * not follow (through a pointer). */
static char *slot_of(CXCursor e)
{
    e = strip(e);
    int kind = kind_of(e);
    if (kind == K_SUBSCRIPT) {
        CXCursor base = strip(children_of(e).first);
        return is_array_type(clang_getCursorType(base)) ? slot_of(base) : NULL;
    }
    if (kind != K_DECL_REF && kind != K_MEMBER_REF)
        return NULL;
    CXCursor ref = clang_getCursorReferenced(e);
    int ref_kind = kind_of(ref);
    if (ref_kind == K_VAR)
        return decl_slot("v", ref, -1);
    if (ref_kind == K_FIELD)
        return decl_slot("f", ref, -1);
    if (ref_kind == K_PARM) {
        CXCursor fn = clang_getCursorSemanticParent(ref);
        int n = kind_of(fn) == K_FUNCTION ? clang_Cursor_getNumArguments(fn) : 0;
        for (int i = 0; i < n; i++)
            if (clang_equalCursors(clang_Cursor_getArgument(fn, (unsigned)i), ref))
                return decl_slot("a", fn, i);
    }
    return NULL;
}

/* A null pointer constant, or another integer constant made a pointer: no function. */
static int is_constant(CXCursor c)
{
    for (int depth = 0; depth < 64; depth++) {
        c = strip(c);
        if (kind_of(c) != K_CSTYLE_CAST)
            break;
        c = children_of(c).last;
    }
    int kind = kind_of(c);
    return kind == K_INTEGER_LITERAL || kind == 123 /* __null */;
}

static int fields_visit(CXCursor c, CXClientData data)
{
    struct fields *f = data;
    CXString name = clang_getCursorSpelling(c);
    const char *s = clang_getCString(name);
    int unnamed_bitfield = clang_Cursor_isBitField(c) && (!s || !*s);
    clang_disposeString(name);
    if (unnamed_bitfield)
        return VISIT_CONTINUE;      /* initializers skip it */
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        CXCursor *at = realloc(f->at, cap * sizeof *at);
        if (!at)
            return VISIT_BREAK;
        f->at = at;
        f->cap = cap;
    }
    f->at[f->n++] = c;
    return VISIT_CONTINUE;
}

/* The body walk visits a holder's code in one recursive visit: clang_visitChildren is told to
 * recurse into each node whose children are wanted, and a frame for that node holds the context
 * its children start from (body_enter), with what that context points to.  A frame is done when
 * the visit comes back to an ancestor's child, and is then let go (and kept for reuse). */
struct frame {
    struct frame *up;
    CXCursor node;
    struct body child;          /* what body_visit computes each child's context from */
    struct fields fields;       /* child.fields, for an initializer list of a struct */
    char *slot;                 /* child.slot, when made for it */
    char *dest;                 /* the node's own dest, which its children inherit */
    char *callee_usr;           /* child.callee */
};

struct frames {
    struct frame *top;          /* the holder's frame at the bottom */
    struct frame *spare;        /* frames let go, for reuse */
};

static void frame_pop(struct frames *fs)
{
    struct frame *f = fs->top;
    fs->top = f->up;
    free(f->slot);
    free(f->fields.at);
    free(f->callee_usr);
    free(f->dest);
    f->up = fs->spare;
    fs->spare = f;
}

/* Whether two cursors are one, as clang_equalCursors says (a declaration's data[1] is not
 * compared: libclang sets it only in some visits). */
static int same_cursor(CXCursor a, CXCursor b)
{
    if (a.kind != b.kind || a.data[0] != b.data[0] || a.data[2] != b.data[2])
        return 0;
    return a.data[1] == b.data[1] || clang_equalCursors(a, b);
}

/* The frame of node c for its children, its context prepared from the node's own (ctx); NULL
 * for a node without children (a literal) or when memory ran out. */
static struct frame *body_enter(struct frames *fs, const struct body *ctx, CXCursor c, int kind,
                                CXCursor callee, const char *callee_usr)
{
    /* A literal has no children: a visit would find none. */
    if (kind == K_INTEGER_LITERAL || kind == K_FLOATING_LITERAL || kind == K_STRING_LITERAL ||
        kind == K_CHARACTER_LITERAL)
        return NULL;
    struct frame *f = fs->spare;
    if (f)
        fs->spare = f->up;
    else if (!(f = malloc(sizeof *f))) {
        ctx->w->out.oom = 1;
        return NULL;
    }
    memset(f, 0, sizeof *f);
    f->node = c;
    struct body *child = &f->child;
    *child = *ctx;
    child->parent_kind = kind;
    child->parent_op = 0;
    child->direct_call = !is_null(callee);
    child->index = 0;
    child->slot = NULL;
    child->fields = NULL;
    child->array_list = 0;
    child->callee = NULL;
    child->callee_params = 0;
    if (kind == K_BINARY || kind == K_COMPOUND_ASSIGN)
        child->parent_op = clang_getCursorBinaryOperatorKind(c);
    else if (kind == K_UNARY)
        child->parent_op = clang_getCursorUnaryOperatorKind(c);
    switch (kind) {
    case K_BINARY:
        if (child->parent_op == BO_ASSIGN) {
            CXCursor lhs = children_of(c).first;
            if (holds_function_pointers(clang_getCursorType(lhs)))
                child->slot = f->slot = slot_of(lhs);
        }
        break;
    case K_VAR:
        if (holds_function_pointers(clang_getCursorType(c)))
            child->slot = f->slot = decl_slot("v", c, -1);
        break;
    case K_RETURN:
        if (ctx->returns_pointer)
            child->slot = f->slot = slot_name("r", ctx->holder, -1);
        break;
    case K_INIT_LIST: {
        CXType t = clang_getCanonicalType(clang_getCursorType(c));
        if (t.kind == T_RECORD) {
            clang_Type_visitFields(t, fields_visit, &f->fields);
            child->fields = &f->fields;
        } else if (is_array_type(t)) {
            child->array_list = 1;
            child->element = clang_getCanonicalType(clang_getArrayElementType(t));
        }
        break;
    }
    case K_CALL:
        if (child->direct_call) {
            child->callee = callee_usr;
            child->callee_params = clang_Cursor_getNumArguments(callee);
        }
        break;
    default:
        break;
    }
    f->up = fs->top;
    fs->top = f;
    return f;
}

static int is_global_var(CXCursor ref)
{
    if (kind_of(ref) != K_VAR)
        return 0;
    int parent = kind_of(clang_getCursorSemanticParent(ref));
    return parent == K_TRANSLATION_UNIT &&
           !clang_Location_isInSystemHeader(clang_getCursorLocation(ref));
}

static void out_holder(const struct body *b, const char *tag)
{
    out_field(&b->w->out, tag);
    out_field(&b->w->out, b->holder);
}

/* A function pointer goes from source (a slot; NULL: storage the walk does not follow) to dest. */
static void out_flow(const struct body *b, const char *dest, const char *source)
{
    if (dest == DEST_NONE || (dest == DEST_ESCAPE && !source))
        return;
    out_holder(b, "W");
    out_field(&b->w->out, dest);
    out_field(&b->w->out, source ? source : "?");
    out_end(&b->w->out);
}

/* A read of an lvalue holding function pointers: they go where the value goes.  An array used as
 * a pointer can be written and read through it: its slot is open, and its functions escape. */
static void visit_read(const struct body *b, CXCursor c)
{
    CXType t = clang_getCursorType(c);
    if (b->dest == DEST_NONE || !holds_function_pointers(t))
        return;
    char *source = slot_of(c);
    if (is_function_pointer(t)) {
        out_flow(b, b->dest, source);
    } else if (source) {
        out_flow(b, source, NULL);
        out_flow(b, DEST_ESCAPE, source);
    }
    free(source);
}

/* What a node's value adds to its destination, for the nodes that do not only pass on a value
 * their children compute (parentheses, conversions from function pointers, `?:`, `,` ...). */
static void visit_value(const struct body *b, CXCursor c, int kind, CXCursor callee)
{
    const char *dest = b->dest;
    int to_slot = dest != DEST_NONE && dest != DEST_ESCAPE;
    switch (kind) {
    case K_MEMBER_REF: case K_SUBSCRIPT:
        visit_read(b, c);
        return;
    case K_UNARY: {
        int op = clang_getCursorUnaryOperatorKind(c);
        if (op == UO_ADDROF) {
            CXCursor in = children_of(c).last;
            if (holds_function_pointers(clang_getCursorType(in))) {
                char *slot = slot_of(in);   /* &fp: written and read through the pointer */
                if (slot) {
                    out_flow(b, slot, NULL);
                    out_flow(b, DEST_ESCAPE, slot);
                }
                free(slot);
            }
        } else if (op == UO_DEREF && to_slot && is_function_pointer(clang_getCursorType(c))) {
            out_flow(b, dest, NULL);        /* *pp (while *fp is the function fp points to) */
        }
        return;
    }
    case K_CALL:
        if (to_slot && is_function_pointer(clang_getCursorType(c))) {
            char *result = is_null(callee) ? NULL : decl_slot("r", callee, -1);
            out_flow(b, dest, result);
            free(result);
        }
        return;
    case K_BINARY:
        if (to_slot && clang_getCursorBinaryOperatorKind(c) == BO_ASSIGN) {
            char *slot = slot_of(children_of(c).first);     /* a = b = f */
            out_flow(b, dest, slot);
            free(slot);
        } else if (to_slot && clang_getCursorBinaryOperatorKind(c) != BO_COMMA &&
                   is_function_pointer(clang_getCursorType(c))) {
            out_flow(b, dest, NULL);
        }
        return;
    case K_PAREN: case K_UNEXPOSED_EXPR: case K_CSTYLE_CAST: {
        if (!to_slot || !is_function_pointer(clang_getCursorType(c)))
            return;
        struct children ch = children_of(c);
        if (ch.n != 1 && kind != K_CSTYLE_CAST)
            return;     /* a designator and its value, `a ?: b`: the children carry the value */
        CXType t = clang_getCursorType(ch.last);
        if (is_function_type(t) || holds_function_pointers(t) || kind_of(ch.last) == K_INIT_LIST)
            return;
        /* A pointer made from something else: from a constant, no function; else unknown. */
        if (!is_constant(ch.last))
            out_flow(b, dest, NULL);
        return;
    }
    case K_CONDITIONAL: case K_COMPOUND_LITERAL: case K_INIT_LIST: case K_INTEGER_LITERAL:
        return;
    default:
        if (to_slot && kind >= K_FIRST_EXPR && kind <= K_LAST_EXPR && is_function_pointer(clang_getCursorType(c)))
            out_flow(b, dest, NULL);
        return;
    }
}

/* The slot an element of an initializer list initializes: for an array, the array's own; for a
 * struct or union, the field's, found by position or designator.  Brace elision (`{"get", f}`
 * initializing an array of structs without inner braces) and nested designators are not
 * mapped: those elements escape. */
static const char *element_dest(struct body *p, CXCursor c, int kind, char **own)
{
    CXCursor value = c;
    CXCursor field = NULL_CURSOR;
    int designated = 0;
    if (kind == K_UNEXPOSED_EXPR) {
        struct children ch = children_of(c);
        if (ch.n >= 2) {        /* a designated initializer: designators, then the value */
            designated = 1;
            value = ch.last;
            if (ch.n > 2 || (p->fields && kind_of(ch.first) != K_MEMBER_DESIGNATOR)) {
                if (p->fields)
                    p->fields->lost = 1;
                return DEST_ESCAPE;
            }
            if (p->fields)
                field = clang_getCursorReferenced(ch.first);
        }
    }
    CXType expected;
    if (p->array_list) {
        expected = p->element;
    } else if (p->fields) {
        struct fields *f = p->fields;
        if (designated) {
            f->lost = 1;        /* a field of an anonymous member: its position is not ours */
            for (size_t i = 0; i < f->n; i++) {
                if (clang_equalCursors(f->at[i], field)) {
                    f->next = i + 1;
                    f->lost = 0;
                    break;
                }
            }
        } else if (!f->lost && f->next < f->n) {
            field = f->at[f->next++];
        } else {
            return DEST_ESCAPE;
        }
        if (is_null(field))
            return DEST_ESCAPE;
        expected = clang_getCanonicalType(clang_getCursorType(field));
    } else {
        return p->dest;         /* a scalar in braces */
    }
    int value_kind = kind_of(strip(value));
    if ((expected.kind == T_RECORD || is_array_type(expected)) && value_kind != K_INIT_LIST &&
        !(is_array_type(expected) && value_kind == K_STRING_LITERAL) &&
        !clang_equalTypes(clang_getCanonicalType(clang_getCursorType(value)), expected)) {
        if (p->fields)
            p->fields->lost = 1;    /* brace elision */
        else
            p->array_list = 2;
        return DEST_ESCAPE;
    }
    if (p->array_list)
        return p->array_list == 1 ? p->dest : DEST_ESCAPE;
    if (!holds_function_pointers(expected))
        return DEST_ESCAPE;
    *own = decl_slot("f", field, -1);
    return *own ? *own : DEST_ESCAPE;
}

/* Where the value of a child of p's node goes. */
static const char *child_dest(struct body *p, int index, CXCursor c, int kind, char **own)
{
    switch (p->parent_kind) {
    case K_PAREN: case K_UNEXPOSED_EXPR: case K_CSTYLE_CAST: case K_COMPOUND_LITERAL:
        return p->dest;
    case K_CONDITIONAL:
        return index == 0 ? DEST_NONE : p->dest;
    case K_UNARY:
        if (p->parent_op == UO_DEREF || p->parent_op == UO_ADDROF)
            return p->dest;
        return p->parent_op == UO_LNOT ? DEST_NONE : DEST_ESCAPE;
    case K_BINARY:
        if (p->parent_op == BO_ASSIGN)
            return index == 0 ? DEST_NONE : p->slot ? p->slot : DEST_ESCAPE;
        if (p->parent_op == BO_COMMA)
            return index == 0 ? DEST_NONE : p->dest;
        if ((p->parent_op >= BO_CMP && p->parent_op <= BO_NE) || p->parent_op == BO_LAND ||
            p->parent_op == BO_LOR)
            return DEST_NONE;
        return DEST_ESCAPE;
    case K_COMPOUND_ASSIGN:
        return index == 0 ? DEST_NONE : DEST_ESCAPE;
    case K_VAR: case K_RETURN:
        return p->slot ? p->slot : DEST_ESCAPE;
    case K_CALL:
        if (!p->callee)
            return index == 0 ? DEST_NONE : DEST_ESCAPE;    /* an indirect call's arguments */
        if (index - 1 >= p->callee_params)
            return DEST_ESCAPE;                             /* variadic */
        *own = slot_name("a", p->callee, index - 1);
        return *own ? *own : DEST_ESCAPE;
    case K_INIT_LIST:
        return element_dest(p, c, kind, own);
    case K_MEMBER_REF: case K_SUBSCRIPT: case K_SIZEOF: case K_COMPOUND_STMT: case K_IF: case K_WHILE:
    case K_DO: case K_FOR: case K_SWITCH: case K_CASE: case K_DEFAULT: case K_LABEL: case K_DECL_STMT:
    case K_FUNCTION:
        return DEST_NONE;
    default:
        return DEST_ESCAPE;
    }
}

/* An expression as C text, rebuilt from its cursors (macro arguments and bodies read as what
 * they expand to): names, `.`/`->`, `[]`, `*`, `&`, casts and parentheses; anything else "...". */
struct text {
    char buf[96];
    size_t len;
};

static void text_add(struct text *t, const char *s)
{
    if (t->len + 1 >= sizeof t->buf)
        return;
    int n = snprintf(t->buf + t->len, sizeof t->buf - t->len, "%s", s ? s : "");
    t->len = n < 0 ? t->len : t->len + (size_t)n >= sizeof t->buf ? sizeof t->buf - 1 : t->len + (size_t)n;
}

static void text_add_spelling(struct text *t, CXString s)
{
    text_add(t, clang_getCString(s));
    clang_disposeString(s);
}

/* Whether clang_tokenize would find more than one token in a literal's extent, known without it.
 * clang_tokenize lexes from the spelling of the range's start to that of its end, pushing a
 * token before it tests whether it has passed the end; for a literal spelled in a macro's body
 * that is every token from the #define to the macro's use, which costs it most of a millisecond
 * on a large file.  Here: the literal's characters are scanned in the file's buffer, taking in
 * at least as much as its token does; when they end before the range does, the lexer would go
 * on to a second token (the range ends with one).  Anything unusual (no buffer, two files, a
 * splice or a universal character name, no digit first) answers 0, and clang_tokenize decides. */
static int several_tokens(CXTranslationUnit tu, CXSourceRange r)
{
    CXFile f0, f1;
    unsigned b, e;
    clang_getSpellingLocation(clang_getRangeStart(r), &f0, NULL, NULL, &b);
    clang_getSpellingLocation(clang_getRangeEnd(r), &f1, NULL, NULL, &e);
    if (!f0 || f0 != f1 || e <= b)
        return 0;
    size_t size = 0;
    const char *buf = clang_getFileContents(tu, f0, &size);
    if (!buf || e > size || buf[b] < '0' || buf[b] > '9')
        return 0;
    size_t i = b;
    while (i < size) {
        char ch = buf[i];
        if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
            ch == '.' || ch == '\'')
            i++;
        else if ((ch == '+' || ch == '-') && strchr("eEpP", buf[i - 1]))
            i++;
        else if (ch == '\\')
            return 0;
        else
            break;
    }
    return i < e;
}

static void expr_text(struct text *t, CXCursor c, int depth)
{
    if (depth > 16) {
        text_add(t, "...");
        return;
    }
    int kind = kind_of(c);
    struct children ch = children_of(c);
    switch (kind) {
    case K_DECL_REF:
        text_add_spelling(t, clang_getCursorSpelling(c));
        return;
    case K_MEMBER_REF: {
        if (ch.n > 0) {
            CXType base = clang_getCanonicalType(clang_getCursorType(ch.first));
            expr_text(t, ch.first, depth + 1);
            text_add(t, base.kind == T_POINTER ? "->" : ".");
        }
        text_add_spelling(t, clang_getCursorSpelling(c));
        return;
    }
    case K_SUBSCRIPT:
        expr_text(t, ch.first, depth + 1);
        text_add(t, "[");
        expr_text(t, ch.last, depth + 1);
        text_add(t, "]");
        return;
    case K_PAREN:
        text_add(t, "(");
        expr_text(t, ch.first, depth + 1);
        text_add(t, ")");
        return;
    case K_UNEXPOSED_EXPR:
        if (ch.n == 1)
            expr_text(t, ch.first, depth + 1);
        else
            text_add(t, "...");
        return;
    case K_UNARY: {
        int op = clang_getCursorUnaryOperatorKind(c);
        text_add(t, op == UO_DEREF ? "*" : op == UO_ADDROF ? "&" : "...");
        expr_text(t, ch.last, depth + 1);
        return;
    }
    case K_CSTYLE_CAST:
        text_add(t, "(");
        text_add_spelling(t, clang_getTypeSpelling(clang_getCursorType(c)));
        text_add(t, ")");
        expr_text(t, ch.last, depth + 1);
        return;
    case K_CALL:
        expr_text(t, ch.first, depth + 1);
        text_add(t, "(...)");
        return;
    case K_INTEGER_LITERAL: {
        /* A literal is one token, unless it comes from a macro body. */
        CXTranslationUnit tu = clang_Cursor_getTranslationUnit(c);
        CXSourceRange r = clang_getCursorExtent(c);
        if (several_tokens(tu, r)) {
            text_add(t, "...");
            return;
        }
        CXToken *tokens = NULL;
        unsigned n = 0;
        clang_tokenize(tu, r, &tokens, &n);
        if (n == 1)
            text_add_spelling(t, clang_getTokenSpelling(tu, tokens[0]));
        else
            text_add(t, "...");
        if (tokens)
            clang_disposeTokens(tu, tokens, n);
        return;
    }
    default:
        text_add(t, "...");
        return;
    }
}

static void out_text(struct out *o, CXCursor c)
{
    struct text t;
    t.len = 0;
    t.buf[0] = '\0';
    expr_text(&t, c, 0);
    if (t.len >= sizeof t.buf - 1)
        snprintf(t.buf + sizeof t.buf - 4, 4, "...");
    out_field(o, t.buf);
}

/* The function a stripped callee names (f(x), (*f)(x), (&f)(x)), or a null cursor for an indirect
 * call. */
static CXCursor named_function(CXCursor pointer)
{
    if (kind_of(pointer) == K_DECL_REF) {
        CXCursor named = clang_getCursorReferenced(pointer);
        if (kind_of(named) == K_FUNCTION)
            return named;
    }
    return NULL_CURSOR;
}

/* The function a call calls directly, or a null cursor.  Not clang_getCursorReferenced(call):
 * for get_handler(x)(y) it names get_handler. */
static CXCursor called_function(CXCursor call)
{
    return named_function(strip_callee(children_of(call).first));
}

/* Emits a call; returns the function it calls directly, or a null cursor for an indirect call,
 * and the direct callee's USR in *usr (malloc'd, the caller frees it). */
static CXCursor visit_call(const struct body *b, CXCursor c, char **usr)
{
    struct out *o = &b->w->out;
    CXCursor first = children_of(c).first;
    CXCursor pointer = strip_callee(first);
    CXCursor callee = named_function(pointer);
    if (!is_null(callee)) {
        out_holder(b, "C");
        *usr = usr_of(callee);
        if (!*usr)
            o->oom = 1;
        out_field(o, *usr ? *usr : "");
        out_str(o, clang_getCursorSpelling(callee));
    } else {
        out_holder(b, "I");
        CXType t = clang_getCanonicalType(clang_getCursorType(first));
        if (t.kind == T_POINTER)
            t = clang_getCanonicalType(clang_getPointeeType(t));
        if (is_function_type(t))
            out_str(o, clang_getTypeSpelling(t));
        else
            out_field(o, "?");
        out_text(o, pointer);
    }
    out_location(b->w, clang_getCursorLocation(c));
    out_num(o, b->loops);
    out_num(o, b->branches);
    if (is_null(callee)) {
        char *slot = NULL;
        if (kind_of(pointer) == K_CALL) {
            CXCursor fn = called_function(pointer);     /* get_handler(x)(y) */
            if (!is_null(fn))
                slot = decl_slot("r", fn, -1);
        } else if (is_function_pointer(clang_getCursorType(pointer))) {
            slot = slot_of(pointer);
        }
        out_field(o, slot ? slot : "?");
        free(slot);
    }
    out_end(o);
    return callee;
}

static unsigned char param_use_bit(char m);

static void visit_ref(const struct body *b, CXCursor c)
{
    CXCursor ref = clang_getCursorReferenced(c);
    if (is_null(ref))
        return;
    int kind = kind_of(ref);
    if (kind == K_FUNCTION) {
        out_holder(b, "T");
        out_usr(&b->w->out, ref);
        out_field(&b->w->out, b->dest);
        out_location(b->w, clang_getCursorLocation(c));
        out_end(&b->w->out);
        return;
    }
    if (kind == K_PARM) {
        int i = param_index(b->params, ref);
        if (i >= 0)
            b->params->uses[i] |= param_use_bit(b->pmode);
    }
    if (kind == K_VAR || kind == K_PARM)
        visit_read(b, c);
    if (is_global_var(ref)) {
        char mode[2] = {b->mode, '\0'};
        out_holder(b, "R");
        out_usr(&b->w->out, ref);
        out_field(&b->w->out, mode);
        out_end(&b->w->out);
    }
}

/* Parameter uses and call arguments (U and A records).  A parameter's use is decided from its
 * context like a global's mode: 'v' the parameter itself is assigned, 'm' modified (++, +=),
 * 'W'/'M' the same through it (p[i], *p, p->f), 'a' its address taken, 'c' a plain call argument
 * (reported as an A record), 'r' anything else. */

static char through(char m)
{
    return (m == 'v' || m == 'W') ? 'W' : (m == 'm' || m == 'M') ? 'M' : 'r';
}

static char param_mode(const struct body *p, int index)
{
    switch (p->parent_kind) {
    case K_BINARY: case K_COMPOUND_ASSIGN:
        if (index == 0 && p->parent_op == BO_ASSIGN && p->parent_kind == K_BINARY)
            return 'v';
        if (index == 0 && p->parent_op >= BO_ASSIGN && p->parent_op < BO_COMMA)
            return 'm';
        return 'r';
    case K_UNARY:
        if (p->parent_op >= UO_POSTINC && p->parent_op <= UO_PREDEC)
            return 'm';
        if (p->parent_op == UO_ADDROF)
            return 'a';
        return p->parent_op == UO_DEREF ? through(p->pmode) : 'r';
    case K_SUBSCRIPT:
        return index == 0 ? through(p->pmode) : 'r';
    case K_MEMBER_REF:
        return through(p->pmode);
    case K_UNEXPOSED_EXPR: case K_PAREN: case K_CSTYLE_CAST:
        return p->pmode;
    case K_CALL:
        return index > 0 ? 'c' : 'r';
    default:
        return 'r';
    }
}

static unsigned char param_use_bit(char m)
{
    switch (m) {
    case 'W': return U_WRITE;
    case 'M': return U_MODIFY;
    case 'v': case 'm': return U_VAR;
    case 'a': return U_ADDR;
    case 'c': return 0;        /* an A record says where it goes */
    default: return U_READ;
    }
}

/* An argument without the implicit conversions, parentheses and casts around it (the same
 * wrappers param_mode sees through); *addr is set when a '&' was taken off too. */
static CXCursor strip_argument(CXCursor c, int *addr)
{
    *addr = 0;
    for (int depth = 0; depth < 32; depth++) {
        int kind = kind_of(c);
        if (kind == K_UNARY && !*addr && clang_getCursorUnaryOperatorKind(c) == UO_ADDROF)
            *addr = 1;
        else if (kind != K_UNEXPOSED_EXPR && kind != K_PAREN && kind != K_CSTYLE_CAST)
            return c;
        struct children ch = children_of(c);
        if (ch.n == 0)
            return c;
        c = ch.last;
    }
    return c;
}

/* A records for a call; callee is the function it calls directly, null for an indirect call. */
static void visit_call_args(const struct body *b, CXCursor call, CXCursor callee)
{
    struct out *o = &b->w->out;
    int n = clang_Cursor_getNumArguments(call);
    for (int i = 0; i < n; i++) {
        CXCursor arg = clang_Cursor_getArgument(call, (unsigned)i);
        int addr;
        CXCursor e = strip_argument(arg, &addr);
        if (kind_of(e) != K_DECL_REF)
            continue;
        CXCursor ref = clang_getCursorReferenced(e);
        if (is_null(ref))
            continue;
        int kind = kind_of(ref);
        int param = kind == K_PARM && !addr ? param_index(b->params, ref) : -1;
        if (param < 0 && kind != K_FUNCTION)
            continue;
        out_holder(b, "A");
        if (!is_null(callee)) {
            out_usr(o, callee);
            out_str(o, clang_getCursorSpelling(callee));
        } else {
            out_field(o, "-");
            out_field(o, "-");
        }
        out_num(o, i);
        if (param >= 0) {
            out_field(o, "p");
            out_num(o, param);
        } else {
            out_field(o, "f");
            out_usr(o, ref);
        }
        out_location(b->w, clang_getCursorLocation(arg));
        out_end(o);
    }
}

/* Returned calls (X records): `return f(…)`, and `return v` for a local variable v that was
 * initialised or assigned with a call's result; each such call is reported once per holder. */

struct local_call {
    CXCursor var;               /* the local variable */
    CXCursor call;              /* a call whose result was stored in it */
    int returned;               /* already reported */
};

struct returns {
    struct local_call *items;
    size_t n, cap;
};

static void returns_add(struct returns *r, CXCursor var, CXCursor call)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct local_call *p = realloc(r->items, cap * sizeof *p);
        if (!p)
            return;
        r->items = p;
        r->cap = cap;
    }
    r->items[r->n].var = var;
    r->items[r->n].call = call;
    r->items[r->n].returned = 0;
    r->n++;
}

static int is_local_var(CXCursor c)
{
    if (kind_of(c) != K_VAR)
        return 0;
    int parent = kind_of(clang_getCursorSemanticParent(c));
    return parent == K_FUNCTION;
}

static CXCursor direct_call_of(CXCursor e)
{
    int addr;
    e = strip_argument(e, &addr);
    if (!addr && kind_of(e) == K_CALL && !is_null(called_function(e)))
        return e;
    return NULL_CURSOR;
}

static void out_returned(const struct body *b, CXCursor call)
{
    struct out *o = &b->w->out;
    CXCursor callee = called_function(call);
    out_holder(b, "X");
    out_usr(o, callee);
    out_str(o, clang_getCursorSpelling(callee));
    out_location(b->w, clang_getCursorLocation(call));
    out_end(o);
}

/* Notes what a return statement, a local variable's initialiser or an assignment to a local
 * variable says about returned calls.  Locals are met before the returns that use them. */
static void visit_returns(const struct body *b, CXCursor c, int kind)
{
    struct returns *r = b->returns;
    if (!r)
        return;
    if (kind == K_VAR && is_local_var(c)) {
        struct children init = children_of(c);
        CXCursor call = init.n == 0 ? NULL_CURSOR : direct_call_of(init.last);
        if (!is_null(call))
            returns_add(r, c, call);
    } else if (kind == K_BINARY && clang_getCursorBinaryOperatorKind(c) == BO_ASSIGN) {
        struct children t = children_of(c);
        int addr = 0;
        CXCursor l = t.n == 2 ? strip_argument(t.first, &addr) : NULL_CURSOR;
        if (t.n == 2 && !addr && kind_of(l) == K_DECL_REF) {
            CXCursor var = clang_getCursorReferenced(l);
            CXCursor call = direct_call_of(t.last);
            if (is_local_var(var) && !is_null(call))
                returns_add(r, var, call);
        }
    } else if (kind == K_RETURN) {
        struct children ch = children_of(c);
        if (ch.n == 0)
            return;
        CXCursor value = ch.last;
        CXCursor call = direct_call_of(value);
        if (!is_null(call)) {
            out_returned(b, call);
            return;
        }
        int addr;
        CXCursor e = strip_argument(value, &addr);
        if (addr || kind_of(e) != K_DECL_REF)
            return;
        CXCursor var = clang_getCursorReferenced(e);
        for (size_t i = 0; i < r->n; i++)
            if (!r->items[i].returned && clang_equalCursors(r->items[i].var, var)) {
                r->items[i].returned = 1;
                out_returned(b, r->items[i].call);
            }
    }
}

static int body_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    struct frames *fs = data;
    while (fs->top->up && !same_cursor(fs->top->node, parent))
        frame_pop(fs);                  /* the children of those nodes are done */
    struct body *p = &fs->top->child;
    int index = p->index++;
    if (p->direct_call && index == 0)
        return VISIT_CONTINUE;

    /* This child's context, from its parent. */
    struct body ctx = *p;
    ctx.mode = 'r';
    switch (p->parent_kind) {
    case K_FOR: case K_WHILE: case K_DO:
        ctx.loops++;
        break;
    case K_IF: case K_CONDITIONAL:
        ctx.branches += index > 0;      /* the condition always runs, an arm only sometimes */
        break;
    case K_CASE: case K_DEFAULT:
        ctx.branches++;
        break;
    case K_BINARY:
        if (p->parent_op >= BO_ASSIGN && p->parent_op < BO_COMMA && index == 0)
            ctx.mode = 'w';
        else if ((p->parent_op == BO_LAND || p->parent_op == BO_LOR) && index > 0)
            ctx.branches++;
        break;
    case K_COMPOUND_ASSIGN:
        if (index == 0)
            ctx.mode = 'w';
        break;
    case K_UNARY:
        if (p->parent_op >= UO_POSTINC && p->parent_op <= UO_PREDEC)
            ctx.mode = 'w';
        else if (p->parent_op == UO_ADDROF)
            ctx.mode = 'a';
        break;
    case K_UNEXPOSED_EXPR: case K_PAREN: case K_MEMBER_REF: case K_CSTYLE_CAST:
        ctx.mode = p->mode;             /* (g), g.x and casts write what they wrap */
        break;
    case K_SUBSCRIPT:
        if (index == 0)
            ctx.mode = p->mode;         /* writing a[i] writes a; i is only read */
        break;
    default:
        break;
    }

    ctx.pmode = param_mode(p, index);

    int kind = kind_of(c);
    char *own = NULL;
    ctx.dest = child_dest(p, index, c, kind, &own);
    if (kind == K_DECL_REF) {
        visit_ref(&ctx, c);
    } else if (kind < K_FIRST_REF || kind > K_LAST_REF) {
        char *callee_usr = NULL;
        CXCursor callee = NULL_CURSOR;
        if (kind == K_CALL) {
            callee = visit_call(&ctx, c, &callee_usr);
            visit_call_args(&ctx, c, callee);
        }
        if (kind == K_VAR || kind == K_BINARY || kind == K_RETURN)
            visit_returns(&ctx, c, kind);
        visit_value(&ctx, c, kind, callee);
        struct frame *f = body_enter(fs, &ctx, c, kind, callee, callee_usr);
        if (f) {
            f->callee_usr = callee_usr;     /* the children's context points to these */
            f->dest = own;
            return VISIT_RECURSE;
        }
        free(callee_usr);
    }
    free(own);
    return VISIT_CONTINUE;
}

/* Declarations: functions with their parameters, globals, structs with their fields. */

static int in_user_file(CXCursor c)
{
    /* The system header test first: most top-level declarations of a unit are the system
     * headers', and the file alone is asked for (a line number costs a search of the file's). */
    CXSourceLocation loc = clang_getCursorLocation(c);
    if (clang_Location_isInSystemHeader(loc))
        return 0;
    CXFile f;
    clang_getExpansionLocation(loc, &f, NULL, NULL, NULL);
    return f != NULL;
}

static void out_decl_head(struct walk *w, const char *tag, CXCursor c)
{
    out_field(&w->out, tag);
    out_usr(&w->out, c);
    out_str(&w->out, clang_getCursorSpelling(c));
    out_location(w, clang_getCursorLocation(c));
}

static void walk_holder_body(struct walk *w, CXCursor c, const char *holder)
{
    struct body b;
    memset(&b, 0, sizeof b);
    b.w = w;
    b.holder = holder;
    b.mode = 'r';
    b.pmode = 'r';
    b.parent_kind = kind_of(c);
    struct params ps = {NULL, NULL, 0};
    struct returns rs = {NULL, 0, 0};
    if (kind_of(c) == K_FUNCTION)
        b.returns = &rs;
    int n = kind_of(c) == K_FUNCTION ? clang_Cursor_getNumArguments(c) : 0;
    if (n > 0) {
        ps.cursors = calloc((size_t)n, sizeof *ps.cursors);
        ps.uses = calloc((size_t)n, 1);
        if (!ps.cursors || !ps.uses) {
            w->out.oom = 1;
            n = 0;
        }
        for (int i = 0; i < n; i++)
            ps.cursors[i] = clang_Cursor_getArgument(c, (unsigned)i);
        ps.n = n;
        b.params = &ps;
    }
    b.dest = DEST_NONE;
    char *slot = NULL;
    if (b.parent_kind == K_FUNCTION)
        b.returns_pointer = holds_function_pointers(clang_getCursorResultType(c));
    else if (holds_function_pointers(clang_getCursorType(c)))
        b.slot = slot = slot_name("v", holder, -1);     /* a global's initializer */
    struct frame bottom;
    memset(&bottom, 0, sizeof bottom);
    bottom.node = c;
    bottom.child = b;
    struct frames fs = {&bottom, NULL};
    clang_visitChildren(c, body_visit, &fs);
    while (fs.top != &bottom)
        frame_pop(&fs);
    while (fs.spare) {
        struct frame *f = fs.spare;
        fs.spare = f->up;
        free(f);
    }
    for (int i = 0; i < ps.n; i++) {
        static const char letters[] = "WMRVA";
        char uses[8];
        size_t k = 0;
        for (int bit = 0; bit < 5; bit++)
            if (ps.uses[i] & (1 << bit))
                uses[k++] = letters[bit];
        uses[k] = '\0';
        if (!k)
            continue;
        out_field(&w->out, "U");
        out_field(&w->out, holder);
        out_num(&w->out, i);
        out_field(&w->out, uses);
        out_end(&w->out);
    }
    free(ps.cursors);
    free(ps.uses);
    free(rs.items);
    free(slot);
}

static int has_annotations(CXCursor c);

/* A prototype in a header matters to this unit only if the unit defines the function, or the
 * prototype carries annotations; any other unit that uses it sees the same header.  Skipping the
 * rest keeps a big project header (Python.h …) from being repeated in every unit's facts. */
static int wanted_declaration(CXCursor c, int isdef)
{
    if (isdef || clang_Location_isFromMainFile(clang_getCursorLocation(c)))
        return 1;
    if (!is_null(clang_getCursorDefinition(c)))
        return 1;
    if (has_annotations(c))
        return 1;
    int n = clang_Cursor_getNumArguments(c);
    for (int i = 0; i < n; i++)
        if (has_annotations(clang_Cursor_getArgument(c, (unsigned)i)))
            return 1;
    return 0;
}

static void visit_function(struct walk *w, CXCursor c)
{
    struct out *o = &w->out;
    int isdef = clang_isCursorDefinition(c) != 0;
    if (!wanted_declaration(c, isdef))
        return;
    out_decl_head(w, "F", c);
    out_num(o, isdef);
    out_num(o, clang_getCursorLinkage(c));
    out_num(o, clang_Cursor_isVariadic(c));
    out_num(o, clang_Cursor_getStorageClass(c));
    out_type(o, clang_getCursorResultType(c));
    out_str(o, clang_getTypeSpelling(clang_getCanonicalType(clang_getCursorType(c))));
    out_annots(o, c);
    out_num(o, binding(c));
    out_end(o);
    int n = clang_Cursor_getNumArguments(c);
    for (int i = 0; i < n; i++) {
        CXCursor p = clang_Cursor_getArgument(c, (unsigned)i);
        out_field(o, "P");
        out_num(o, i);
        out_str(o, clang_getCursorSpelling(p));
        out_type(o, clang_getCursorType(p));
        out_annots(o, p);
        out_location(w, clang_getCursorLocation(p));
        CXFile f;
        unsigned line, col, off;
        clang_getExpansionLocation(clang_getRangeEnd(clang_getCursorExtent(p)), &f, &line, &col, &off);
        out_num(o, line);
        out_num(o, col);
        out_end(o);
    }
    if (isdef) {
        char *usr = usr_of(c);
        if (usr)
            walk_holder_body(w, c, usr);
        free(usr);
    }
}

static void visit_global(struct walk *w, CXCursor c)
{
    struct out *o = &w->out;
    out_decl_head(w, "G", c);
    /* `int x;` at file scope is a (tentative) definition, which libclang does not call one. */
    out_num(o, clang_isCursorDefinition(c) != 0 || clang_Cursor_getStorageClass(c) != 2);
    out_num(o, clang_getCursorLinkage(c));
    out_type(o, clang_getCursorType(c));
    out_annots(o, c);
    out_end(o);
    /* An initializer may take functions' addresses (ops tables) or refer to other globals. */
    char *usr = usr_of(c);
    if (usr)
        walk_holder_body(w, c, usr);
    free(usr);
}

static int record_visit(CXCursor c, CXCursor parent, CXClientData data);

static void visit_record(struct walk *w, CXCursor c)
{
    if (!clang_isCursorDefinition(c))
        return;
    out_decl_head(w, "S", c);
    out_field(&w->out, kind_of(c) == K_UNION ? "U" : "S");
    out_end(&w->out);
    clang_visitChildren(c, record_visit, w);
}

static int record_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    struct walk *w = data;
    int kind = kind_of(c);
    if (kind == K_FIELD) {
        out_field(&w->out, "D");
        out_str(&w->out, clang_getCursorSpelling(c));
        out_type(&w->out, clang_getCursorType(c));
        out_annots(&w->out, c);
        CXFile f;
        unsigned line, col, off;
        clang_getExpansionLocation(clang_getCursorLocation(c), &f, &line, &col, &off);
        out_num(&w->out, line);
        out_num(&w->out, col);
        out_end(&w->out);
    }
    return VISIT_CONTINUE;
}

static int nested_records_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    int kind = kind_of(c);
    if (kind == K_STRUCT || kind == K_UNION) {
        visit_record(data, c);
        clang_visitChildren(c, nested_records_visit, data);
    }
    return VISIT_CONTINUE;
}

static int split_owns(struct walk *w, CXCursor c, int kind);
static void split_note_extent(struct walk *w, CXCursor c);

static int top_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    struct walk *w = data;
    int kind = kind_of(c);
    if (w->split)
        split_note_extent(w, c);
    if (kind != K_FUNCTION && kind != K_VAR && kind != K_STRUCT && kind != K_UNION)
        return VISIT_CONTINUE;
    if (!in_user_file(c))
        return VISIT_CONTINUE;
    if (w->split && !split_owns(w, c, kind))
        return VISIT_CONTINUE;
    switch (kind) {
    case K_FUNCTION:
        visit_function(w, c);
        break;
    case K_VAR:
        visit_global(w, c);
        break;
    default:
        visit_record(w, c);
        clang_visitChildren(c, nested_records_visit, w);
        break;
    }
    return VISIT_CONTINUE;
}

/* The walk's buffers, given up. */
static int walk_end(struct walk *w)
{
    usr_memo_free();
    free(w->files);
    free(w->file_ids);
    return out_finish(&w->out);
}

/* A walk begun, writing to fd; its files numbered from id_base. */
static void walk_begin(struct walk *w, int fd, unsigned id_base)
{
    memset(w, 0, sizeof *w);
    w->id_base = id_base;
    out_begin(&w->out, fd, id_base);
    if (!clang_Cursor_isNull(NULL_CURSOR) || !is_null(clang_getNullCursor()))
        w->out.err = EPROTO;            /* a libclang whose null cursor is not Index.h's: no walk */
}

/* Walks the translation unit, writing the records to fd.  Returns 0, -12 (ENOMEM) when memory
 * ran out, or -errno when a write failed. */
int qpm_walk(CXTranslationUnit tu, int fd)
{
    struct walk w;
    walk_begin(&w, fd, 0);
    clang_visitChildren(clang_getTranslationUnitCursor(tu), top_visit, &w);
    return walk_end(&w);
}

/* A field with the record separators and the backslash escaped (see E records). */
static void out_escaped(struct out *o, CXString s)
{
    const char *t = clang_getCString(s);
    size_t n = t ? strlen(t) : 0, k = 0;
    char *e = malloc(2 * n + 1);
    if (!e) {
        o->oom = 1;
        clang_disposeString(s);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char c = t[i], x = c == '\\' ? '\\' : c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : 0;
        if (x) {
            e[k++] = '\\';
            c = x;
        }
        e[k++] = c;
    }
    out_bytes(o, e, k);
    free(e);
    clang_disposeString(s);
}

/* A source location as three fields: file ("" when none), line, column. */
static void out_place(struct out *o, CXSourceLocation loc)
{
    CXFile f;
    unsigned line, col, off;
    clang_getExpansionLocation(loc, &f, &line, &col, &off);
    if (f)
        out_str(o, clang_getFileName(f));
    else
        out_field(o, "");
    out_num(o, f ? line : 0);
    out_num(o, f ? col : 0);
}

static const char *split_class(const struct split *sp, CXSourceLocation loc);

static void out_diagnostics(struct out *o, CXTranslationUnit tu, const struct split *sp)
{
    unsigned n = clang_getNumDiagnostics(tu);
    for (unsigned i = 0; i < n; i++) {
        CXDiagnostic d = clang_getDiagnostic(tu, i);
        out_field(o, "E");
        out_num(o, clang_getDiagnosticSeverity(d));
        out_place(o, clang_getDiagnosticLocation(d));
        out_escaped(o, clang_getDiagnosticSpelling(d));
        out_str(o, clang_getDiagnosticOption(d, NULL));
        if (sp)
            out_field(o, split_class(sp, clang_getDiagnosticLocation(d)));
        out_end(o);
        unsigned fixits = clang_getDiagnosticNumFixIts(d);
        for (unsigned k = 0; k < fixits; k++) {
            CXSourceRange r;
            CXString text = clang_getDiagnosticFixIt(d, k, &r);
            CXFile f0, f1;
            unsigned l0, c0, l1, c1, off;
            clang_getExpansionLocation(clang_getRangeStart(r), &f0, &l0, &c0, &off);
            clang_getExpansionLocation(clang_getRangeEnd(r), &f1, &l1, &c1, &off);
            if (!f0 || l0 != l1 || c0 != c1) {         /* only insertions at one place */
                clang_disposeString(text);
                continue;
            }
            out_field(o, "K");
            out_place(o, clang_getRangeStart(r));
            out_escaped(o, text);
            out_end(o);
        }
        clang_disposeDiagnostic(d);
    }
}

static void include_visit(CXFile f, CXSourceLocation *stack, unsigned depth, CXClientData data)
{
    (void)stack;
    if (depth > 0) {            /* the main file is the one at depth 0 */
        CXString name = clang_getFileName(f);
        const char *path = clang_getCString(name);
        struct stat st;
        out_field(data, "H");
        out_field(data, path);
        if (path && stat(path, &st) == 0) {
            out_num(data, (long long)st.st_size);
            out_num(data, (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
        } else {
            out_field(data, "-");
            out_field(data, "-");
        }
        out_end(data);
        clang_disposeString(name);
    }
}

/* The files the unit read, but its own, as H records: each file's path, size and modification
 * time. */
static void out_inclusions(struct out *o, CXTranslationUnit tu)
{
    clang_getInclusions(tu, include_visit, o);
}

static CXIndex parse_index;     /* one per process, made on first use */

/* The time the last parse took (qpm_parse_walk, qpm_parse_only), in nanoseconds: for the
 * benchmarks, which report the parse apart from the walk. */
unsigned long long qpm_parse_ns;

struct unsaved {             /* Index.h's struct CXUnsavedFile */
    const char *name;
    const char *contents;
    unsigned long length;
};

/* The file parsed with the arguments (function bodies included, as clang_parseTranslationUnit
 * with no options), as these contents when given, or NULL. */
static CXTranslationUnit parse_with(const char *path, const char *const *argv, int argc, struct unsaved *as,
                                    unsigned options)
{
    if (!parse_index)
        parse_index = clang_createIndex(0, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CXTranslationUnit tu = NULL;
    if (!parse_index || clang_parseTranslationUnit2(parse_index, path, argv, argc, as, as != NULL, options, &tu))
        tu = NULL;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    qpm_parse_ns = (unsigned long long)(t1.tv_sec - t0.tv_sec) * 1000000000ull + (unsigned long long)t1.tv_nsec -
                   (unsigned long long)t0.tv_nsec;
    return tu;
}

static CXTranslationUnit parse_as(const char *path, const char *const *argv, int argc, struct unsaved *as)
{
    return parse_with(path, argv, argc, as, 0);
}

static CXTranslationUnit parse(const char *path, const char *const *argv, int argc)
{
    return parse_as(path, argv, argc, NULL);
}

/* The parse alone (the floor the benchmarks measure the analysis against): 0 and the number of
 * its diagnostics of severity error or fatal in *errors, or 1 when the file could not be parsed. */
int qpm_parse_only(const char *path, const char *const *argv, int argc, int *errors)
{
    CXTranslationUnit tu = parse(path, argv, argc);
    if (!tu)
        return 1;
    unsigned n = clang_getNumDiagnostics(tu);
    *errors = 0;
    for (unsigned i = 0; i < n; i++) {
        CXDiagnostic d = clang_getDiagnostic(tu, i);
        *errors += clang_getDiagnosticSeverity(d) >= 3;
        clang_disposeDiagnostic(d);
    }
    clang_disposeTranslationUnit(tu);
    return 0;
}

/* Set (to 1) in a process that ends as soon as its walk has been read (a forked child): it
 * leaves what the parse made to its exit, which unmaps it after the reader has the facts, instead
 * of freeing it piece by piece before (sqlite3.c's half: 1.7 ms). */
int qpm_exiting;

/* Writes the unit's diagnostics, its walk and the files it included to fd (qpm_parse_walk's
 * records, of a parse already made).  Returns qpm_walk's results. */
int qpm_walk_unit(CXTranslationUnit tu, int fd)
{
    struct walk w;
    walk_begin(&w, fd, 0);
    out_diagnostics(&w.out, tu, NULL);
    clang_visitChildren(clang_getTranslationUnitCursor(tu), top_visit, &w);
    out_inclusions(&w.out, tu);
    return walk_end(&w);            /* the records written first: freeing the parse is not the reader's wait */
}

/* Parses the file (as parse), then writes the unit's diagnostics, its walk and the files it
 * included to fd.  Returns qpm_walk's results, or 1 when libclang could not parse the file. */
int qpm_parse_walk(const char *path, const char *const *argv, int argc, int fd)
{
    CXTranslationUnit tu = parse(path, argv, argc);
    if (!tu)
        return 1;
    int rc = qpm_walk_unit(tu, fd);
    if (!qpm_exiting)
        clang_disposeTranslationUnit(tu);
    return rc;
}

/* A parse to be kept and parsed again (a server's keeper, keeper.py): libclang keeps what the
 * file's includes and macros before its first declaration made (its preamble), precompiled, from
 * the first reparse on, and parses only the rest of the file again while that part and the
 * headers it read are unchanged.  The translation unit, or NULL. */
CXTranslationUnit qpm_keep_parse(const char *path, const char *const *argv, int argc)
{
    enum { PRECOMPILED_PREAMBLE = 0x04 };
    return parse_with(path, argv, argc, NULL, PRECOMPILED_PREAMBLE);
}

/* The kept unit parsed again from its files: 0, or libclang's error (the unit is then to be
 * disposed of, and parsed anew). */
int qpm_keep_reparse(CXTranslationUnit tu)
{
    return clang_reparseTranslationUnit(tu, 0, NULL, 0);
}

/* The files the unit read, as a walk of H records alone (what qpm_walk_unit writes of them): a
 * kept parse's from its first parse, when clang_getInclusions still names every one (once the
 * preamble is made, it leaves out some of the files the preamble read; keeper.py). */
int qpm_inclusions(CXTranslationUnit tu, int fd)
{
    struct walk w;
    walk_begin(&w, fd, 0);
    out_inclusions(&w.out, tu);
    return walk_end(&w);
}

void qpm_keep_dispose(CXTranslationUnit tu)
{
    clang_disposeTranslationUnit(tu);
}


/*
 * The parse split by function bodies.  Most of a big file's parse is its function bodies, and a
 * body says nothing to the rest of the file: two processes can each parse the whole file with
 * the other's half of the bodies blanked, at the same time, and their walks put together say
 * what the whole file's walk says (qpm_parse_walk_split; the analysis puts them together, see
 * unit.py).
 *
 * The bodies are found by a lexical scan (qpm_bodies): a '{' at brace depth 0 that follows a ')'
 * (the parameter list, or an attribute's), to its matching '}', unless a ';', ',' or ')' follows
 * it (a compound literal at file scope), or the ')' closes a struct's, union's or enum's
 * attributes (`struct __attribute__((packed)) {`).  Comments, string and character literals and
 * preprocessor directive lines (with their continuations, and a comment begun on one) are
 * skipped; each branch of an #if starts from the depth its #if had, and after #endif the scan
 * goes on from the depth the first branch ended at; code under `#ifdef __cplusplus` (or `#if
 * defined(__cplusplus)`) is skipped as not C; a body that #if branches each begin with a '{' of
 * their own is left out, and so is one that includes a file (which its blanking would keep, and
 * whose code would then stand outside any function).  So a body made by a macro is not found,
 * and a span in an inactive #if branch may be: each process checks every span against its parse.
 *
 * Blanking a body replaces every character between its braces with a space, but newlines and
 * the directive lines inside it: every place in the file stays where it was, and every macro is
 * defined where it was.
 */
#define MAX_IF 512

/* What the scan asks of a character, looked up: white space (or a backslash, which continues a
 * line), a character of an identifier, one that can begin it. */
enum { C_SPACE = 1, C_IDENT = 2, C_IDENT_START = 4, C_BRACED = 8, C_TOKEN_END = 16 };
static const unsigned char char_class[256] = {
    [' '] = C_SPACE, ['\t'] = C_SPACE, ['\r'] = C_SPACE, ['\f'] = C_SPACE, ['\v'] = C_SPACE, ['\\'] = C_SPACE,
    ['0' ... '9'] = C_IDENT,
    ['a' ... 'z'] = C_IDENT | C_IDENT_START, ['A' ... 'Z'] = C_IDENT | C_IDENT_START, ['_'] = C_IDENT | C_IDENT_START,
    /* What the scan looks at inside braces, where only braces, literals, comments and the ends of
     * lines (where a directive may begin) count. */
    ['{'] = C_BRACED, ['}'] = C_BRACED, ['"'] = C_BRACED | C_TOKEN_END, ['\''] = C_BRACED | C_TOKEN_END,
    ['/'] = C_BRACED | C_TOKEN_END, ['\n'] = C_BRACED | C_TOKEN_END,
};

/* Whether the newline at i ends a line that a backslash continues (clang's rule: the backslash
 * may be followed by spaces, tabs or a carriage return). */
static int continued(const char *s, size_t i)
{
    while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t' || s[i - 1] == '\r'))
        i--;
    return i > 0 && s[i - 1] == '\\';
}

/* The end of the logical line at i: the offset of the newline that ends it (backslash
 * continuations included), or n. */
static size_t line_end(const char *s, size_t n, size_t i)
{
    while (i < n) {
        const char *nl = memchr(s + i, '\n', n - i);
        if (!nl)
            return n;
        i = (size_t)(nl - s);
        if (!continued(s, i))
            return i;
        i++;
    }
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
        for (i += 2; i + 1 < n; i++) {
            const char *star = memchr(s + i, '*', n - 1 - i);
            if (!star)
                return n;
            i = (size_t)(star - s);
            if (s[i + 1] == '/')
                return i + 2;
        }
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

/* The offset of the first character from i that is not white space, a line's end or a backslash
 * (a line's continuation), or n; *line_start says whether a logical line begins there. */
static inline __attribute__((always_inline)) size_t skip_space(const char *s, size_t n, size_t i,
                                                              int *line_start)
{
    for (; i < n; i++) {
        char c = s[i];
        if (c == '\n')
            *line_start = *line_start || !continued(s, i);
        else if (!(char_class[(unsigned char)c] & C_SPACE))
            break;
    }
    return i;
}

/* i at a comment: the offset after it.  What follows a comment over lines begins its line. */
static size_t past_comment(const char *s, size_t n, size_t i, int *line_start)
{
    size_t next = comment_end(s, n, i);
    if (memchr(s + i, '\n', next - i))
        *line_start = 1;
    return next;
}

/* Blanks buf from from to to (inside a body's braces): every character a space but newlines and
 * the directive lines. */
static void blank_span(char *buf, size_t from, size_t to)
{
    const char *s = buf;
    size_t i = from;
    int line_start = 0;
    while ((i = skip_space(s, to, i, &line_start)) < to) {
        char c = s[i];
        if (line_start && c == '#') {
            i = directive_end(s, to, i);
            continue;
        }
        size_t next;
        if (is_comment(s, to, i)) {
            next = past_comment(s, to, i, &line_start);
        } else if (c == '"' || c == '\'') {
            next = literal_end(s, to, i);
            line_start = 0;
        } else {
            /* The rest of the line up to a literal, a comment or a '/' (no directive can begin
             * after its first character): each character a space, but white space and backslashes. */
            buf[i] = ' ';            /* c: no space, and no literal or comment ('/' a division) */
            for (next = i + 1; next < to && !(char_class[(unsigned char)s[next]] & C_TOKEN_END); next++)
                buf[next] = char_class[(unsigned char)s[next]] & C_SPACE ? s[next] : ' ';
            line_start = 0;
            i = next;
            continue;
        }
        if (next > to)              /* a literal's escape at the very end: not past the span */
            next = to;
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

static inline int is_ident_start(char c)
{
    return char_class[(unsigned char)c] & C_IDENT_START;
}

static inline int is_ident_char(char c)
{
    return char_class[(unsigned char)c] & C_IDENT;
}

/* Whether the last identifiers (ident, oldest first) are `struct|union|enum [tag] ATTRIBUTE`,
 * ATTRIBUTE one of the spellings that put attributes on a type: what a '(' after them opens. */
static int type_attributes_before(const char *s, size_t ident[3][2])
{
    static const char *const attributes[] = {"__attribute__", "__attribute", "__declspec", "_Alignas", "alignas"};
    static const char *const kinds[] = {"struct", "union", "enum"};
    int attribute = 0;
    for (size_t k = 0; k < sizeof attributes / sizeof *attributes; k++)
        attribute |= word_is(s, ident[2][0], ident[2][1], attributes[k]);
    if (!attribute)
        return 0;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++)
        if (word_is(s, ident[1][0], ident[1][1], kinds[k]) || word_is(s, ident[0][0], ident[0][1], kinds[k]))
            return 1;
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
    int in_body = 0, ambiguous = 0, line_start = 1;
    char prev = 0;
    /* The last three identifiers (offset, length), and for the parentheses open at brace depth 0
     * whether the outermost one follows `struct|union|enum [tag] __attribute__` (or __declspec,
     * alignas): its ')' then closes a struct's attributes, and a '{' after it opens no body. */
    size_t ident[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    long parens = 0;
    int type_attributes = 0, after_type_attributes = 0;
    struct { long depth, first_end; int cplusplus; } ifs[MAX_IF];
    int nifs = 0, lost = 0;          /* lost: #if levels deeper than MAX_IF, not followed */
    while ((i = skip_space(s, n, i, &line_start)) < n) {
        char c = s[i];
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
            } else if (in_body && (word_is(s, word, wlen, "include") || word_is(s, word, wlen, "include_next") ||
                                   word_is(s, word, wlen, "import") || word_is(s, word, wlen, "embed"))) {
                /* A file put into a body (a table of cases, QuickJS's opcodes): blanking keeps
                 * directive lines, and this one would bring the body's code back, outside of
                 * any function.  The body is left alone, parsed by both halves. */
                ambiguous = 1;
            }
            i = end;
            continue;
        }
        if (depth > 0 && !(char_class[(unsigned char)c] & C_BRACED)) {
            /* Inside braces, up to what counts there (C_BRACED): the rest of a line (no
             * directive begins on it after c), whose identifiers, parentheses and other
             * characters say nothing of where a body is (see the '}' that ends the braces). */
            for (i++; i < n && !(char_class[(unsigned char)s[i]] & C_BRACED); i++)
                ;
            line_start = 0;
            continue;
        }
        size_t next;
        if (is_comment(s, n, i)) {
            next = past_comment(s, n, i, &line_start);
        } else if (c == '"' || c == '\'') {
            next = literal_end(s, n, i);
            prev = c;
            line_start = 0;
        } else if (is_ident_start(c) && (i == 0 || !is_ident_char(s[i - 1]))) {
            next = i + 1;
            while (next < n && is_ident_char(s[next]))
                next++;
            ident[0][0] = ident[1][0];
            ident[0][1] = ident[1][1];
            ident[1][0] = ident[2][0];
            ident[1][1] = ident[2][1];
            ident[2][0] = i;
            ident[2][1] = next - i;
            prev = s[next - 1];
            line_start = 0;
        } else {
            next = i + 1;
            line_start = 0;
            if (c == '(' && depth == 0) {
                if (parens++ == 0)
                    type_attributes = type_attributes_before(s, ident);
            } else if (c == ')' && depth == 0 && parens > 0) {
                if (--parens == 0)
                    after_type_attributes = type_attributes;
            }
            if (c == '{') {
                if (depth == 0 && prev == ')' && after_type_attributes) {
                    /* `struct __attribute__((packed)) {`: a struct, not a body. */
                } else if (depth == 0 && prev == ')') {
                    /* A second '{' for the same body: #if branches that each begin it (a
                     * function whose head differs by platform).  Which one opens it is the
                     * preprocessor's to say: the body is left alone. */
                    ambiguous |= in_body;
                    in_body = 1;
                    start = i;
                }
                depth++;
            } else if (c == '}') {
                depth = depth > 0 ? depth - 1 : 0;
                if (depth == 0)     /* the identifiers before a '(' from here: none inside the braces */
                    memset(ident, 0, sizeof ident);
                if (depth == 0 && in_body) {
                    char after = next_significant(s, n, next);
                    if (!ambiguous && after != ';' && after != ',' && after != ')') {
                        if (found < max) {
                            spans[2 * found] = start;
                            spans[2 * found + 1] = i;
                        }
                        if (found >= blank_from && found < blank_to)
                            blank_span(buf, start + 1, i);
                        found++;
                    }
                    in_body = ambiguous = 0;
                }
            }
            if (c != ')' && c != '(')
                after_type_attributes = 0;
            prev = c;
        }
        i = next;
    }
    return (long)found;
}

struct split {
    size_t *spans;          /* the bodies found: the offsets of each '{' and its '}' */
    size_t n, cut;          /* how many; the first of the second half */
    int half;               /* the half whose bodies this process keeps */
    unsigned char *matched; /* each span: the body of a function definition of this parse */
    size_t *extents;        /* the file's top-level declarations: start and end offsets */
    size_t nextents, cap;
    long ordinal;           /* the declarations the walk has met (see split_owns) */
    CXFile file;            /* the file split */
    int oom;
};

/* The offset of loc's expansion in the file split, or -1 when it is elsewhere. */
static long split_offset(const struct split *sp, CXSourceLocation loc)
{
    CXFile f;
    unsigned off;
    clang_getExpansionLocation(loc, &f, NULL, NULL, &off);
    return f && (f == sp->file || clang_File_isEqual(f, sp->file)) ? (long)off : -1;
}

/* The span holding offset off, or -1. */
static long span_at(const struct split *sp, size_t off)
{
    size_t lo = 0, hi = sp->n;
    while (lo < hi) {           /* the first span starting after off */
        size_t mid = (lo + hi) / 2;
        if (sp->spans[2 * mid] <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && off <= sp->spans[2 * (lo - 1) + 1] ? (long)lo - 1 : -1;
}

/* Where a diagnostic is: in a body of half 0 ("0") or 1 ("1"), or elsewhere ("-"). */
static const char *split_class(const struct split *sp, CXSourceLocation loc)
{
    long off = split_offset(sp, loc);
    long k = off < 0 ? -1 : span_at(sp, (size_t)off);
    return k < 0 ? "-" : (size_t)k < sp->cut ? "0" : "1";
}

/* The offsets of the expansions of a range's ends in the file split: 0 when either is elsewhere. */
static int main_file_range(const struct split *sp, CXSourceRange r, size_t *start, size_t *end)
{
    long a = split_offset(sp, clang_getRangeStart(r)), b = split_offset(sp, clang_getRangeEnd(r));
    if (a < 0 || b < 0)
        return 0;
    *start = (size_t)a;
    *end = (size_t)b;
    return 1;
}

static void split_note_extent(struct walk *w, CXCursor c)
{
    struct split *sp = w->split;
    size_t a, b;
    if (!main_file_range(sp, clang_getCursorExtent(c), &a, &b))
        return;
    if (sp->nextents == sp->cap) {
        size_t cap = sp->cap ? 2 * sp->cap : 1024;
        size_t *more = realloc(sp->extents, 2 * cap * sizeof *more);
        if (!more) {
            sp->oom = 1;
            return;
        }
        sp->extents = more;
        sp->cap = cap;
    }
    sp->extents[2 * sp->nextents] = a;
    sp->extents[2 * sp->nextents + 1] = b;
    sp->nextents++;
}

static int last_child_visit(CXCursor c, CXCursor parent, CXClientData data)
{
    (void)parent;
    *(CXCursor *)data = c;
    return VISIT_CONTINUE;
}

/* Whether this process writes the top-level declaration c (of a kind the walk writes): a function
 * definition whose body is a span belongs to the process that keeps that span, anything else to
 * the first half's.  What it writes of it follows a B record with its number among those. */
static int split_owns(struct walk *w, CXCursor c, int kind)
{
    struct split *sp = w->split;
    long number = sp->ordinal++;
    int owner = 0;
    if (kind == K_FUNCTION && clang_isCursorDefinition(c)) {
        CXCursor body = NULL_CURSOR;
        size_t a, b;
        clang_visitChildren(c, last_child_visit, &body);
        if (kind_of(body) == K_COMPOUND_STMT && main_file_range(sp, clang_getCursorExtent(body), &a, &b)) {
            long k = span_at(sp, a);
            if (k >= 0 && sp->spans[2 * k] == a && sp->spans[2 * k + 1] + 1 == b) {
                sp->matched[k] = 1;
                owner = (size_t)k >= sp->cut;
            }
        }
    }
    if (owner != sp->half)
        return 0;
    out_field(&w->out, "B");
    out_num(&w->out, number);
    out_end(&w->out);
    return 1;
}

static int by_start(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return a < b ? -1 : a > b;
}

/* Whether every span is the body of a function definition of this parse, or lies where no
 * top-level declaration of the file does (code of an inactive #if branch, where blanking changes
 * nothing). */
static int split_verified(struct split *sp)
{
    size_t matched = 0;
    for (size_t k = 0; k < sp->n; k++)
        matched += sp->matched[k];
    if (sp->oom || !sp->file || matched == 0)  /* the file not found in its parse: nothing checked */
        return 0;
    qsort(sp->extents, sp->nextents, 2 * sizeof *sp->extents, by_start);
    for (size_t i = 1; i < sp->nextents; i++)      /* each end: the furthest so far */
        if (sp->extents[2 * i + 1] < sp->extents[2 * i - 1])
            sp->extents[2 * i + 1] = sp->extents[2 * i - 1];
    for (size_t k = 0; k < sp->n; k++) {
        if (sp->matched[k])
            continue;
        size_t a = sp->spans[2 * k], b = sp->spans[2 * k + 1], lo = 0, hi = sp->nextents;
        while (lo < hi) {       /* the declarations starting at or before b */
            size_t mid = (lo + hi) / 2;
            if (sp->extents[2 * mid] <= b)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo > 0 && sp->extents[2 * (lo - 1) + 1] >= a)
            return 0;
    }
    return 1;
}

/* The first place of what (whose first character is its anchor's) in buf, or NULL. */
static const char *find_text(const char *buf, size_t len, const char *what)
{
    size_t k = strlen(what);
    for (const char *p = buf; (p = memchr(p, what[0], len - (size_t)(p - buf))) != NULL; p++)
        if ((size_t)(buf + len - p) >= k && memcmp(p, what, k) == 0)
            return p;
    return NULL;
}

/* Whether text holds what a split parse would get wrong: `__COUNTER__` (its values depend on
 * every expansion before, the blanked bodies' too), or a `_Pragma` that sets diagnostics where
 * the text pushes and pops none (what it sets would hold for the bodies after a blanked one that
 * expands it, in one half and not the other; a push and pop pair, as Python.h's macros have it,
 * keeps it to the body).  A file's own text, or a header's, whose macros the bodies may expand. */
static int split_risk(const char *text, size_t len)
{
    for (const char *p = text; (p = find_text(p, len - (size_t)(p - text), "COUNTER__")) != NULL; p++)
        if (p - text >= 2 && p[-1] == '_' && p[-2] == '_')
            return 1;
    for (const char *p = text; (p = find_text(p, len - (size_t)(p - text), "Pragma")) != NULL; p++) {
        size_t rest = len - (size_t)(p - text);
        if (p > text && p[-1] == '_' && find_text(p, rest < 96 ? rest : 96, "diagnostic"))
            return !find_text(text, len, "diagnostic push");
    }
    return 0;
}

struct risk {
    CXTranslationUnit tu;
    int found;
};

static void risk_visit(CXFile f, CXSourceLocation *stack, unsigned depth, CXClientData data)
{
    (void)stack;
    struct risk *r = data;
    size_t size;
    const char *text = depth > 0 && !r->found ? clang_getFileContents(r->tu, f, &size) : NULL;
    if (text && split_risk(text, size))
        r->found = 1;
}

/* Parses the file with the bodies of the other half blanked (half: 0 or 1, the half this
 * process keeps), then writes the diagnostics (each E record with one more field, the half of
 * the body it is in: see split_class), the records of the top-level declarations it owns (see
 * split_owns), and, for half 0, the files the unit included.  File numbers start at 0 in half 0
 * and at 1 << 24 in half 1.  Returns 0; 1 when libclang could not parse the file; 2 when the
 * file is not to be split (fewer than two bodies found; `__COUNTER__`, or a `_Pragma` about
 * diagnostics with no push, in it or in a file it includes: see split_risk; an error in the parse; or a span
 * that is neither a body nor inactive code: see split_verified), the records written then being
 * of no use; or qpm_walk's errors. */
int qpm_parse_walk_split(const char *path, const char *const *argv, int argc, int fd, int half)
{
    /* The file read whole into a buffer of its size (one more byte, to see its end), grown only
     * if it grew meanwhile. */
    int in = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0)
        return 2;
    char *buf = NULL;
    size_t len = 0, cap = fstat(in, &st) == 0 && st.st_size > 0 ? (size_t)st.st_size + 1 : 1 << 20;
    ssize_t got;
    do {
        if (!buf || len == cap) {
            char *more = realloc(buf, cap = buf ? 2 * cap : cap);
            if (!more) {
                free(buf);
                close(in);
                return -12;
            }
            buf = more;
        }
        got = read(in, buf + len, cap - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            close(in);
            return 2;
        }
        len += (size_t)got;
    } while (got > 0);
    close(in);
    struct split sp;
    memset(&sp, 0, sizeof sp);
    sp.half = half;
    /* Room for a body at each '{' (counted, not scanned: the scan below is the only one). */
    size_t braces = 0;
    for (const char *p = buf; (p = memchr(p, '{', len - (size_t)(p - buf))) != NULL; p++)
        braces++;
    sp.spans = malloc(2 * (braces + 1) * sizeof *sp.spans);
    sp.matched = calloc(braces + 1, 1);
    if (!sp.spans || !sp.matched) {
        free(buf);
        free(sp.spans);
        free(sp.matched);
        return -12;
    }
    sp.n = split_risk(buf, len) ? 0 : (size_t)qpm_bodies(buf, len, sp.spans, braces, 0, 0);
    if (sp.n < 2) {
        free(buf);
        free(sp.spans);
        free(sp.matched);
        return 2;
    }
    size_t total = 0, acc = 0;
    for (size_t k = 0; k < sp.n; k++)
        total += sp.spans[2 * k + 1] - sp.spans[2 * k];
    for (sp.cut = 0; sp.cut < sp.n && 2 * acc < total; sp.cut++)
        acc += sp.spans[2 * sp.cut + 1] - sp.spans[2 * sp.cut];
    for (size_t k = half ? 0 : sp.cut; k < (half ? sp.cut : sp.n); k++)
        blank_span(buf, sp.spans[2 * k] + 1, sp.spans[2 * k + 1]);
    struct unsaved as = {path, buf, len};
    CXTranslationUnit tu = parse_as(path, argv, argc, &as);
    int rc = tu ? 0 : 1;
    for (unsigned i = 0, nd = tu ? clang_getNumDiagnostics(tu) : 0; i < nd && rc == 0; i++) {
        CXDiagnostic d = clang_getDiagnostic(tu, i);
        if (clang_getDiagnosticSeverity(d) >= 3)
            rc = 2;
        clang_disposeDiagnostic(d);
    }
    if (rc == 0) {
        struct risk r = {tu, 0};
        clang_getInclusions(tu, risk_visit, &r);
        if (r.found)
            rc = 2;
    }
    if (rc == 0) {
        struct walk w;
        sp.file = clang_getFile(tu, path);
        walk_begin(&w, fd, half ? 1u << 24 : 0);
        w.split = &sp;
        out_diagnostics(&w.out, tu, &sp);
        clang_visitChildren(clang_getTranslationUnitCursor(tu), top_visit, &w);
        if (half == 0)
            out_inclusions(&w.out, tu);
        int verified = split_verified(&sp);
        rc = walk_end(&w);
        if (rc == 0 && !verified)
            rc = 2;
    }
    if (tu && !qpm_exiting)
        clang_disposeTranslationUnit(tu);
    free(sp.spans);
    free(sp.matched);
    free(sp.extents);
    free(buf);
    return rc;
}
