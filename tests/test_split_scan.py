"""bench/split_scan.c: the bodies of a C file's functions found by a lexical scan, and blanked so
that the file still compiles with every place and every macro where it was."""

import ctypes
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    so = tmp_path_factory.mktemp("scan") / "split_scan.so"
    subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-o", str(so),
                    os.path.join(ROOT, "bench", "split_scan.c")], check=True)
    lib = ctypes.CDLL(str(so))
    lib.qpm_bodies.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.c_size_t,
                               ctypes.c_size_t, ctypes.c_size_t]
    lib.qpm_bodies.restype = ctypes.c_long

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
'''
    found, _ = scan(text)
    assert found == ["{ return a + b; }", "{\n    if (a) { return add(a, a); }\n    return 0;\n}"]


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
int h(void) { return 4; }
'''
    found, _ = scan(text)
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


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
