"""The parse split by function bodies (walker.c, unit._walk_split): the bodies of a C file's
functions found by a lexical scan, blanked so that the file still compiles with every place and
every macro where it was, and a unit parsed alone by two processes, each keeping half of its
bodies, whose facts are those of the whole file's parse."""

import ctypes
import os
import subprocess

import pytest

from qtool.analyzer import clang_env, unit


@pytest.fixture(scope="module")
def scan():
    lib = clang_env.walker()

    def run(text: str, blank: range = range(0)) -> tuple[list[str], str]:
        """The bodies found (their text, braces included) and the text with those in blank blanked."""
        data = text.encode()
        buf = ctypes.create_string_buffer(data, len(data))
        count = lib.qpm_bodies(buf, len(data), None, 0, 0, 0)
        spans = (ctypes.c_size_t * (2 * count))()
        assert lib.qpm_bodies(buf, len(data), spans, count, blank.start, blank.stop) == count
        return [text[spans[2 * k]:spans[2 * k + 1] + 1] for k in range(count)], buf.raw[:len(data)].decode()
    return run


def test_only_function_bodies_are_found(scan):
    text = r'''
struct point { int x, y; };
static int table[] = { 1, 2, 3 };
static struct point origin = (struct point){ 0, 0 };
const char *open_brace = "{", *quote = "\"{";
char brace = '{';   /* { not this } */  // nor { this
int add(int a, int b) { return a + b; }
int twice(int a)
__attribute__((unused))
{
    if (a) { return add(a, a); }
    return 0;
}
typedef struct __attribute__((packed)) { int a; char b; } packed_t;
struct __attribute__((aligned(8))) tagged { int c; };
struct tag __attribute__ ((packed)) /* attributes */ { short d; } tagged_v;
int last(void) __attribute__((noinline)) { return 1; }
'''
    found, _ = scan(text)
    # A struct's attributes end in ')' too: its '{' opens no body.
    assert found == ["{ return a + b; }", "{\n    if (a) { return add(a, a); }\n    return 0;\n}", "{ return 1; }"]


def test_a_body_that_includes_a_file_is_left_alone(scan):
    # Blanking keeps directive lines: the file would be included outside any function.
    text = """int run(int op)
{
    static const int table[] = {
#define OP(x) x,
#include "ops.def"
    };
    return table[op];
}
int next(int a) { return a + 1; }
"""
    found, _ = scan(text)
    assert found == ["{ return a + 1; }"]


def test_cplusplus_blocks_and_if_branches_keep_the_depth(scan):
    text = '''#ifdef __cplusplus
extern "C" {
#endif
int f(void) { return 1; }
#if defined(__cplusplus)
}
#endif
#if LARGE
int g(void) { return 2; }
#else
int g(void) { return 3; }
#endif
#if WINDOWS
static int k(void *context, const void *a) {
#else
static int k(const void *a, void *context) {
#endif
    return a == context;
}
int h(void) { return 4; }
'''
    found, _ = scan(text)
    # k's body begins in either branch: which one is the preprocessor's to say, so it is left out.
    assert found == ["{ return 1; }", "{ return 2; }", "{ return 3; }", "{ return 4; }"]


def test_blanking_keeps_places_directives_and_the_rest(scan, tmp_path):
    text = r'''#include <stdio.h>
int first(int n) {
    /* a comment over lines
# not a directive: inside a comment
    */
#define DOUBLE(x) ((x) * 2)
    const char *s = "} \" {";
    return n + 1; } /* a comment */
int second(int n)
{
    return DOUBLE(n);
}
int main(void) { printf("%d %d\n", first(1), second(2)); return 0; }
'''
    found, blanked = scan(text, range(0, 1))
    assert len(found) == 3
    assert len(blanked) == len(text)
    assert [i for i, c in enumerate(blanked) if c == "\n"] == [i for i, c in enumerate(text) if c == "\n"]
    start = text.index("int first(int n) {") + len("int first(int n) ")
    end = text.index("} /* a comment */")
    body = blanked[start:end + 1].split("\n")
    assert body[0] == "{" and body[-1].strip() == "}"
    assert "#define DOUBLE(x) ((x) * 2)" in body
    assert not any("not a directive" in line or "return" in line for line in body)
    assert blanked[end + 1:] == text[end + 1:] and blanked[:start] == text[:start]
    # It still compiles (the macro defined inside the blanked body is defined where it was), and
    # the bodies not blanked run as written.
    (tmp_path / "blanked.c").write_text(blanked)
    exe = tmp_path / "blanked"
    subprocess.run(["gcc", "-w", "-o", str(exe), str(tmp_path / "blanked.c")], check=True)
    second = subprocess.run([str(exe)], capture_output=True, text=True).stdout
    assert second.split()[1] == "4"




def test_a_directive_continued_over_lines_stays_whole(scan, tmp_path):
    # A backslash continues a line even with a carriage return or spaces after it (a file with
    # Windows line ends, a stray blank): the macro keeps its second line in the blanked body.
    text = ("int first(int n) {\n"
            "#define TWICE(x) \\\r\n    ((x) * 2)\n"
            "#define THRICE(x) \\  \n    ((x) * 3)\n"
            "    return n; }\n"
            "int main(void) { return TWICE(1) + THRICE(1) == 5 ? 0 : 1; }\n")
    found, blanked = scan(text, range(0, 1))
    assert len(found) == 2 and "((x) * 2)" in blanked and "((x) * 3)" in blanked and "return n" not in blanked
    (tmp_path / "continued.c").write_text(blanked)
    subprocess.run(["gcc", "-w", "-o", str(tmp_path / "continued"), str(tmp_path / "continued.c")], check=True)
    assert subprocess.run([str(tmp_path / "continued")]).returncode == 0


FUZZ_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
%s
int main(int argc, char **argv)
{
    FILE *f = fopen(argv[1], "rb");
    static char base[1 << 20];
    size_t len = fread(base, 1, sizeof base, f);
    fclose(f);
    srand((unsigned)atoi(argv[2]));
    const char alphabet[] = "{}()\"'\\/*#\n \t\r;,x_ifdefelsendc+";
    for (int round = 0; round < atoi(argv[3]); round++) {
        size_t off = (size_t)rand() %% len, n = 1 + (size_t)rand() %% 4000;
        if (off + n > len)
            n = len - off;
        char *buf = malloc(n);          /* exactly n bytes: the sanitizer sees any read past them */
        memcpy(buf, base + off, n);
        for (int k = rand() %% 20; k > 0; k--)
            buf[(size_t)rand() %% n] = alphabet[rand() %% (sizeof alphabet - 1)];
        if (rand() %% 4 == 0)
            for (size_t k = 0; k < n; k++)
                buf[k] = alphabet[rand() %% (sizeof alphabet - 1)];
        long found = qpm_bodies(buf, n, NULL, 0, 0, 0);
        size_t *spans = malloc(2 * (size_t)(found + 1) * sizeof *spans);
        if (qpm_bodies(buf, n, spans, (size_t)found, 0, (size_t)found) != found)
            return 2;
        for (long k = 0; k < found; k++)
            if (spans[2 * k + 1] >= n || buf[spans[2 * k]] != '{' || buf[spans[2 * k + 1]] != '}')
                return 3;
        free(spans);
        free(buf);
    }
    return 0;
}
"""


def test_the_scan_stays_inside_the_file_it_is_given(tmp_path):
    # The scan reads and writes a user's file by offsets: compiled alone with AddressSanitizer and
    # UBSan, it runs on pieces of a real C file, mutated (braces, quotes, backslashes, comment
    # and directive characters put anywhere), every span it finds a '{' to its '}'.
    with open(os.path.join(os.path.dirname(clang_env.__file__), "walker.c")) as f:
        source = f.read()
    scan_source = source[source.index("#define MAX_IF 512"):source.index("struct split {")]
    (tmp_path / "fuzz.c").write_text(FUZZ_DRIVER % scan_source)
    exe = tmp_path / "fuzz"
    subprocess.run(["gcc", "-std=c11", "-g", "-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                    "-o", str(exe), str(tmp_path / "fuzz.c")], check=True)
    base = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runtime", "transport.c")
    for seed in (1, 2):
        proc = subprocess.run([str(exe), base, str(seed), "3000"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-3000:]

# A unit parsed alone, split in two: its facts are those of the whole file's parse.

HEADER = """\
#ifndef SHARED_H
#define SHARED_H
struct item { int key; long value; struct item *next; };
typedef int (*handler)(struct item *, int);
int exported(struct item *it, int n);
#define LESS(a, b) ((a) < (b))
#define QUIET_BEGIN _Pragma("clang diagnostic push") _Pragma("clang diagnostic ignored \\"-Wsign-compare\\"")
#define QUIET_END _Pragma("clang diagnostic pop")
#endif
"""


def program(functions: int = 40) -> str:
    """A file whose bodies call each other across any cut, with warnings in bodies and outside
    them, a macro defined in one body and used in a later one, tables of functions, and bodies
    the scan must leave alone."""
    out = ['#include "shared.h"', "#include <string.h>", "",
           "static int used_late(int x);",
           "static int never_used(int x) { return x; }",
           "static struct item table[8];",
           "int counter;", ""]
    out += [f"int f{i}(struct item *it, int n{', int spare' if i % 7 == 0 else ''});" for i in range(functions)]
    for i in range(functions):
        calls = (f"f{i + 1}(it, n - 1{', 0' if (i + 1) % 7 == 0 else ''})" if i + 1 < functions
                 else "used_late(n)")
        extra = ""
        if i == 3:
            extra = "#define LOCAL_SCALE 3\n    unsigned limit = 4;\n    if (LESS(n, limit)) counter++;\n"
        if i == 5:      # a warning kept quiet inside one body, by a header's push and pop
            extra = "    unsigned bound = 8;\n    QUIET_BEGIN\n    if (n < bound) counter--;\n    QUIET_END\n"
        if i == functions - 3:
            extra = "    int unset;\n    counter += unset + LOCAL_SCALE;\n"
        unused = ", int spare" if i % 7 == 0 else ""
        out += [f"int f{i}(struct item *it, int n{unused})", "{",
                f"    if (n <= 0) return table[{i % 8}].key;",
                extra.rstrip("\n"),
                f"    it->value += {i};",
                f"    return {calls} + counter;", "}", ""]
    out += ["static int used_late(int x) { return x * 2; }",
            "#if WINDOWS",
            "static int pick(void *context, int a) {",
            "#else",
            "static int pick(int a, void *context) {",
            "#endif",
            "    return a + (context != 0);",
            "}",
            "#if 0",
            "static int inactive(int x) { return x; }",
            "#endif",
            "static handler handlers[] = { f1, f2, f3 };",
            "int exported(struct item *it, int n) { return handlers[n & 1](it, pick(n, it)) + f0(it, n, 0); }", ""]
    return "\n".join(out)


WALK_SPLIT = unit._walk_split


def analysed(path, flags, monkeypatch, split: bool):
    """The unit's facts (parse_unit, isolated), and what each _walk_split of it returned."""
    monkeypatch.setenv("QPM_SPLIT_BYTES", "0" if split else "-1")
    returned = []

    def spy(*args):
        returned.append(WALK_SPLIT(*args))
        return returned[-1]
    monkeypatch.setattr(unit, "_walk_split", spy)
    return unit.parse_unit(str(path), tuple(flags), isolated=True), returned


def same_facts(a, b) -> list[str]:
    """The fields in which two units' facts differ (diagnostics in any order)."""
    differ = []
    for name in vars(a):
        x, y = getattr(a, name), getattr(b, name)
        if name == "diagnostics":
            x, y = sorted(map(repr, x)), sorted(map(repr, y))
        if x != y:
            differ.append(name)
    return differ


def test_a_split_parse_says_what_the_whole_parse_says(tmp_path, monkeypatch):
    (tmp_path / "shared.h").write_text(HEADER)
    # A table built in a body from a file it includes (as QuickJS builds its opcodes'): in the
    # first half of the bodies, which the second half blanks.
    (tmp_path / "costs.def").write_text("COST(load, 1)\nCOST(store, 2)\nCOST(call, f1(0, 3))\n")
    text = program().replace("int counter;\n", "int counter;\n"
                             "typedef struct __attribute__((packed)) { int a; char b; } packed_t;\n"
                             "packed_t packed_global;\n"
                             "int f1(struct item *it, int n);\n"
                             "int cost(int op)\n{\n    int costs[] = {\n#define COST(name, n) n,\n"
                             '#include "costs.def"\n#undef COST\n    };\n    return costs[op % 3];\n}\n', 1)
    path = tmp_path / "big.c"
    path.write_text(text)
    flags = ["-Wall", "-Wextra", "-I", str(tmp_path)]
    whole, none = analysed(path, flags, monkeypatch, split=False)
    split, returned = analysed(path, flags, monkeypatch, split=True)
    assert none == [] and returned == [0]           # split, and kept
    assert same_facts(whole, split) == []
    said = {d.message.split(" [")[0] for d in whole.diagnostics}
    # Outside the bodies: unused only when unused everywhere; inside: each from its own half.
    assert "unused function 'never_used'" in said and not any("used_late" in m for m in said)
    assert any("unused parameter 'spare'" in m for m in said)
    assert any("'unset' is uninitialized" in m for m in said)
    assert any("comparison of integers of different signs" in m for m in said)
    assert len(whole.functions) > 40 and len(whole.calls) > 40 and whole.taken
    assert [c[1] for c in whole.calls if c[0] == "c:@F@cost"] == ["c:@F@f1"]     # from costs.def
    assert [f[0] for s in split.structs for f in s[4] if s[1] in ("", "packed_t")] == ["a", "b"]


@pytest.mark.parametrize("case", ["counter", "counter in a header", "pragma in a header", "error"])
def test_a_file_the_split_cannot_be_trusted_with_is_parsed_whole(tmp_path, monkeypatch, case):
    header = HEADER
    if case == "counter in a header":
        # Its values depend on every expansion before, the blanked bodies' too.
        header = header.replace("#endif", "#define NEXT_ID __COUNTER__\n#endif")
    elif case == "pragma in a header":
        # What it sets holds for the bodies after the one that expands it (no push, no pop).
        (tmp_path / "quiet.h").write_text('#define QUIET _Pragma("clang diagnostic ignored \\"-Wunused-variable\\"")\n')
    (tmp_path / "shared.h").write_text(header)
    text = program(12)
    if case == "counter":
        text += "\nstatic int unique_id(void) { return __COUNTER__; }\n"
    elif case == "counter in a header":
        text = text.replace("    return f1(", "    counter += NEXT_ID;\n    return f1(")
    elif case == "pragma in a header":
        text = '#include "quiet.h"\n' + text.replace("    return f1(", "    QUIET\n    return f1(")
    else:
        text += "\nint broken(void) { return undeclared_name; }\n"
    path = tmp_path / "big.c"
    path.write_text(text)
    flags = ["-I", str(tmp_path)]
    whole, _ = analysed(path, flags, monkeypatch, split=False)
    split, returned = analysed(path, flags, monkeypatch, split=True)
    assert returned == [None]                       # not split: parsed whole
    assert same_facts(whole, split) == []
    if case == "error":
        assert any(d.severity == "error" for d in split.diagnostics)


@pytest.mark.parametrize("how", ["in a thread", "in a child", "split between two"])
def test_the_facts_are_announced_once_before_they_are_loaded(tmp_path, monkeypatch, how):
    """parse_unit's records(), which the analysis uses to pause the merge state's reader while the
    walk's facts are loaded, is called once, when they have come (all of them: of a split parse,
    those of the half that ended first), and before any is loaded."""
    (tmp_path / "shared.h").write_text(HEADER)
    path = tmp_path / "big.c"
    path.write_text(program())
    monkeypatch.setenv("QPM_SPLIT_BYTES", "0" if how == "split between two" else "-1")
    calls, loaded = [], []
    real = unit.walked

    def counting(data):
        loaded.append(len(data))
        return real(data)
    monkeypatch.setattr(unit, "walked", counting)
    split = []

    def spy(*args):
        split.append(WALK_SPLIT(*args))
        return split[-1]
    monkeypatch.setattr(unit, "_walk_split", spy)
    facts = unit.parse_unit(str(path), ("-I", str(tmp_path)), isolated=how != "in a thread",
                            records=lambda: calls.append(len(loaded)))
    assert calls == [0]
    assert len(loaded) == (2 if how == "split between two" else 1) and min(loaded) > 1000
    assert len(facts.functions) > 40
    assert split == ([0] if how == "split between two" else [])


def test_the_facts_are_announced_once_when_a_split_is_given_up(tmp_path, monkeypatch):
    """A split parse whose halves disagree is given up after their records came, and the file is
    parsed whole: records() is still called once."""
    (tmp_path / "shared.h").write_text(HEADER)
    path = tmp_path / "big.c"
    # A static function declared, not defined, and called from a body of the second half: only
    # that half reports it, at its declaration, outside the bodies (-Wundefined-internal).
    text = program(12).replace("int counter;\n", "int counter;\nstatic int nowhere(int n);\n", 1)
    path.write_text(text + "\nint late_user(int n)\n{\n    return nowhere(n);\n}\n")
    monkeypatch.setenv("QPM_SPLIT_BYTES", "0")
    split, calls = [], []

    def spy(*args):
        split.append(WALK_SPLIT(*args))
        return split[-1]
    monkeypatch.setattr(unit, "_walk_split", spy)
    facts = unit.parse_unit(str(path), ("-I", str(tmp_path)), isolated=True, records=lambda: calls.append(1))
    assert split == [None]              # given up
    assert calls == [1] and any("nowhere" in d.message for d in facts.diagnostics)
