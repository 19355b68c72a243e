"""Stage 1: C sources -> ProgramModel.

Each test writes a small C program into its own directory and checks what
`qtool.analyzer.analyze` makes of it: annotations, header/definition merging, call edges and
their static weights, indirect calls, globals, structs, diagnostics and the per-unit cache.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from qtool import analyzer  # noqa: E402
from qtool.analyzer import cache, unit  # noqa: E402
from qtool.model import Annotation, Diagnostic, FixIt, Location  # noqa: E402


# Fixtures and helpers.

@pytest.fixture(scope="session")
def _analyzer_cache(tmp_path_factory):
    """One cache directory for the session: the walker is compiled into it once."""
    return tmp_path_factory.mktemp("analyzer-cache")


@pytest.fixture(autouse=True)
def _cache_env(_analyzer_cache, monkeypatch):
    monkeypatch.setenv("QPM_CACHE_DIR", str(_analyzer_cache))


def write(directory, name, text):
    """Writes dedented C text to directory/name; returns (absolute path, text)."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    body = textwrap.dedent(text).lstrip("\n")
    path.write_text(body)
    return os.path.normpath(str(path)), body


def line_of(text, needle):
    """1-based line of the first line of text containing needle."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in text")


def col_of(text, needle):
    """1-based column of needle on its line."""
    for line in text.splitlines():
        if needle in line:
            return line.index(needle) + 1
    raise AssertionError(f"{needle!r} not in text")


def analyze(directory):
    return analyzer.analyze([str(directory)], progress=False)


def fn(model, name):
    found = [f for f in model.functions if f.name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def glob(model, name):
    found = [g for g in model.globals if g.name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def struct(model, name):
    found = [s for s in model.structs if s.name == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def edge(model, caller, callee):
    a, b = fn(model, caller).usr, fn(model, callee).usr
    found = [e for e in model.edges if e.caller == a and e.callee == b]
    assert len(found) == 1, f"{caller}->{callee}: {model.edges}"
    return found[0]


def names(model, usrs):
    return sorted(model.function_map[u].name for u in usrs)


def param(function, name):
    found = [p for p in function.params if p.name == name]
    assert len(found) == 1, f"{name}: {function.params}"
    return found[0]


def field(st, name):
    found = [f for f in st.fields if f.name == name]
    assert len(found) == 1, f"{name}: {st.fields}"
    return found[0]


# Annotations.

def test_component_annotations(tmp_path):
    src = tmp_path / "src"
    store, _ = write(src, "store.c", """
        int store_get(int k) { return k; }
        static int store_helper(void) { return 0; }
    """)
    net, _ = write(src, "net.c", """
        #include "qpm.h"
        QPM_FILE_COMPONENT(network);
        int net_send(int x) { return x; }
        QPM_COMPONENT(crypto) int net_sign(int x) { return x; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    assert fn(m, "store_get").component == "store"
    assert fn(m, "store_helper").component == "store"
    assert fn(m, "net_send").component == "network"
    assert fn(m, "net_send").annotations == ()
    assert fn(m, "net_sign").component == "crypto"
    assert fn(m, "net_sign").annotations == (Annotation("component", "crypto"),)
    # The QPM_FILE_COMPONENT declaration is no global of the program.
    assert [g.name for g in m.globals] == []
    assert sorted(c.name for c in m.components) == ["crypto", "network", "store"]
    assert names(m, m.component_map["store"].functions) == ["store_get", "store_helper"]
    assert m.component_map["store"].files == (store,)
    assert names(m, m.component_map["network"].functions) == ["net_send"]
    assert m.component_map["network"].files == (net,)
    assert names(m, m.component_map["crypto"].functions) == ["net_sign"]


def test_parameter_annotations_with_argument_text(tmp_path):
    src = tmp_path / "src"
    write(src, "api.c", """
        #include "qpm.h"
        int put(const int *src QPM_IN(n), int n,
                int *dst QPM_OUT(n + 1),
                int *io QPM_INOUT(sizeof(int) * 2),
                const char *s QPM_STRING,
                void *h QPM_OPAQUE,
                void (*cb)(int) QPM_CALLBACK,
                int *plain)
        { return n; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    put = fn(m, "put")
    assert [p.name for p in put.params] == ["src", "n", "dst", "io", "s", "h", "cb", "plain"]
    assert [p.index for p in put.params] == list(range(8))
    assert param(put, "src").annotations == (Annotation("in", "n"),)
    assert param(put, "n").annotations == ()
    assert param(put, "dst").annotations == (Annotation("out", "n + 1"),)
    assert param(put, "io").annotations == (Annotation("inout", "sizeof(int) * 2"),)
    assert param(put, "s").annotations == (Annotation("string", ""),)
    assert param(put, "h").annotations == (Annotation("opaque", ""),)
    assert param(put, "cb").annotations == (Annotation("callback", ""),)
    assert param(put, "plain").annotations == ()
    assert param(put, "src").type == "const int *"
    assert param(put, "src").type_enc == "*cBint"
    assert param(put, "dst").type_enc == "*Bint"
    assert param(put, "h").type_enc == "*V"
    assert param(put, "cb").type == "void (*)(int)"
    assert param(put, "cb").type_enc == "*F<void (int)>"
    assert param(put, "src").annotation("in", "out") == Annotation("in", "n")
    assert str(param(put, "dst").annotations[0]) == "QPM_OUT(n + 1)"


def test_function_annotations_returns_string_opaque_init(tmp_path):
    src = tmp_path / "src"
    path, _ = write(src, "svc.c", """
        #include "qpm.h"
        int state;
        QPM_RETURNS_STRING char *svc_name(void) { return 0; }
        QPM_OPAQUE void *svc_handle(void) { return 0; }
        QPM_INIT void svc_setup(void) { state = 0; }
        void svc_plain(void) {}
        QPM_INIT void svc_reset(void) { state = 1; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    assert fn(m, "svc_name").annotations == (Annotation("returns_string", ""),)
    assert fn(m, "svc_name").return_type == "char *"
    assert fn(m, "svc_name").return_enc == "*Bchar"
    assert fn(m, "svc_handle").annotations == (Annotation("opaque", ""),)
    assert fn(m, "svc_handle").return_enc == "*V"
    assert fn(m, "svc_setup").annotations == (Annotation("init", ""),)
    assert fn(m, "svc_plain").annotations == ()
    comp = m.component_map["svc"]
    assert comp.files == (path,)
    assert comp.init_functions == (fn(m, "svc_setup").usr, fn(m, "svc_reset").usr)
    assert names(m, comp.functions) == ["svc_handle", "svc_name", "svc_plain", "svc_reset", "svc_setup"]


def test_fd_annotations_merge_and_cross_as_descriptors(tmp_path):
    """QPM_FD on a header's prototype reaches the definition's parameter and result, and marshal
    lets such an int cross as a descriptor (a plain int crosses as a number)."""
    from qtool import marshal
    src = tmp_path / "src"
    write(src, "net.h", """
        #include "qpm.h"
        QPM_FD int net_accept(int listening QPM_FD, int backlog);
    """)
    write(src, "net.c", """
        #include "net.h"
        int net_accept(int listening, int backlog) { return listening + backlog; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    accept = fn(m, "net_accept")
    assert accept.annotations == (Annotation("fd", ""),)
    assert param(accept, "listening").annotations == (Annotation("fd", ""),)
    assert param(accept, "backlog").annotations == ()
    kinds = [marshal.classify_param(m, accept, p, "error", "across")[0].kind for p in accept.params]
    assert kinds == ["fd", "scalar"]
    assert marshal.classify_return(m, accept, "error", "across")[0].kind == "fd"
    assert marshal.check_signature(m, accept, "error", "across") == []
    assert marshal.check_annotations(m) == []


def test_shared_global_and_struct_fields(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "data.c", """
        #include "qpm.h"
        typedef int (*handler)(int);
        struct blob {
            char *name QPM_STRING;
            unsigned n;
            int *items QPM_COUNT(n * 2);
            void *ctx QPM_OPAQUE;
            handler on_event;
            double ratio;
        };
        union either { int i; float f; };
        int mode QPM_SHARED;
        int plain_global;
        void use(struct blob *b, union either *e) { (void)b; (void)e; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    blob = struct(m, "blob")
    assert blob.kind == "struct"
    assert blob.location == Location(path, line_of(text, "struct blob {"), 8)
    assert [f.name for f in blob.fields] == ["name", "n", "items", "ctx", "on_event", "ratio"]
    assert field(blob, "name").annotations == (Annotation("string", ""),)
    assert field(blob, "name").type == "char *"
    assert field(blob, "name").type_enc == "*Bchar"
    assert field(blob, "n").annotations == ()
    assert field(blob, "n").type == "unsigned int"
    assert field(blob, "items").annotations == (Annotation("count", "n * 2"),)
    assert field(blob, "items").type == "int *"
    assert field(blob, "ctx").annotations == (Annotation("opaque", ""),)
    assert field(blob, "ctx").type == "void *"
    assert field(blob, "on_event").type == "handler"
    assert field(blob, "on_event").type_enc == "*F<int (int)>"
    assert field(blob, "ratio").type_enc == "Bdouble"
    assert field(blob, "items").location == Location(path, line_of(text, "*items"), col_of(text, "items"))
    either = struct(m, "either")
    assert either.kind == "union"
    assert [(f.name, f.type) for f in either.fields] == [("i", "int"), ("f", "float")]
    mode = glob(m, "mode")
    assert mode.annotations == (Annotation("shared", ""),)
    assert mode.shared
    assert mode.type == "int"
    assert mode.location == Location(path, line_of(text, "int mode"), 5)
    assert not glob(m, "plain_global").shared
    assert glob(m, "plain_global").annotations == ()


# Header and definition merging.

HEADER = """
    #ifndef API_H
    #define API_H
    #include "qpm.h"
    struct req { char *path QPM_STRING; int len; };
    extern int api_level;
    QPM_COMPONENT(server) int api_put(const char *key QPM_IN(klen), int klen, void *out QPM_OPAQUE);
    static inline int api_twice(int x) { return api_put(0, x, 0) * 2; }
    #endif
"""


def test_header_annotations_merge_into_definition(tmp_path):
    src = tmp_path / "src"
    hpath, htext = write(src, "api.h", HEADER)
    cpath, ctext = write(src, "impl.c", """
        #include "api.h"
        int api_level;
        int api_put(const char *k, int n, void *o) { api_level = n; return k != 0 && o != 0; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    put = fn(m, "api_put")
    assert put.defined
    assert put.component == "server"
    assert put.annotations == (Annotation("component", "server"),)
    assert [p.name for p in put.params] == ["k", "n", "o"]
    assert put.params[0].annotations == (Annotation("in", "klen"),)
    assert put.params[1].annotations == ()
    assert put.params[2].annotations == (Annotation("opaque", ""),)
    assert put.params[0].location == Location(cpath, line_of(ctext, "int api_put"), col_of(ctext, "k, int n"))
    def_loc = Location(cpath, line_of(ctext, "int api_put"), col_of(ctext, "api_put"))
    decl_loc = Location(hpath, line_of(htext, "int api_put"), col_of(htext, "api_put"))
    assert put.location == def_loc
    assert put.declarations == tuple(sorted([def_loc, decl_loc]))
    assert m.component_map["server"].files == (cpath,)


def test_header_included_by_two_units_is_not_duplicated(tmp_path):
    src = tmp_path / "src"
    hpath, htext = write(src, "api.h", HEADER)
    apath, atext = write(src, "a.c", """
        #include "api.h"
        int api_level = 0;
        int api_put(const char *k, int n, void *o) { api_level = n; return k != 0 && o != 0; }
    """)
    bpath, btext = write(src, "b.c", """
        #include "api.h"
        int client(void) { return api_twice(api_level) + api_put("x", 1, 0); }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    assert m.translation_units == (apath, bpath)
    assert sorted(f.name for f in m.functions) == ["api_put", "api_twice", "client"]
    assert [s.name for s in m.structs] == ["req"]
    assert [g.name for g in m.globals] == ["api_level"]
    put = fn(m, "api_put")
    assert len(put.declarations) == 2
    twice = fn(m, "api_twice")
    assert twice.linkage == "internal"
    assert twice.declarations == (Location(hpath, line_of(htext, "api_twice"), col_of(htext, "api_twice")),)
    # The call inside the header's inline function is one site, though both units saw it.
    e = edge(m, "api_twice", "api_put")
    assert [s.location for s in e.sites] == [Location(hpath, line_of(htext, "api_twice"),
                                                      col_of(htext, "api_put(0"))]
    # A static inline function of a header is compiled into each unit: it belongs to no component,
    # and the call it makes is also its caller's, at the caller's call of it.
    assert twice.per_unit and twice.component is None
    assert not put.per_unit and put.component == "server"
    assert [s.location for s in edge(m, "client", "api_put").sites] == [
        Location(bpath, line_of(btext, "int client"), col_of(btext, "api_twice(")),
        Location(bpath, line_of(btext, "int client"), col_of(btext, "api_put("))]
    assert edge(m, "client", "api_twice").weight == 1.0
    lvl = glob(m, "api_level")
    assert lvl.location == Location(apath, 2, 5)
    assert lvl.writers == (put.usr,)
    assert lvl.readers == (fn(m, "client").usr,)


# Call edges and weights.

def test_call_edges_and_libc_calls_are_not_edges(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "prog.c", """
        #include <stdio.h>
        #include <string.h>
        #include <stdlib.h>
        static int helper(int x) { return x + 1; }
        void copy(char *d, const char *s, size_t n) {
            memcpy(d, s, n);
            printf("%d\\n", helper(1));
        }
        int main(void) {
            char buf[8];
            copy(buf, "abc", 4);
            puts(buf);
            return helper(2) + (int)strlen(buf) + abs(-1);
        }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    assert sorted(f.name for f in m.functions) == ["copy", "helper", "main"]
    got = sorted((m.function_map[e.caller].name, m.function_map[e.callee].name,
                  tuple(s.location.line for s in e.sites)) for e in m.edges)
    assert got == [
        ("copy", "helper", (line_of(text, "helper(1)"),)),
        ("main", "copy", (line_of(text, "copy(buf"),)),
        ("main", "helper", (line_of(text, "helper(2)"),)),
    ]
    site = edge(m, "main", "copy").sites[0]
    assert site.location == Location(path, line_of(text, "copy(buf"), col_of(text, "copy(buf"))
    assert (site.loops, site.branches, site.local_weight) == (0, 0, 1.0)
    assert fn(m, "helper").linkage == "internal"
    assert fn(m, "copy").linkage == "external"


def test_loop_and_branch_weights(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "w.c", """
        void leaf(void) {}
        void once(void) { leaf(); }
        void looped(void) { for (int i = 0; i < 100; i++) leaf(); }
        void nested(void) { for (int i = 0; i < 3; i++) { int j = 0; while (j++ < 3) leaf(); } }
        void maybe(int x) { if (x) leaf(); }
        void either(int x) { if (x) leaf(); else leaf(); }
        void looped_maybe(int x) { for (;;) { if (x) leaf(); } }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    once, looped = edge(m, "once", "leaf"), edge(m, "looped", "leaf")
    assert once.weight == 1.0
    assert looped.weight == 10.0
    assert looped.weight > once.weight
    assert (looped.sites[0].loops, looped.sites[0].branches) == (1, 0)
    assert edge(m, "nested", "leaf").weight == 100.0
    assert edge(m, "nested", "leaf").sites[0].loops == 2
    maybe = edge(m, "maybe", "leaf")
    assert maybe.weight == 0.5
    assert maybe.weight < once.weight
    assert (maybe.sites[0].loops, maybe.sites[0].branches) == (0, 1)
    both = edge(m, "either", "leaf")
    assert [s.local_weight for s in both.sites] == [0.5, 0.5]
    assert both.weight == 1.0
    assert edge(m, "looped_maybe", "leaf").weight == 5.0
    # No main: every function nothing calls is an entry point run once.
    for name in ("once", "looped", "nested", "maybe", "either", "looped_maybe"):
        assert fn(m, name).frequency == 1.0
    assert fn(m, "leaf").frequency == 1.0 + 10.0 + 100.0 + 0.5 + 1.0 + 5.0


def test_weights_propagate_from_main(tmp_path):
    src = tmp_path / "src"
    write(src, "p.c", """
        void g(void) {}
        void h(void) { g(); }
        void k(void) { for (int i = 0; i < 4; i++) g(); }
        int main(void) {
            for (int i = 0; i < 10; i++) h();
            for (int i = 0; i < 10; i++) k();
            return 0;
        }
    """)
    m = analyze(src)
    assert fn(m, "main").frequency == 1.0
    assert fn(m, "h").frequency == 10.0
    assert fn(m, "k").frequency == 10.0
    assert fn(m, "g").frequency == 10.0 * 1 + 10.0 * 10
    assert edge(m, "main", "h").weight == 10.0
    assert edge(m, "h", "g").weight == 10.0
    assert edge(m, "k", "g").weight == 100.0


def test_recursion_has_finite_weights(tmp_path):
    src = tmp_path / "src"
    write(src, "r.c", """
        int fact(int n) { return n <= 1 ? 1 : n * fact(n - 1); }
        int ping(int n);
        int pong(int n) { for (int i = 0; i < n; i++) ping(i); return 0; }
        int ping(int n) { return pong(n) + ping(n - 1); }
        int main(void) { return fact(5) + ping(3); }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    assert fn(m, "main").frequency == 1.0
    for f in m.functions:
        assert math.isfinite(f.frequency), f
    for e in m.edges:
        assert math.isfinite(e.weight), e
    # fact calls itself in one arm: 1 + 1/2 + 1/4 + ... = 2.
    assert fn(m, "fact").frequency == pytest.approx(2.0)
    assert edge(m, "fact", "fact").sites[0].branches == 1
    assert 1.0 <= fn(m, "ping").frequency < 100.0
    assert 0.0 < fn(m, "pong").frequency < 100.0


# Indirect calls.

def test_indirect_calls_through_variable_and_struct_field(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "ind.c", """
        typedef int (*binop)(int, int);
        struct ops { binop fn; int tag; };
        int add(int a, int b) { return a + b; }
        int sub(int a, int b) { return a - b; }
        int mul(int a, int b) { return a * b; }
        void show(double x) { (void)x; }
        struct ops table = {.fn = add, .tag = 1};
        void (*printer)(double) = show;
        int via_var(int x) {
            binop p = sub;
            return p(x, 1);
        }
        int via_field(int x) { return table.fn(x, 2) + mul(x, x); }
        int main(void) { printer(1.0); for (int i = 0; i < 10; i++) via_var(i); return via_field(3); }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    by_through = {c.through: c for c in m.indirect_calls}
    assert sorted(by_through) == ["p", "printer", "table.fn"]
    p = by_through["p"]
    assert p.caller == fn(m, "via_var").usr
    assert p.location == Location(path, line_of(text, "p(x, 1)"), col_of(text, "p(x, 1)"))
    assert p.function_type == "int (int, int)"
    # p is only ever assigned sub, and the field fn only add: each reaches that one.
    assert names(m, p.targets) == ["sub"] and p.narrowed
    assert p.origins == (Location(path, line_of(text, "binop p = sub"), col_of(text, "sub;")),)
    assert p.local_weight == 1.0
    assert p.weight == 10.0
    f = by_through["table.fn"]
    assert f.caller == fn(m, "via_field").usr
    assert f.location.line == line_of(text, "table.fn(")
    assert names(m, f.targets) == ["add"]
    assert f.weight == 1.0
    pr = by_through["printer"]
    assert pr.function_type == "void (double)"
    assert names(m, pr.targets) == ["show"]
    # mul is called directly only: it is no indirect target, but an ordinary edge.
    assert edge(m, "via_field", "mul").weight == 1.0
    # Indirect calls carry frequency to their targets (split evenly between them).
    assert fn(m, "sub").frequency == pytest.approx(10.0)
    assert fn(m, "add").frequency == pytest.approx(1.0)
    assert fn(m, "show").frequency == 1.0


# What a body does with its parameters and returns.

def test_call_arguments_param_uses_and_returned_calls(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "uses.c", """
        #include <pthread.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <unistd.h>
        void *worker(void *arg) { return arg; }
        static int helper(int fd, char *p) { return (int)write(fd, p, 1); }
        int body(int fd, char *out, char *in, char *both, char *moved, int *cnt, size_t n)
        {
            pthread_t t;
            out[0] = 'x';
            *out = 'y';
            memcpy(out, in, n);
            both[1] += in[0];
            moved = moved + 1;
            (*cnt)++;
            pthread_create(&t, NULL, &worker, NULL);
            int s = socket(AF_INET, SOCK_STREAM, 0);
            if (s < 0)
                return close((int)fd);
            if (n == 0)
                return s;
            return helper(fd, (char *)(in));
        }
        int direct(void) { return accept(3, 0, 0); }
    """)
    m = analyze(src)
    f = fn(m, "body")
    # out: written through; in: read (and passed whole); both: read and written through; moved:
    # the pointer itself reassigned and read; cnt: modified through; fd: only passed on.
    assert f.param_uses == ("", "W", "R", "M", "RV", "M", "R")
    line = line_of(text, "memcpy(out")
    by_call = {(a.callee_name, a.index): a for a in m.arguments if a.caller == f.usr}
    assert by_call[("memcpy", 0)].param == 1 and by_call[("memcpy", 1)].param == 2
    assert by_call[("memcpy", 2)].param == 6
    assert by_call[("memcpy", 0)].location == Location(path, line, col_of(text, "out, in, n"))
    assert by_call[("memcpy", 0)].callee == "c:@F@memcpy"
    # Casts and parentheses are seen through; a literal or an address is no parameter.
    assert by_call[("close", 0)].param == 0
    assert by_call[("helper", 0)].param == 0 and by_call[("helper", 1)].param == 2
    assert by_call[("helper", 0)].callee == fn(m, "helper").usr
    assert ("pthread_create", 0) not in by_call and ("socket", 0) not in by_call
    start = by_call[("pthread_create", 2)]
    assert start.param is None and start.function == fn(m, "worker").usr
    assert [a.param for a in m.arguments if a.caller == fn(m, "helper").usr] == [0, 1]
    # The returned calls: close's result directly, helper's, and socket's through 's'.
    assert sorted(name for _, name, _ in f.returned_calls) == ["close", "helper", "socket"]
    assert [name for _, name, _ in fn(m, "direct").returned_calls] == ["accept"]
    # No body, no uses.
    assert all(g.param_uses == () for g in m.functions if not g.defined)


def test_static_inline_helpers_of_a_header_belong_to_their_callers(tmp_path):
    src = tmp_path / "src"
    hpath, htext = write(src, "util.h", """
        extern int hits;
        int store_put(int k);
        static inline void bump(void) { hits++; }
        static inline int put2(int k) { bump(); return store_put(k) + store_put(k + 1); }
    """)
    npath, ntext = write(src, "net.c", """
        #include "util.h"
        int hits;
        int main(void) { for (int i = 0; i < 4; i++) put2(i); return 0; }
    """)
    spath, _ = write(src, "store.c", """
        #include "util.h"
        int store_put(int k) { return k; }
    """)
    m = analyze(src)
    assert [c.name for c in m.components] == ["net", "store"]
    for name in ("bump", "put2"):
        assert fn(m, name).per_unit and fn(m, name).component is None
    # main -> store_put through the helper, at main's call of it, with the helper's two calls.
    e = edge(m, "main", "store_put")
    assert [s.location for s in e.sites] == [Location(npath, line_of(ntext, "put2(i)"), col_of(ntext, "put2(i)"))]
    assert e.sites[0].loops == 1 and e.sites[0].local_weight == 20.0
    assert e.weight == 20.0
    assert list(m.cross_component_edges()) == [e]
    # The global the helper writes is written by main, which runs it.
    assert set(glob(m, "hits").writers) == {fn(m, "bump").usr, fn(m, "main").usr}


def test_indirect_calls_in_every_syntax(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "syn.c", """
        typedef int (*binop)(int, int);
        struct ops { const char *name; binop h; };
        int one(int a, int b) { return a; }
        int two(int a, int b) { return b; }
        int three(int a, int b) { return a + b; }
        binop fp = one;
        binop tab[2] = { two, &three };
        struct ops ops[] = { {"one", one}, {"two", two} };
        int direct(int a, int b) { return a * b; }
        binop pick(int i) { return i ? two : three; }
        int calls(struct ops *s, int i) {
            return fp(1, 2) + (*fp)(1, 2) + (fp)(1, 2) + (**fp)(1, 2)
                 + s->h(1, 2) + (*s->h)(1, 2) + tab[i](1, 2) + ops[i].h(1, 2)
                 + ((binop)s->h)(1, 2) + (*direct)(1, 2) + (&direct)(1, 2) + pick(i)(1, 2);
        }
        int main(void) { return calls(&ops[0], 1); }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    line = line_of(text, "return fp(1, 2)")
    got = [(c.location.line - line, c.location.column, c.through, c.function_type, names(m, c.targets))
           for c in m.indirect_calls]
    col = lambda needle: col_of(text, needle)  # noqa: E731
    assert got == [
        (0, col("fp(1, 2) +"), "fp", "int (int, int)", ["one"]),
        (0, col("(*fp)"), "fp", "int (int, int)", ["one"]),
        (0, col("(fp)("), "fp", "int (int, int)", ["one"]),
        (0, col("(**fp)"), "fp", "int (int, int)", ["one"]),
        (1, col("s->h(1"), "s->h", "int (int, int)", ["one", "two"]),
        (1, col("(*s->h)"), "s->h", "int (int, int)", ["one", "two"]),
        (1, col("tab[i]"), "tab[i]", "int (int, int)", ["three", "two"]),
        (1, col("ops[i]"), "ops[i].h", "int (int, int)", ["one", "two"]),
        (2, col("((binop)"), "s->h", "int (int, int)", ["one", "two"]),
        (2, col("pick(i)"), "pick(...)", "int (int, int)", ["three", "two"]),   # what pick returns
    ]
    # Through `*` and `&`, a function's name is a direct call, and no address is taken.
    assert [s.location.column for s in edge(m, "calls", "direct").sites] == [col("(*direct)"), col("(&direct)")]
    assert [s.location.column for s in edge(m, "calls", "pick").sites] == [col("pick(i)")]


def test_an_indirect_calls_text_shows_a_literal_as_written_and_a_macros_as_dots(tmp_path):
    # The pointer expression as written: an integer literal is its one token (as spelled, suffix and
    # all, also when it is a macro's argument), and "..." when it comes from a macro's body, here
    # in the unit or in a header; the walk tells the latter apart without lexing from the #define
    # to the use (see several_tokens in walker.c), and must say what the lexer says.
    src = tmp_path / "src"
    write(src, "tab.h", "typedef int (*binop)(int, int);\nextern binop tab[4];\n#define THIRD tab[2]\n")
    path, text = write(src, "lit.c", """
        #include "tab.h"
        #define FIRST tab[0]
        #define AT(i) tab[i]
        #define ONE 1
        int one(int a, int b) { return a; }
        binop tab[4] = { one, one, one, one };
        int calls(void) {
            return tab[1](1, 2) + tab[0x1u](1, 2) + tab[1 ](1, 2) + FIRST(1, 2) + AT(3)(1, 2)
                 + THIRD(1, 2) + tab[ONE](1, 2) + tab[/* one */ 1](1, 2);
        }
        int main(void) { return calls(); }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    assert [c.through for c in sorted(m.indirect_calls, key=lambda c: c.location)] == [
        "tab[1]", "tab[0x1u]", "tab[1]", "tab[...]", "tab[3]", "tab[...]", "tab[...]", "tab[1]"]


def test_an_expression_ten_thousand_deep_is_walked(tmp_path):
    # Generated code can nest an expression thousands deep: a sum of 10,001 terms is a tree of that
    # depth, the call at its bottom.  The body walk keeps a stack of its own (walker.c, struct
    # frame) and has libclang recurse: it had recursed through three C frames and a libclang
    # visit per level, and overflowed its thread's stack at about 5,000, killing the process.
    # Run in a child process, so that a crash fails this test and not the whole run.
    src = tmp_path / "src"
    terms = " + ".join(["g(a)"] + ["a"] * 10000)
    write(src, "deep.c", f"int g(int a) {{ return a; }}\nint f(int a) {{ return {terms}; }}\n")
    probe = ("import sys\nfrom qtool import analyzer\n"
             "m = analyzer.analyze([sys.argv[1]], progress=False)\n"
             "print(sorted((m.function_map[e.caller].name, m.function_map[e.callee].name, len(e.sites))"
             " for e in m.edges), len(m.diagnostics))\n")
    proc = subprocess.run([sys.executable, "-c", probe, str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split("\n")[0] == "[('f', 'g', 1)] 0"


def test_a_unit_that_crashes_libclang_is_an_error_at_it_and_the_rest_is_analysed(tmp_path):
    # libclang's parser recurses once per level of an expression, on a thread of its own: a sum of
    # 200,000 terms overflows that thread's stack, and the process parsing the unit dies.  The
    # analysis reports it as an error at the file, with the model of the other units, and ends:
    # parsed by a worker (multiprocessing.Pool had waited for the dead worker's answer for ever),
    # or alone, on the next run and in a program of that one file, by a child process (in the
    # command's own, the crash ended it with nothing said).  In a child process, with a
    # deadline, so that neither a crash nor a hang takes the test run with it.
    src, alone = tmp_path / "src", tmp_path / "alone"
    deep = "int f(int a) { return " + " + ".join(["a"] * 200000) + "; }\n"
    write(src, "main.c", "int g(void) { return 1; }\nint main(void) { return g(); }\n")
    write(src, "deep.c", deep)
    write(alone, "deep.c", deep)
    probe = ("import sys\nfrom qtool import analyzer\n"
             "m = analyzer.analyze([sys.argv[1]], jobs=2, progress=False)\n"
             "print(sorted(f.name for f in m.functions))\n"
             "print([(d.code, d.severity, d.location.file.rsplit('/', 1)[-1], d.location.line, d.message) "
             "for d in m.diagnostics])\n")
    crash = str([("QPM001", "error", "deep.c", 0, "libclang crashed on this file (the process parsing it was "
                  "killed by SIGSEGV): nothing of it is in the model")])
    for run, where, functions in (("first", src, "['g', 'main']"), ("again", src, "['g', 'main']"),
                                  ("alone", alone, "[]")):
        proc = subprocess.run([sys.executable, "-c", probe, str(where)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (run, proc.returncode, proc.stderr[-2000:])
        assert proc.stdout.splitlines()[:2] == [functions, crash], run


def test_indirect_targets_narrowed_by_assignments(tmp_path):
    """A pointer reaches what the program stores in it, and what escaped to where the analysis
    does not follow (that may be anywhere); an open pointer reaches every function of its type
    whose address is taken."""
    src = tmp_path / "src"
    write(src, "n.c", """
        #include <stdlib.h>
        typedef unsigned (*hash_fn)(const void *, size_t);
        unsigned jenkins(const void *k, size_t n) { return (unsigned)n; }
        unsigned murmur(const void *k, size_t n) { return (unsigned)n * 3; }
        unsigned other(const void *k, size_t n) { return 7; }
        unsigned spare(const void *k, size_t n) { return 9; }
        unsigned never(const void *k, size_t n) { return 11; }
        hash_fn hash, chosen, opened;
        hash_fn backup = spare;
        static hash_fn *alias;
        hash_fn pick(int kind) { return kind ? jenkins : murmur; }
        void init(int kind) { hash = kind ? jenkins : &murmur; chosen = pick(kind); hash = NULL; }
        unsigned keyed(hash_fn h, const char *k) { return h(k, 1); }
        void keep(void) { alias = &opened; }
        int cmp(const void *a, const void *b) { return 0; }
        int main(int argc, char **argv) {
            int v[2] = {0, 0};
            void *lost = (void *)other;
            init(argc);
            keep();
            qsort(v, 2, sizeof v[0], cmp);
            if (hash == jenkins || !chosen)
                return 1;
            return (int)(hash(argv[0], 1) + keyed(murmur, "k") + chosen(argv[0], 2) + opened(lost, 3));
        }
    """)
    m = analyze(src)
    by = {c.through: c for c in m.indirect_calls}
    assert names(m, by["hash"].targets) == ["jenkins", "murmur", "other"] and by["hash"].narrowed
    assert names(m, by["h"].targets) == ["murmur", "other"] and by["h"].param == 0
    assert names(m, by["chosen"].targets) == ["jenkins", "murmur", "other"] and by["chosen"].param is None
    # opened is written through a pointer: it may hold any of them, even spare; never's address
    # is never taken, and cmp (passed to qsort) has another type.
    assert names(m, by["opened"].targets) == ["jenkins", "murmur", "other", "spare"]
    assert not by["opened"].narrowed


# Globals.

def test_global_readers_and_writers(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "g.c", """
        int ga, gb, gc, gd, ge, gf;
        static int hidden;
        int arr[4];
        void w_assign(void) { ga = 1; }
        void w_inc(void) { gb++; }
        void w_comp(void) { gc += 2; }
        int *w_addr(void) { return &gd; }
        int r_plain(void) { return ge + 1; }
        int r_copy(int *out) { *out = gf; return hidden; }
        void w_static(void) { --hidden; }
        void w_elem(int i) { arr[i] = 0; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    u = lambda name: fn(m, name).usr  # noqa: E731
    assert glob(m, "ga").writers == (u("w_assign"),)
    assert glob(m, "ga").readers == ()
    assert glob(m, "gb").writers == (u("w_inc"),)
    assert glob(m, "gc").writers == (u("w_comp"),)
    assert glob(m, "gd").writers == (u("w_addr"),)
    assert glob(m, "gd").readers == ()
    assert glob(m, "ge").readers == (u("r_plain"),)
    assert glob(m, "ge").writers == ()
    assert glob(m, "gf").readers == (u("r_copy"),)
    assert glob(m, "gf").writers == ()
    assert glob(m, "arr").writers == (u("w_elem"),)
    hidden = glob(m, "hidden")
    assert hidden.linkage == "internal"
    assert glob(m, "ga").linkage == "external"
    assert hidden.location == Location(path, line_of(text, "static int hidden"), 12)
    assert hidden.readers == (u("r_copy"),)
    assert hidden.writers == (u("w_static"),)


def test_global_written_in_one_file_read_in_another(tmp_path):
    src = tmp_path / "src"
    write(src, "state.h", """
        extern int level;
        static int local_count;
    """)
    apath, _ = write(src, "setter.c", """
        #include "state.h"
        int level = 3;
        void set_level(int v) { level = v; local_count = v; }
    """)
    write(src, "getter.c", """
        #include "state.h"
        int get_level(void) { return level + local_count; }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    level = glob(m, "level")
    assert level.location == Location(apath, 2, 5)
    assert level.linkage == "external"
    assert level.writers == (fn(m, "set_level").usr,)
    assert level.readers == (fn(m, "get_level").usr,)
    assert fn(m, "set_level").component == "setter"
    assert fn(m, "get_level").component == "getter"


# Linkage, variadic functions, declarations without a definition.

def test_linkage_and_variadic(tmp_path):
    src = tmp_path / "src"
    write(src, "v.c", """
        int logf_(int level, ...) { return level; }
        static int quiet(int x) { return x; }
        int loud(int x) { return x; }
        int ext(int x);
        int main(void) { return logf_(1, 2, 3) + quiet(1) + loud(2) + ext(3); }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    logf = fn(m, "logf_")
    assert logf.variadic is True
    assert logf.signature == "int logf_(int level, ...)"
    assert fn(m, "loud").variadic is False
    assert fn(m, "quiet").linkage == "internal"
    assert fn(m, "loud").linkage == "external"
    ext = fn(m, "ext")
    assert ext.defined is False
    assert ext.component is None
    assert edge(m, "main", "ext").weight == 1.0


# Diagnostics from clang.

def test_syntax_error_is_qpm001_with_line(tmp_path):
    src = tmp_path / "src"
    path, text = write(src, "bad.c", """
        int ok(void) { return 1; }
        int broken(void) {
            return 1 +;
        }
    """)
    m = analyze(src)
    errors = [d for d in m.diagnostics if d.severity == "error"]
    assert len(errors) == 1
    d = errors[0]
    assert d.code == "QPM001"
    assert d.location.file == path
    assert d.location.line == line_of(text, "1 +;")
    assert d.location.column == col_of(text, "+;") + 1     # at the ';'
    assert fn(m, "ok").defined


@pytest.mark.parametrize("flags,flow", [((), False), (("-Wall",), True), (("-Wreturn-type",), True),
                                        (("-Werror=return-type",), True), (("-Wall", "-Wno-return-type"), None)])
def test_the_return_flow_warning_is_given_where_the_flags_ask_gcc_for_it(tmp_path, flags, flow):
    # A path that falls off the end of a function returning a value: clang's flow analysis of
    # every body, which gcc gives only under -Wall or -Wreturn-type.  A `return;` in a function
    # returning a value and a value returned from a void one are what clang makes them whatever
    # the flags: errors.
    app, text = write(tmp_path, "app.c", "int f(int x) { if (x) return 1; }\n"
                                         "int g(void) { return; }\n"
                                         "void h(void) { return 1; }\n")
    found = {(d.location.line, d.severity, d.message.rsplit("[", 1)[-1])
             for d in unit.parse_unit(app, flags).diagnostics}
    # (None: the flags turn the whole group off, as clang then does)
    mismatch = {(2, "error", "-Wreturn-mismatch]"), (3, "error", "-Wreturn-mismatch]")} if flow is not None else set()
    falloff = {(1, "error" if "-Werror=return-type" in flags else "warning", "-Wreturn-type]")} if flow else set()
    assert found == mismatch | falloff
    assert unit._cache_file(app, flags) != unit._cache_file(app, (*flags, "-DX")) and \
        (unit._cache_file(app, ()) != unit._cache_file(app, ("-Wall",)))


def test_system_headers_parse_without_diagnostics(tmp_path):
    src = tmp_path / "src"
    write(src, "sys.c", """
        #include <stdatomic.h>
        #include <pthread.h>
        #include <immintrin.h>
        #include <stdarg.h>
        #include <stddef.h>
        #include "qpm.h"

        atomic_int hits;
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

        static void *worker(void *arg)
        {
            (void)arg;
            atomic_fetch_add(&hits, 1);
            return NULL;
        }

        int sum(int n, ...)
        {
            va_list ap;
            va_start(ap, n);
            int s = 0;
            for (int i = 0; i < n; i++)
                s += va_arg(ap, int);
            va_end(ap);
            return s;
        }

        float vec(void)
        {
            __m128 a = _mm_set1_ps(1.0f);
            __m128 b = _mm_add_ps(a, a);
            float out[4];
            _mm_storeu_ps(out, b);
            return out[0];
        }

        struct pair { int a; int b; };
        size_t off(void) { return offsetof(struct pair, b); }

        int main(void)
        {
            pthread_t t;
            pthread_mutex_lock(&lock);
            pthread_create(&t, NULL, worker, NULL);
            pthread_join(t, NULL);
            pthread_mutex_unlock(&lock);
            return sum(2, 1, 2) + (int)vec() + (int)off() + atomic_load(&hits);
        }
    """)
    m = analyze(src)
    assert m.diagnostics == ()
    assert sorted(f.name for f in m.functions) == ["main", "off", "sum", "vec", "worker"]
    assert sorted(m.function_map[e.callee].name for e in m.edges) == ["off", "sum", "vec"]
    assert fn(m, "sum").variadic
    hits = glob(m, "hits")
    assert hits.type == "atomic_int"
    assert hits.type_enc == "ABint"
    assert hits.writers == tuple(sorted([fn(m, "main").usr, fn(m, "worker").usr]))
    assert [s.name for s in m.structs] == ["pair"]


# The walk: its records stream through a pipe while they are turned into facts.

def test_facts_are_plain_tuples_and_pickle_as_such(tmp_path):
    # A unit's facts cross a pipe from every worker and go to and from the cache: they are exact
    # tuples of strings, numbers and annotations, laid out as unit.py's named tuples say, with no
    # object pickle would have to reduce (a Location, a record) among them.
    src = tmp_path / "src"
    write(src, "api.h", '#include "qpm.h"\n'
          'struct req { int *body QPM_COUNT(len); int len; };\n'
          'int api_put(struct req *r QPM_IN(1), const char *key QPM_STRING) QPM_COMPONENT(store);\n'
          'static inline int twice(int x) { return 2 * x; }\n'
          'extern int hits;\n')
    app, _ = write(src, "app.c", '#include "api.h"\nint hits;\nint (*hook)(int) = twice;\n'
                   'int api_put(struct req *r, const char *key) { hits++; return r->len + key[0]; }\n'
                   'int relay(struct req *r) { return api_put(r, "x"); }\n'
                   'int main(void) { struct req r = {0, 0}; return api_put(&r, "k") + hook(twice(1)); }\n')
    facts = unit.parse_unit(app, ())
    assert facts.diagnostics == []
    layouts = {"functions": unit.FunctionDecl, "globals": unit.GlobalDecl, "structs": unit.StructFact,
               "calls": unit.Call, "indirect": unit.Call, "arguments": unit.ArgumentFact}

    def plain(value) -> bool:
        if type(value) is tuple:
            return all(plain(v) for v in value)
        return value is None or type(value) in (str, int, bool, float, Annotation)

    for name, layout in layouts.items():
        items = getattr(facts, name)
        assert items, name
        assert all(type(t) is tuple and len(t) == len(layout._fields) and plain(t) for t in items), name
    for name in ("taken", "flows", "refs", "param_uses", "returned", "deps"):
        assert all(type(t) is tuple and plain(t) for t in getattr(facts, name)), name
    (put,) = [d for d in map(unit.FunctionDecl._make, facts.functions) if d.name == "api_put" and d.defined]
    assert [unit.ParamFact._make(p).annotations for p in put.params] == [(Annotation("in", "1"),), (Annotation("string"),)]
    assert put.location == (app, 4, 5)
    assert pickle.loads(pickle.dumps(facts, pickle.HIGHEST_PROTOCOL)) == facts


def test_long_walk_streams_every_record(tmp_path):
    # Thousands of functions make far more records than the walker keeps before it writes them
    # (64 KiB), and a header seen only at the end names its file after many writes.
    src = tmp_path / "src"
    write(src, "late.h", """\
        struct late { int (*op)(int); };
        static inline int late(int x) { return x + 1; }
        """)
    n = 3000
    body = "".join(f"int f{i}(int x) {{ return {'f' + str(i - 1) + '(x)' if i else 'x'} + 1; }}\n"
                   for i in range(n))
    app, _ = write(src, "app.c", body + '#include "late.h"\n'
                   'struct late table = {late};\n'
                   'int main(void) { return table.op(late(f2999(0))); }\n')
    facts = unit.parse_unit(app, ())
    assert len(facts.functions) == n + 2
    calls = map(unit.Call._make, facts.calls)     # facts are plain tuples, laid out as these say
    assert sorted((c.caller.rpartition("@")[2], c.callee.rpartition("@")[2]) for c in calls
                  if c.callee.startswith("c:@F@f")) == sorted(
        [(f"f{i}", f"f{i - 1}") for i in range(1, n)] + [("main", "f2999")])
    (late,) = [f for f in map(unit.FunctionDecl._make, facts.functions) if f.name == "late"]
    assert late.location == Location(str(src / "late.h"), 2, 19)
    structs = [unit.StructFact._make(s) for s in facts.structs]
    assert [s.name for s in structs] == ["late"] and structs[0].location == (str(src / "late.h"), 1, 8)
    assert len(facts.indirect) == 1 and len(facts.taken) == 1

    # The same walk written in one piece into a file, and loaded at once, makes the same facts:
    # nothing is lost or reordered on the way through the pipe.
    data = _walked_bytes(app, tmp_path)
    whole = unit.UnitFacts(app)
    included: list[str] = []
    unit.facts_of(unit.walked(data), whole, included)
    assert len(data) > 4 * 65536                # many writes
    whole.deps = facts.deps
    assert whole == facts
    assert sorted({app, *(p for p, _, _ in included)}) == [d[0] for d in facts.deps] == [app, str(src / "late.h")]
    assert all((size, mtime) == (os.stat(p).st_size, os.stat(p).st_mtime_ns) for p, size, mtime in included)


def test_walk_names_files_as_python_decodes_and_normalizes_them(tmp_path):
    # The walker writes each string as UTF-8, a bad byte replaced as Python's "replace" decoding
    # replaces it (a run that begins a sequence, one U+FFFD; a byte that cannot, one each), and
    # each file's name as os.path.normpath makes it: what the text of the records said before.
    raw = b"inc\xff-\xe1\x80A-\xed\xa0\x80-\xf0\x9f\x98-\xc3\xa9-\xf4\x90\x80\x80-\xc0\xaf"
    src = tmp_path / "src"
    header = os.path.join(os.fsencode(src), b"sub", raw, b"h.h")
    os.makedirs(os.path.dirname(header))
    with open(header, "wb") as f:
        f.write(b"static inline int twice(int x) { return 2 * x; }\n")
    app = src / "app.c"
    app.write_bytes(b'#include "' + raw + b'/./h.h"\nint main(void) { return twice(1); }\n')
    facts = unit.parse_unit(str(app), ("-I", f"{src}//./sub/../sub/."))
    (twice,) = [d for d in map(unit.FunctionDecl._make, facts.functions) if d.name == "twice"]
    assert twice.location == (f"{src}/sub/{raw.decode('utf-8', 'replace')}/h.h", 1, 19)
    assert twice.location[0].count("\ufffd") == 12 and "\u00e9" in twice.location[0]


def test_a_walk_that_dies_while_writing_is_a_crash_not_fewer_facts(tmp_path):
    # A child killed halfway through writing its facts leaves them cut short: the unit is reported
    # as crashed (how the child ended), never loaded as part of its facts; one that ends well
    # after writing only part of them is refused too.
    import signal
    app, _ = write(tmp_path, "app.c", "int f(int x) { return x; }\nint main(void) { return f(1); }\n")
    data = _walked_bytes(app, tmp_path)

    def half_then(end):
        def call(fd: int) -> int:
            os.write(fd, data[:len(data) // 2])
            if end == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            return 0
        return call
    with pytest.raises(unit._Crashed, match="SIGKILL"):
        unit._walk_in_child(half_then("killed"), app, unit.UnitFacts(app), [], *unit._pipe())
    with pytest.raises(ValueError, match="cut short"):
        unit._walk_in_child(half_then("ended"), app, unit.UnitFacts(app), [], *unit._pipe())


def test_a_compilation_database_is_read_once_while_it_is_unchanged(tmp_path):
    # A command reads the database for its remembered result and again for its analysis: the
    # second time it is the same map; a database written again is read again, even at the same
    # size (its modification time is another, to the nanosecond).
    from qtool.analyzer.sources import load_compile_commands
    ccdb = tmp_path / "compile_commands.json"

    def write_ccdb(flag: str) -> None:
        ccdb.write_text(f'[{{"directory": "{tmp_path}", "file": "a.c", "arguments": ["cc", "{flag}", "a.c"]}}]')
    write_ccdb("-DA=1")
    first = load_compile_commands(str(ccdb))
    assert load_compile_commands(str(ccdb)) is first
    assert first == {str(tmp_path / "a.c"): ("-DA=1",)}
    write_ccdb("-DA=2")                 # the same size
    os.utime(ccdb, ns=(0, os.stat(ccdb).st_mtime_ns + 1))
    assert load_compile_commands(str(ccdb)) == {str(tmp_path / "a.c"): ("-DA=2",)}


def test_a_compilation_database_without_paths_is_the_program_and_nothing_is_looked_through(tmp_path,
                                                                                          monkeypatch):
    # `qtool analyze -p compile_commands.json` from a repository's root: its units are the
    # database's, and the working directory (a C file of which is no unit) is not walked.
    ccdb = tmp_path / "compile_commands.json"
    ccdb.write_text(f'[{{"directory": "{tmp_path}", "file": "a.c", "arguments": ["cc", "-DA", "a.c"]}}]')
    write(tmp_path, "a.c", "int a(void) { return 0; }\n")
    write(tmp_path / "other", "b.c", "int b(void) { return 0; }\n")
    monkeypatch.chdir(tmp_path)
    walked = []
    real_walk = os.walk
    monkeypatch.setattr(os, "walk", lambda *a, **k: walked.append(a) or real_walk(*a, **k))
    items, _ = analyzer.program([], str(ccdb))
    assert items == [(str(tmp_path / "a.c"), ("-DA",))] and walked == []
    items, _ = analyzer.program([str(tmp_path)], str(ccdb))     # paths named: found below them
    assert [p for p, _ in items] == [str(tmp_path / "a.c"), str(tmp_path / "other" / "b.c")] and walked


def test_a_process_is_stalled_when_watched_without_using_cpu_for_the_stall_time(monkeypatch):
    # A real process that uses no CPU (sleep), watched on a clock of the test's: stalled once it
    # used none for the stall time, looked at every poll; a look long after the one before (the
    # watcher itself was stopped, by ^Z) starts it anew; a process /proc does not know never is.
    from qtool.analyzer.workers import Stalls
    monkeypatch.setenv("QPM_STALL_SECONDS", "1")
    now = [1000.0]
    stalls = Stalls(clock=lambda: now[0])
    assert stalls.poll() == 0.25
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        # (asleep: the CPU its start took is counted, and no more will be)
        while open(f"/proc/{sleeper.pid}/stat").read().rpartition(")")[2].split()[0] != "S":
            pass
        looks = []
        for _ in range(6):
            looks.append(stalls.stalled(sleeper.pid))
            now[0] += 0.25
        assert looks == [False, False, False, False, True, True]
        now[0] += 5                     # not looked at for 5 s: anew
        assert not stalls.stalled(sleeper.pid)
        now[0] += 0.25
        assert not stalls.stalled(sleeper.pid)
        stalls.forget(sleeper.pid)
        assert not stalls.stalled(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not stalls.stalled(sleeper.pid) and not stalls.stalled(2 ** 22 + 1)
    monkeypatch.setenv("QPM_STALL_SECONDS", "0")        # no watch at all
    off = Stalls(clock=lambda: now[0])
    assert off.poll() == 1.0 and not any(off.stalled(os.getpid()) for _ in range(3))


def test_a_workers_walk_makes_the_facts_the_parse_makes(tmp_path):
    # A worker answers with its walk's facts as written (unit.walk_unit), loaded only by the
    # process it answers (unit.facts_of_walk): the same facts as parse_unit's, for a unit that
    # parses and for one libclang cannot parse.
    src = tmp_path / "src"
    write(src, "api.h", '#include "qpm.h"\nint api_put(int *v QPM_IN(1)) QPM_COMPONENT(store);\n')
    app, _ = write(src, "app.c", '#include "api.h"\nint api_put(int *v) { return *v; }\n'
                   'int main(void) { int x = 1; return api_put(&x); }\n')
    for path in (app, str(src / "missing.c")):
        answer = unit.walk_unit(path, ("-I", str(src)))
        assert unit.facts_of_walk(path, answer) == unit.parse_unit(path, ("-I", str(src)))
    assert [d.code for d in unit.facts_of_walk(str(src / "missing.c"), answer).diagnostics] == ["QPM001"]
    assert len(unit.facts_of_walk(app, unit.walk_unit(app, ("-I", str(src)))).functions) == 3


def test_a_walk_cut_short_is_not_taken_for_facts(tmp_path):
    # What a walk that died wrote ends anywhere: every cut of it is refused (ValueError), never
    # loaded as fewer facts.
    app, _ = write(tmp_path, "app.c", "int f(int x) { return x; }\nint main(void) { return f(1); }\n")
    data = _walked_bytes(app, tmp_path)
    facts = unit.UnitFacts(app)
    unit.facts_of(unit.walked(data), facts)
    assert len(facts.functions) == 2 and len(facts.calls) == 1
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            unit.walked(data[:cut])


def _parse_walk(path: str, fd: int) -> int:
    """The walker's own entry point: parse path with the analyzer's flags, write its facts to fd."""
    return unit._parse_walk(unit.clang_env.walker(), path, unit._walker_argv(()))(fd)


def _walked_bytes(path: str, tmp_path) -> bytes:
    """What the walker writes of path, in one piece (through a file)."""
    out = tmp_path / "records"
    with open(out, "wb") as f:
        assert _parse_walk(path, f.fileno()) == 0
    return out.read_bytes()


def test_walk_that_fails_to_write_is_an_error(tmp_path, monkeypatch):
    app, _ = write(tmp_path, "app.c", "int main(void) { return 0; }\n")
    r, w = os.pipe()
    os.close(r)
    try:
        assert _parse_walk(app, w) == -32      # EPIPE, not a crash
    finally:
        os.close(w)


def test_parse_diagnostics_fixits_and_includes_are_libclangs(tmp_path):
    # The walker parses the unit itself and reports what libclang's own Python bindings report of
    # the same parse: each diagnostic (severity, place, message with its option), each fix-it that
    # inserts text at one place, and every file included (here through two levels of headers).
    src = tmp_path / "src"
    write(src, "inner.h", "#warning tab\there, a backslash \\ and a 'quote'\nint inner;\n")
    write(src, "outer.h", '#include "inner.h"\nstruct s { int a } v;\n')
    app, _ = write(src, "app.c", '#include "outer.h"\n#include <stdio.h>\n'
                   "int f(int x) { int y = x return y; }\n"
                   "int main(void) { unsigned u; if (u = 1) return 0; return g(1); }\n")
    facts = unit.parse_unit(app, ())
    ci = unit.clang_env.cindex()
    # (the bindings add their wheel's libc++ headers to every parse unless told of an -isystem)
    tu = ci.Index.create().parse(app, args=[*unit.clang_args(()), "-isystem", str(src)])
    expected = []
    for d in tu.diagnostics:
        loc = d.location
        fixits = tuple(FixIt(fx.range.start.file.name, fx.range.start.line, fx.range.start.column, fx.value)
                       for fx in d.fixits if fx.range.start.file is not None
                       and (fx.range.start.line, fx.range.start.column) == (fx.range.end.line, fx.range.end.column))
        expected.append(Diagnostic({2: "warning", 3: "error", 4: "error"}[d.severity], "QPM001",
                                   d.spelling + (f" [{d.option}]" if d.option else ""),
                                   Location(loc.file.name, loc.line, loc.column) if loc.file else None, fixits))
    assert facts.diagnostics == expected
    assert any("\t" in d.message and "\\" in d.message for d in facts.diagnostics)    # kept as written
    assert sum(len(d.fixits) for d in facts.diagnostics) >= 2
    assert [d[0] for d in facts.deps] == sorted({app, *(i.include.name for i in tu.get_includes())})
    assert {str(src / "inner.h"), str(src / "outer.h")} < {d[0] for d in facts.deps}


def test_parse_only_counts_the_errors_of_the_same_parse(tmp_path):
    # The benchmarks' floor: the analysis's own parse call, without the walk.
    import ctypes
    app, _ = write(tmp_path, "app.c", "int f(void) { return x; }\nint g(void) { return y }\n#warning w\n")
    argv = [a.encode() for a in unit.clang_args(())]
    errors = ctypes.c_int(-1)
    lib = unit.clang_env.walker()
    assert lib.qpm_parse_only(app.encode(), (ctypes.c_char_p * len(argv))(*argv), len(argv), ctypes.byref(errors)) == 0
    diags = unit.parse_unit(app, ()).diagnostics
    assert errors.value == sum(d.severity == "error" for d in diags) >= 2
    assert ctypes.c_ulonglong.in_dll(lib, "qpm_parse_ns").value > 0
    missing = str(tmp_path / "missing.c").encode()
    assert lib.qpm_parse_only(missing, (ctypes.c_char_p * len(argv))(*argv), len(argv), ctypes.byref(errors)) == 1


def test_a_file_libclang_cannot_parse_is_an_error(tmp_path):
    facts = unit.parse_unit(str(tmp_path / "missing.c"), ())
    assert [(d.severity, d.message) for d in facts.diagnostics] == [
        ("error", "libclang could not parse this file: Error parsing translation unit.")]
    assert facts.deps == []


# The per-unit cache.

def test_cache_reuses_units_and_sees_changes(tmp_path, monkeypatch):
    src = tmp_path / "src"
    write(src, "lib.c", """
        int leaf(int x) { return x * 2; }
    """)
    write(src, "mid.c", """
        int leaf(int x);
        int mid(int x) { return leaf(x) + 1; }
    """)
    app, app_text = write(src, "app.c", """
        int mid(int x);
        int main(void) { return mid(1); }
    """)
    misses = []
    looked_up = []
    real_cached = unit.cached

    def counting(path, args, seen=None):
        looked_up.append(path)
        hit = real_cached(path, args, seen)
        if hit is None:
            misses.append(path)
        return hit

    monkeypatch.setattr(unit, "cached", counting)
    first = analyze(src)
    assert len(misses) == 3
    assert first.diagnostics == ()

    # Nothing changed: the merged model is loaded whole, no unit's facts are even looked up.
    cache.wait()                # the model's cache entry is written in the background
    misses.clear()
    looked_up.clear()
    second = analyze(src)
    assert looked_up == []
    assert second == first

    with open(app, "a") as f:
        f.write("int extra(void) { return mid(2) + mid(3); }\n")
    misses.clear()
    third = analyze(src)
    assert misses == [app]
    assert third != first
    extra = fn(third, "extra")
    assert extra.location == Location(app, line_of(app_text, "int main") + 1, 5)
    assert extra.component == "app"
    e = edge(third, "extra", "mid")
    assert [s.location.line for s in e.sites] == [3, 3]
    assert e.weight == 2.0
    assert fn(third, "mid").frequency == 3.0
    assert fn(first, "mid").frequency == 1.0
    assert sorted(f.name for f in third.functions) == ["extra", "leaf", "main", "mid"]

    misses.clear()
    assert analyze(src) == third
    assert misses == []


# Merging again after an edit (build.merge with a previous merge).

MERGE_FILES = {
    "api.h": """
        #include "qpm.h"
        extern int hits;
        int b_put(const char *k QPM_STRING, int n);
        int b_get(int k);
        int a_run(int n);
        static inline void bump(void) { hits++; }
        static inline int put2(int k) { bump(); return b_get(k) + b_get(k + 1); }
    """,
    "a.c": """
        #include "api.h"
        QPM_FILE_COMPONENT(alpha);
        typedef int (*op)(int);
        static int twice(int x) { return 2 * x; }
        static op table[] = { twice, b_get };
        int hits;
        int a_run(int n)
        {
            int acc = 0;
            for (int i = 0; i < n; i++)
                acc += table[i & 1](i) + put2(i);
            return acc + b_put("k", n);
        }
    """,
    "b.c": """
        #include "api.h"
        static int cells[8];
        int b_put(const char *k, int n) { cells[n & 7] = k[0]; return n; }
        int b_get(int k) { return cells[k & 7]; }
    """,
    "main.c": """
        #include "api.h"
        int main(void) { return a_run(3) + put2(1); }
    """,
}

# Each edit: file -> (text replaced, replacement); applied to the files as the previous step left
# them.
MERGE_EDITS = [
    {"a.c": ("int acc = 0;", "int acc = 1;")},                                  # the model stays
    {"a.c": ("    int acc", "\n\n    int acc")},                                 # lines move
    {"b.c": ("return cells[k & 7];", "return cells[k & 7] + b_put(\"g\", k);")},   # a new edge
    {"a.c": ("acc += table", "if (n > 2) acc += table")},                        # weights change
    {"b.c": ("int b_put(const char *k, int n)", "int b_put(const char *k QPM_OUT(n), int n)")},  # QPM024
    {"a.c": ("QPM_FILE_COMPONENT(alpha);", "QPM_FILE_COMPONENT(first);")},      # a file's component
    {"main.c": ("int main(void)", "int b_get(int k) { return k; }\nint main(void)")},  # QPM036
    {"api.h": ("hits++;", "hits += 2;")},                                       # every unit
    {"main.c": ("int b_get(int k) { return k; }\n", ""), "b.c": ("static int cells", "int cells")},
]


def test_a_merge_reusing_the_previous_one_makes_the_same_model(tmp_path):
    from qtool.analyzer import build
    src = tmp_path / "src"
    paths = {name: write(src, name, text)[0] for name, text in MERGE_FILES.items()}
    units = {name: unit.parse_unit(path, ()) for name, path in paths.items() if name.endswith(".c")}
    names = sorted(units)
    previous = build.merge([units[n] for n in names])
    assert previous.model == analyze(src)
    reused = 0
    for edit in MERGE_EDITS:
        for name, (old, new) in edit.items():
            text = (src / name).read_text()
            assert old in text, (name, old)
            (src / name).write_text(text.replace(old, new, 1))
        for name in names:
            if name in edit or "api.h" in edit:
                units[name] = unit.parse_unit(paths[name], ())
        now = [units[n] for n in names]
        again = build.merge(now, previous)
        whole = build.merge(now)
        assert again.model == whole.model
        assert again.model.diagnostics == whole.model.diagnostics
        assert again.function_diagnostics == whole.function_diagnostics
        assert again.frequencies == whole.frequencies and again.file_components == whole.file_components
        reused += sum(f is previous.model.function_map.get(f.usr) for f in again.model.functions)
        if edit is MERGE_EDITS[0]:
            assert again.model is previous.model        # nothing in it changed
        previous = again
    assert reused > 0                                   # functions were reused, not merged again
    codes = {d.code for d in analyze(src).diagnostics}
    assert codes == set()                               # the last edit undid the errors


# Edits that only move lines (build._moved_lines): the previous model with the places moved.
MOVED_FILES = {
    "shared.h": """
        #include "qpm.h"
        int b_get(int k);
        int a_run(int n);
        extern int shared_count;
    """,
    "a.c": """
        #include "shared.h"
        QPM_FILE_COMPONENT(alpha);
        typedef int (*op)(int);
        int later(int x);
        static int twice(int x) { return 2 * x; }
        static op table[] = { twice, b_get };
        int counter;
        struct pair { int a } pair_v;
        static struct { int hits; } tally;      /* unnamed: its type and USR name its place */

        int a_run(int n)
        {
            int acc = 0;
            op local = n > 1 ? twice : b_get;
            for (int i = 0; i < n; i++)
                acc += table[i & 1](i) + b_get(i);
            if (acc = n)
                acc++;
            return acc + later(n) + local(n);
        }

        int later(int x) { counter += x; tally.hits++; return x + shared_count; }
    """,
    "b.c": """
        #include "shared.h"
        int shared_count;
        int b_get(int k) { return k + shared_count; }
        int main(void) { return a_run(3); }
    """,
    # Neither a.c nor b.c is most of the model (a unit that is is merged again whole).
    "c.c": "".join(f"int c{i}(int x) {{ return x * {i}; }}\n" for i in range(8)),
}

# (file, text replaced, replacement, whether only lines moved: True, or "same" when no place did
# and the model stays), each applied to what the one before left.
MOVED_EDITS = [
    ("a.c", "int acc = 0;", "int acc = 00;", "same"),     # a line longer: only `local`'s slot changes
    ("a.c", "    int acc = 0", "\n\n    int acc = 0", True),               # lines added in a body
    ("a.c", "#include", "/* a comment */\n#include", True),                 # every place moves
    ("a.c", "\n\n    int acc = 00;", "    int acc = 00;", True),            # lines taken out
    ("a.c", "int counter;", "int counter;\n\n\n", True),                    # between declarations
    ("a.c", "acc += table[i & 1](i) + b_get(i);", "acc += table[i & 1](i)\n            + b_get(i);", False),
    ("a.c", "    return acc", "    b_get(0);\n    return acc", False),    # a call added
    ("b.c", "int main", "\nint main", True),                                # the other unit
    ("b.c", "\nint main", "int dup(void) { return 0; }\nint main", False),
    ("a.c", "int counter;", "int counter;\nint dup(void) { return 1; }", False),   # QPM036 names a.c
    ("a.c", "#include", "\n#include", False),         # the message naming a place in a.c must change
]


def test_an_edit_that_only_moves_lines_moves_the_places_of_the_previous_model(tmp_path):
    from qtool.analyzer import build
    src = tmp_path / "src"
    paths = {name: write(src, name, text)[0] for name, text in MOVED_FILES.items()}
    names = ["a.c", "b.c", "c.c"]
    units = {name: unit.parse_unit(paths[name], ()) for name in names}
    previous = build.merge([units[n] for n in names])
    assert any(d.location and d.location.file == paths["a.c"] and d.fixits for d in previous.model.diagnostics)
    assert set(vars(unit.UnitFacts("x"))) == {*build._COMPARED, "deps"}     # every fact is compared
    local = [c for c in previous.model.indirect_calls if c.through == "local"]
    assert len(local) == 1 and sorted(local[0].targets) == sorted(f.usr for f in previous.model.functions
                                                                  if f.name in ("twice", "b_get"))
    for name, old, new, only_moved in MOVED_EDITS:
        text = (src / name).read_text()
        assert old in text, (name, old)
        (src / name).write_text(text.replace(old, new, 1))
        units[name] = unit.parse_unit(paths[name], ())
        now = [units[n] for n in names]
        moved = build._moved_lines(now, previous)
        assert (moved is not None) == bool(only_moved), (name, new)
        again = build.merge(now, previous)
        whole = build.merge(now)
        assert again.model == whole.model and again.model.diagnostics == whole.model.diagnostics
        assert again.function_diagnostics == whole.function_diagnostics
        assert again.frequencies == whole.frequencies and again.file_components == whole.file_components
        if name == "a.c" and only_moved is True and moved.model.globals != previous.model.globals:
            tallies = [g for g in moved.model.globals if g.name == "tally"]
            assert tallies and f"a.c:{line_of((src / 'a.c').read_text(), 'tally;')}:" in tallies[0].type
        if only_moved == "same":
            # The facts changed (a slot's name), not what they say: their digest, the model.
            was = previous.units[names.index(name)]
            assert units[name].indirect != was.indirect and units[name].taken != was.taken
            assert cache.facts_digest(units[name]) == cache.facts_digest(was)
            assert again.model is previous.model
        elif only_moved:
            assert moved.model == whole.model and again.model != previous.model
            # What no moved place is in is the previous model's own object.
            untouched = [f for f in again.model.functions if f.location.file != paths[name]]
            assert untouched and all(f is previous.model.function_map[f.usr] for f in untouched)
        previous = again
    dup = [d for d in previous.model.diagnostics if d.code == "QPM036"]
    text = (src / "a.c").read_text()
    assert dup and f"a.c:{line_of(text, 'int dup')}:" in dup[0].message


def test_a_unit_that_is_most_of_the_model_is_merged_again_whole(tmp_path):
    """Moving the places of most of the model costs more than merging it again (sqlite3.c: 0.26 s
    against 0.15 s): such a unit's edit, or any edit of a program of one unit, is merged again."""
    from qtool.analyzer import build
    src = tmp_path / "src"
    big, _ = write(src, "big.c", "".join(f"static int f{i}(int x) {{ return x + {i}; }}\n" for i in range(20)) +
                   "int main(void) { return f0(1) + f19(2); }\n")
    small, _ = write(src, "small.c", "int helper(int x) { return x; }\n")
    for paths in ([big], [big, small]):
        units = [unit.parse_unit(p, ()) for p in paths]
        previous = build.merge(units)
        (src / "big.c").write_text("\n" + (src / "big.c").read_text())
        units[0] = unit.parse_unit(big, ())
        assert build._mostly_changed(units, previous)
        again = build.merge(units, previous)
        assert again.frequencies is not previous.frequencies       # merged again, not moved
        assert again.model == build.merge(units).model and again.model != previous.model
        assert build.merge(units, again).model is again.model       # nothing changed since
        (src / "big.c").write_text((src / "big.c").read_text()[1:])


def test_facts_whose_local_slots_are_named_again_one_to_one_have_one_digest():
    def facts(*slots):
        f = unit.UnitFacts("f.c")
        f.flows = [("c:@F@g", slot, "-") for slot in slots]
        f.indirect = [("c:@F@g", "int (int)", "x", ("f.c", 3, 5), 0, 0, slots[0])]
        return f
    two = cache.facts_digest(facts("vc:f.c@10@F@g@x", "vc:f.c@20@F@g@x"))
    assert cache.facts_digest(facts("vc:f.c@11@F@g@x", "vc:f.c@21@F@g@x")) == two        # both moved a byte
    assert cache.facts_digest(facts("vc:f.c@11@F@g@x", "vc:f.c@11@F@g@x")) != two        # two slots made one
    assert cache.facts_digest(facts("vc:f.c@20@F@g@x", "vc:f.c@10@F@g@x")) == two        # named by first use
    assert cache.facts_digest(facts("ac:@F@g#0", "vc:f.c@20@F@g@x")) != two              # a parameter's slot


def test_lines_moved_in_a_file_another_unit_reads_are_merged_whole(tmp_path):
    """Both units read count.h: when only one of them is parsed again after its lines moved (as a
    merge may be asked to), the other's facts still hold its old places."""
    from qtool.analyzer import build
    src = tmp_path / "src"
    write(src, "count.h", "extern int shared_count;\n")
    a, _ = write(src, "a.c", '#include "count.h"\nint a_run(void) { return shared_count; }\n')
    b, _ = write(src, "b.c", '#include "count.h"\nint shared_count;\nint main(void) { return shared_count; }\n')
    units = [unit.parse_unit(a, ()), unit.parse_unit(b, ())]
    previous = build.merge(units)
    (src / "count.h").write_text("\n" + (src / "count.h").read_text())
    one = [unit.parse_unit(a, ()), units[1]]
    assert build._line_moves(previous.units[0], one[0])[0]    # its places did only move
    assert build._moved_lines(one, previous) is None
    whole = build.merge(one).model
    assert build.merge(one, previous).model == whole
    assert len(glob(whole, "shared_count").declarations) == 3     # b.c's old place, a.c's new one, b.c's


def test_model_of_facts_merges_again_only_what_changed(tmp_path, monkeypatch):
    """The SCons tool's analysis step: facts files, one a unit, merged with what the last merge
    of the same files left; a facts file that is not one (changed on disk) is an error naming it."""
    from qtool.analyzer import build
    from qtool.errors import UserError
    src = tmp_path / "src"
    paths = {name: write(src, name, text)[0] for name, text in MERGE_FILES.items()}
    facts = []
    for name in sorted(paths):
        if name.endswith(".c"):
            facts.append(str(tmp_path / (name + ".facts")))
            with open(facts[-1], "wb") as f:
                f.write(unit.entry_bytes(unit.parse_unit(paths[name], ())))
    expected = analyze(src)
    merges = []
    real = build.merge
    monkeypatch.setattr(build, "merge", lambda units, previous=None: merges.append(previous) or real(units, previous))
    first = analyzer.model_of_facts(facts)
    assert merges == [None] and first == expected
    cache.wait()
    assert analyzer.model_of_facts(facts) == first and len(merges) == 1      # nothing changed


    def edit(old, new):
        (src / "b.c").write_text((src / "b.c").read_text().replace(old, new))
        with open(facts[1], "wb") as f:
            f.write(unit.entry_bytes(unit.parse_unit(paths["b.c"], ())))
        cache.wait()
        return analyzer.model_of_facts(facts)

    # Inside a function body: the facts file changes, not what it says; nothing is merged.
    assert edit("return cells[k & 7];", "return cells[k & 6];") == first and len(merges) == 1
    # A new call: merged again, from the last merge.
    second = edit("return cells[k & 6];", "return cells[k & 6] + b_put(\"x\", k);")
    assert len(merges) == 2 and merges[-1] is not None
    assert second == real([unit.parse_unit(paths[n], ()) for n in ("a.c", "b.c", "main.c")]).model != first
    data = open(facts[1], "rb").read()
    with open(facts[1], "wb") as f:
        f.write(data.replace(b"b_put", b"b_pUt"))          # still a pickle; not what was written
    with pytest.raises(UserError) as e:
        analyzer.model_of_facts(facts)
    assert e.value.file == facts[1] and "build again" in e.value.message


def test_tentative_definition_is_the_globals_location(tmp_path):
    src = tmp_path / "src"
    write(src, "api.h", "extern int api_level;\n")
    write(src, "a.c", '#include "api.h"\nint api_level;\nint main(void) { return api_level; }\n')
    model = analyzer.analyze([str(src)])
    (g,) = model.globals
    assert g.location == Location(str(src / "a.c"), 2, 5)


def test_static_entities_of_same_named_files_stay_apart(tmp_path):
    src = tmp_path / "src"
    write(src / "x", "util.c", "static int helper(void) { return 1; }\nint fx(void) { return helper(); }\n"
                               "static int cnt;\nint gx(void) { return cnt; }\n")
    write(src / "y", "util.c", "static int helper(void) { return 2; }\nint fy(void) { return helper(); }\n"
                               "static int cnt;\nint gy(void) { return cnt; }\n")
    model = analyzer.analyze([str(src)])
    assert model.diagnostics == ()
    helpers = [f for f in model.functions if f.name == "helper"]
    assert len(helpers) == 2 and {h.location.file for h in helpers} == {str(src / "x" / "util.c"),
                                                                       str(src / "y" / "util.c")}
    fmap = model.function_map
    callers = sorted((fmap[e.caller].name, fmap[e.callee].location.file) for e in model.edges)
    assert callers == [("fx", str(src / "x" / "util.c")), ("fy", str(src / "y" / "util.c"))]
    counters = sorted((tuple(fmap[u].name for u in g.readers)) for g in model.globals if g.name == "cnt")
    assert counters == [("gx",), ("gy",)]
