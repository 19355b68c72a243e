"""Fix-its: where they point (the declaration holding the function's annotations) and `--fix`,
which applies them to the sources in place (qtool/fixits.py)."""

import json
import os
import shutil
import stat
import subprocess
import textwrap

import pytest

from builds import scons
from qtool import fixits
from qtool.model import Diagnostic, FixIt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASE = os.path.join(ROOT, "tests", "cases", "header_fixits")
SCONSTRUCT = """\
import qtool.scons
env = Environment(tools=['default', qtool.scons.tool],
                  CCFLAGS=['-std=c11', '-D_GNU_SOURCE', '-O2', '-Wall', '-Wextra', '-Werror'])
env.QpmProgram('prog', Glob('*.c'))
"""
PLAN = """\
version: 1
isolate:
  - domain: store_iso
    components: [store]
  - domain: log_iso
    components: [log]
"""
CHANGES = ["api.h:8: inserted 'QPM_IN(len)'",
           "api.h:9: inserted 'QPM_CALLBACK'",
           "log.h:6: inserted '#include <qpm.h>'",
           "log.h:8: inserted 'QPM_STRING'",
           "log.h:9: inserted 'QPM_RETURNS_STRING'",
           "--fix: 5 insertions in 2 files"]


def copy_case(tmp_path, name="case"):
    work = tmp_path / name
    shutil.copytree(CASE, work)
    (work / "expected.txt").unlink()
    return work


def contents(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def write(directory, name, text):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def fixit_places(qtool, cwd, *args):
    rc, out, _ = qtool("analyze", "--format", "json", *args, cwd=cwd)
    return [(f["file"], f["line"], f["column"], f["insert"])
            for d in json.loads(out)["diagnostics"] for f in d.get("fixits", [])]


# Where a fix-it points.

def test_fixits_point_at_the_header_prototype(qtool):
    assert fixit_places(qtool, CASE) == [
        ("log.h", 7, 30, " QPM_STRING"),            # no declaration annotated: the header prototype
        ("log.h", 8, 1, "QPM_RETURNS_STRING "),     # the function itself, on the same prototype
        ("api.h", 8, 51, " QPM_IN(len)"),           # beside the prototype's QPM_COMPONENT
        ("api.h", 9, 58, " QPM_CALLBACK")]


def test_fixit_goes_where_the_annotations_are(qtool, tmp_path):
    # Annotated definition, bare header prototype: the definition.  Both annotated: the header.
    # A forward declaration in a .c file is no header.  No header at all: the definition.
    write(tmp_path, "api.h", """
        #include "qpm.h"
        #include <stddef.h>
        int put_def(const void *data, size_t len);
        QPM_COMPONENT(store) int put_both(const void *data, size_t len);
        """)
    write(tmp_path, "store.c", """
        #include "api.h"
        QPM_COMPONENT(store) int put_def(const void *data, size_t len) { return data != 0 && len; }
        QPM_COMPONENT(store) int put_both(const void *data, size_t len) { return data != 0 && len; }
        QPM_COMPONENT(store) int put_lone(const void *data, size_t len) { return data != 0 && len; }
        """)
    write(tmp_path, "main.c", """
        #include "api.h"
        int put_lone(const void *data, size_t len);
        int main(void) { return put_def("a", 1) + put_both("b", 1) + put_lone("c", 1); }
        """)
    assert sorted(fixit_places(qtool, tmp_path)) == [
        ("api.h", 4, 51, " QPM_IN(len)"),
        ("store.c", 2, 50, " QPM_IN(len)"),
        ("store.c", 4, 51, " QPM_IN(len)")]


# --fix end to end.

def test_fix_then_the_split_build_runs_like_the_monolithic_one(qtool, tmp_path):
    work = copy_case(tmp_path)
    (work / "SConstruct").write_text(SCONSTRUCT)
    (work / "split.yaml").write_text(PLAN)
    os.chmod(work / "log.h", 0o640)
    original = contents(work)
    rc, _, err = qtool("check", "--plan", "split.yaml", cwd=work)
    assert rc == 1 and "4 errors" in err                     # the plan cannot be built as it is

    rc, out, err = qtool("check", "--plan", "split.yaml", "--fix", cwd=work)
    assert rc == 0, out
    assert out == ""                                         # nothing remains
    assert err.splitlines()[:-1] == CHANGES
    fixed = contents(work)
    assert sorted(fixed) == sorted(original)                 # no temporary file left behind
    assert fixed["log.c"] == original["log.c"] and fixed["store.c"] == original["store.c"]
    assert (work / "api.h").read_text().splitlines()[7:9] == [
        "QPM_COMPONENT(store) int store_put(const char *buf QPM_IN(len), size_t len);",
        "QPM_COMPONENT(store) int store_each(int n, int (*fn)(int) QPM_CALLBACK);"]
    assert (work / "log.h").read_text().splitlines()[4:9] == [
        "#include <stddef.h>", '#include <qpm.h>', "",
        "int log_line(const char *text QPM_STRING);",
        "QPM_RETURNS_STRING char *log_last(void);"]
    assert stat.S_IMODE(os.stat(work / "log.h").st_mode) == 0o640

    # Twice: nothing more changes, byte for byte.
    rc, out, err = qtool("analyze", "--fix", cwd=work)
    assert rc == 0 and err == "--fix: no change\n0 errors, 0 warnings\n"
    assert contents(work) == fixed

    scons(work)
    scons(work, "ISOLATE=split.yaml")
    mono = subprocess.run([work / "build" / "mono" / "prog"], capture_output=True, text=True, timeout=60)
    split = subprocess.run([work / "build" / "split" / "prog"], capture_output=True, text=True, timeout=60)
    assert mono.returncode == 0 and split.returncode == 0, split.stderr
    assert mono.stdout == "put 1080\neach 14\ntotal 1080\nline 5\nlast hello\n"
    assert split.stdout == mono.stdout
    assert (work / "build" / "split" / "prog-store_iso").exists()
    assert (work / "build" / "split" / "prog-log_iso").exists()


def test_fixed_sources_still_build_with_gcc_alone(tmp_path, qtool):
    work = copy_case(tmp_path)
    rc, _, err = qtool("analyze", "--fix", cwd=work)
    assert rc == 0 and err.splitlines() == CHANGES + ["0 errors, 0 warnings"]     # as README.md shows
    exe = tmp_path / "prog"
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I", os.path.join(ROOT, "clang_attrs"),
                    *sorted(str(p) for p in work.glob("*.c")), "-o", exe], check=True)
    assert subprocess.run([exe], capture_output=True, text=True).stdout.startswith("put 1080\n")


def test_read_only_file_is_left_untouched_and_said_so(qtool, tmp_path):
    work = copy_case(tmp_path)
    os.chmod(work / "log.h", 0o444)
    before = (work / "log.h").read_bytes()
    rc, out, err = qtool("check", "--plan", "plan.yaml", "--fix", cwd=_with_plan(work))
    assert rc == 1                                           # log's errors remain
    assert (work / "log.h").read_bytes() == before
    lines = err.splitlines()
    assert "log.h:7:30: warning: fix-it 'QPM_STRING' not applied: the file is read-only" in lines
    assert "log.h:8:1: warning: fix-it 'QPM_RETURNS_STRING' not applied: the file is read-only" in lines
    assert "api.h:8: inserted 'QPM_IN(len)'" in lines
    assert "--fix: 2 insertions in 1 file, 2 fix-its not applied" in lines
    assert [line.split(":")[0] for line in out.splitlines() if ": error: " in line] == ["log.c", "log.c"]
    assert sorted(p.name for p in work.iterdir()) == ["api.h", "log.c", "log.h", "main.c", "plan.yaml", "store.c"]


def _with_plan(work):
    (work / "plan.yaml").write_text(PLAN)
    return work


def test_file_outside_the_analysed_paths_is_not_fixed(qtool, tmp_path):
    write(tmp_path, "include/log.h", """
        int log_line(const char *text);
        """)
    write(tmp_path, "src/log.c", """
        #include "../include/log.h"
        int log_line(const char *text) { return text[0]; }
        """)
    write(tmp_path, "src/main.c", """
        #include "../include/log.h"
        int main(void) { return log_line("x"); }
        """)
    before = (tmp_path / "include" / "log.h").read_text()
    rc, _, err = qtool("analyze", "--fix", "src", cwd=tmp_path)
    assert rc == 0
    assert ("include/log.h:1:30: warning: fix-it 'QPM_STRING' not applied: "
            "the file is outside the analysed paths") in err.splitlines()
    assert (tmp_path / "include" / "log.h").read_text() == before
    rc, _, err = qtool("analyze", "--fix", ".", cwd=tmp_path)
    assert err.splitlines()[:2] == ["include/log.h:1: inserted '#include <qpm.h>'",
                                    "include/log.h:2: inserted 'QPM_STRING'"]
    assert (tmp_path / "include" / "log.h").read_text() == '#include <qpm.h>\nint log_line(const char *text QPM_STRING);\n'


def test_output_formats_without_fix_leave_the_sources_alone(qtool, tmp_path):
    work = copy_case(tmp_path)
    before = contents(work)
    rc, out, _ = qtool("analyze", "--format", "sarif", cwd=work)
    assert rc == 0
    fixes = [r["fixes"][0]["artifactChanges"][0] for r in json.loads(out)["runs"][0]["results"]]
    assert [(f["artifactLocation"]["uri"], f["replacements"][0]["deletedRegion"]["startLine"]) for f in fixes] == [
        ("log.h", 7), ("log.h", 8), ("api.h", 8), ("api.h", 9)]
    rc, out, _ = qtool("check", "--plan", _with_plan(work) / "plan.yaml", "--format", "json", cwd=work)
    assert rc == 1 and len(json.loads(out)["diagnostics"]) == 4
    assert contents(work) == {**before, "plan.yaml": PLAN.encode()}


def test_fix_with_json_output_reports_what_remains(qtool, tmp_path):
    work = copy_case(tmp_path)
    write(work, "extra.c", """
        #include "qpm.h"
        QPM_COMPONENT(store) int store_mystery(void *thing) { return thing != 0; }
        int call_it(void) { return store_mystery(0); }
        """)
    rc, out, err = qtool("analyze", "--fix", "--format", "json", cwd=work)
    assert rc == 0
    doc = json.loads(out)                                   # stdout stays parseable
    assert [(d["code"], d["file"]) for d in doc["diagnostics"]] == [("QPM010", "extra.c")]
    assert "--fix: 5 insertions in 2 files" in err


# Applying fix-its, from the module.

def diag(*fixes):
    return Diagnostic("warning", "QPM011", "m", None, tuple(FixIt(*f) for f in fixes))


def test_same_insertion_twice_is_made_once_and_a_conflict_is_refused(tmp_path):
    src = write(tmp_path, "a.c", """
        #include "qpm.h"
        int f(const char *s, int n);
        """)
    out = fixits.apply([diag((str(src), 2, 20, " QPM_STRING")), diag((str(src), 2, 20, " QPM_STRING")),
                        diag((str(src), 2, 20, " QPM_IN(n)"))], [str(tmp_path)])
    assert src.read_text() == '#include "qpm.h"\nint f(const char *s QPM_STRING, int n);\n'
    assert [(c.line, c.insert) for c in out.changes] == [(2, "QPM_STRING")]
    (r,) = out.refused
    assert r.fixit.insert == " QPM_IN(n)" and r.reason == "'QPM_STRING' is inserted at the same place"
    again = fixits.apply([diag((str(src), 2, 20, " QPM_STRING"))], [str(tmp_path)])
    assert again.changes == [] and again.files == []


def test_a_diagnostics_fixits_apply_together_or_not_at_all(tmp_path):
    good = write(tmp_path, "good.h", "int f(char *s);\n")
    locked = write(tmp_path, "locked.h", "int g(char *s);\n")
    os.chmod(locked, 0o400)
    out = fixits.apply([diag((str(good), 1, 13, " QPM_STRING"), (str(locked), 1, 13, " QPM_STRING")),
                        diag((str(good), 1, 99, " QPM_STRING"))], [str(tmp_path)])
    assert good.read_text() == "int f(char *s);\n" and locked.read_text() == "int g(char *s);\n"
    assert [r.reason for r in out.refused] == ["the file is read-only"] * 2 + [
        "the file has no line 1, column 99 (changed since it was analysed?)"]


@pytest.mark.parametrize("before, after", [
    # After the last leading #include, not one inside an #if.
    ("/* x */\n#include <a.h>\n#ifdef B\n#include <b.h>\n#endif\nint f(char *s);\n",
     '/* x */\n#include <a.h>\n#include <qpm.h>\n#ifdef B\n#include <b.h>\n#endif\nint f(char *s QPM_STRING);\n'),
    # Inside a header guard.
    ("#ifndef A_H\n#define A_H\n#include <stddef.h>\nint f(char *s);\n#endif\n",
     '#ifndef A_H\n#define A_H\n#include <stddef.h>\n#include <qpm.h>\nint f(char *s QPM_STRING);\n#endif\n'),
    # A guard and no #include; #pragma once.
    ("#ifndef A_H\n#define A_H\nint f(char *s);\n#endif\n",
     '#ifndef A_H\n#define A_H\n#include <qpm.h>\nint f(char *s QPM_STRING);\n#endif\n'),
    ("#pragma once\nint f(char *s);\n", '#pragma once\n#include <qpm.h>\nint f(char *s QPM_STRING);\n'),
    # No directive: after the leading comment; Windows line ends kept.
    ("/* licence\n   #include <no.h> */\nint f(char *s);\n",
     '/* licence\n   #include <no.h> */\n#include <qpm.h>\nint f(char *s QPM_STRING);\n'),
    ("#include <a.h>\r\nint f(char *s);\r\n", '#include <a.h>\r\n#include <qpm.h>\r\nint f(char *s QPM_STRING);\r\n'),
    # A byte order mark stays first.
    ("\ufeffint f(char *s);\n", '\ufeff#include <qpm.h>\nint f(char *s QPM_STRING);\n'),
    # Already included, in any form.
    ("#include <qpm.h>\nint f(char *s);\n", "#include <qpm.h>\nint f(char *s QPM_STRING);\n"),
    ('#include "../clang_attrs/qpm.h"\nint f(char *s);\n',
     '#include "../clang_attrs/qpm.h"\nint f(char *s QPM_STRING);\n'),
])
def test_qpm_h_is_included_where_it_belongs(tmp_path, before, after):
    src = tmp_path / "a.h"
    src.write_bytes(before.encode())
    line = before.replace("\r", "").replace("\ufeff", "").split("\n").index("int f(char *s);") + 1
    column = 14 + 3 * (line == 1 and before.startswith("\ufeff"))     # clang counts the mark's bytes
    out = fixits.apply([diag((str(src), line, column, " QPM_STRING"))], [str(tmp_path)])
    assert src.read_bytes() == after.encode()
    assert out.refused == []
    # Once there, the annotation is recognised: the same fix-it changes nothing more.
    line = after.replace("\r", "").replace("\ufeff", "").split("\n").index("int f(char *s QPM_STRING);") + 1
    assert fixits.apply([diag((str(src), line, 14, " QPM_STRING"))], [str(tmp_path)]).files == []
    assert src.read_bytes() == after.encode()


def test_symbolic_link_rewrites_its_target(tmp_path):
    real = write(tmp_path, "real/a.h", '#include "qpm.h"\nint f(char *s);\n')
    (tmp_path / "src").mkdir()
    link = tmp_path / "src" / "a.h"
    link.symlink_to(real)
    out = fixits.apply([diag((str(link), 2, 14, " QPM_STRING"))], [str(tmp_path / "src")])
    assert [r.reason for r in out.refused] == ["the file is outside the analysed paths"]
    out = fixits.apply([diag((str(link), 2, 14, " QPM_STRING"))], [str(tmp_path)])
    assert link.is_symlink() and real.read_text() == '#include "qpm.h"\nint f(char *s QPM_STRING);\n'
