"""One contract for a crossing: what `qtool check` accepts, the split build generates and copies
correctly; what the build would refuse, check refuses first, at the plan's line.

Every case under tests/cases/ is split (by its own plan, or with each group of components that
share a file isolated from the others) and, when check accepts the plan, built with the generated
code compiled under gcc -Wall -Wextra -Werror -Wmisleading-indentation.
"""

import os
import shutil
import subprocess
import sys

import pytest

from builds import build_program, scons

from qtool import analyzer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = os.path.join(ROOT, "tests", "cases")
PROGRAMS = os.path.join(ROOT, "tests", "programs")
QTOOL = os.path.join(os.path.dirname(sys.executable), "qtool")
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
STRICT = ["-Wall", "-Wextra", "-Werror", "-Wmisleading-indentation"]


def _isolating_plan(case: str) -> str | None:
    """plan.yaml text isolating each component but the one holding main() in a domain of its own
    (a plan places functions, not files: components sharing a file are split too).  None when
    that leaves nothing to isolate."""
    model = analyzer.analyze([case], progress=False)
    main = next((f.component for f in model.functions if f.name == "main" and f.defined and f.component), None)
    domains = sorted(c.name for c in model.components if c.name != main)
    if not domains:
        return None
    lines = ["version: 1", "isolate:"]
    for i, comp in enumerate(domains):
        lines += [f"  - domain: iso{i}", f"    components: [{comp}]"]
    return "\n".join(lines) + "\n"


def _sconstruct(name: str) -> str:
    # The case's own sources are diagnostic examples, compiled as they are; the generated code
    # gets -Wall -Wextra -Werror from the tool, and -Wmisleading-indentation with them here.
    return ("import qtool.scons\n"
            "env = Environment(tools=['default', qtool.scons.tool],\n"
            "                  CCFLAGS=['-std=c11', '-D_GNU_SOURCE', '-w', '-Wmisleading-indentation'])\n"
            f"env.QpmProgram('{name}', Glob('*.c'))\n")


# Two programs in one directory (each with a main()): nothing to build.
NOT_A_PROGRAM = {"defined_twice"}


def _case_names():
    """Cases with a plan of their own, or with components besides the file's own (more than one
    source file, or a QPM_COMPONENT): a plan can split those."""
    names = []
    for d in sorted(set(os.listdir(CASES)) - NOT_A_PROGRAM):
        path = os.path.join(CASES, d)
        if not os.path.isdir(path):
            continue
        sources = [f for f in os.listdir(path) if f.endswith(".c")]
        annotated = any("QPM_COMPONENT(" in open(os.path.join(path, f), encoding="utf-8").read() for f in sources)
        if os.path.exists(os.path.join(path, "plan.yaml")) or len(sources) > 1 or annotated:
            names.append(d)
    return names


@pytest.mark.parametrize("name", _case_names())
def test_every_case_check_accepts_builds_split(name, tmp_path):
    work = tmp_path / name
    shutil.copytree(os.path.join(CASES, name), work)
    plan = work / "plan.yaml"
    if not plan.exists():
        text = _isolating_plan(str(work))
        assert text is not None, "every function is in main()'s component: nothing to isolate"
        plan.write_text(text)
    (work / "SConstruct").write_text(_sconstruct(name))
    check = subprocess.run([QTOOL, "check", "--plan", "plan.yaml"], cwd=work, capture_output=True, text=True)
    if check.returncode != 0:
        # Refused by check: the build refuses it too, before compiling anything.
        build = subprocess.run([SCONS, "-Q", "ISOLATE=plan.yaml"], cwd=work, capture_output=True, text=True)
        assert build.returncode != 0
        assert not list(work.glob("build/obj/*.o")), build.stdout
        return
    build = subprocess.run([SCONS, "-Q", "ISOLATE=plan.yaml"], cwd=work, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    generated = sorted(work.glob("build/plan/*.qpm/*.c"))
    assert generated
    for src in generated:
        subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", *STRICT, "-I", os.path.join(ROOT, "runtime"),
                        "-I", os.path.join(ROOT, "clang_attrs"), "-c", str(src), "-o", str(src) + ".strict.o"],
                       check=True)


_scons = scons


@pytest.fixture(scope="module")
def deep_arrays(tmp_path_factory):
    return build_program(tmp_path_factory, "deep_arrays", "split.yaml")


def test_arrays_of_deep_structs_are_deep_copied(deep_arrays):
    """Arrays of structs whose pointer fields carry QPM_COUNT or QPM_STRING, as array parameters
    (`const struct rec a[4]`, `struct rec a[3] QPM_IN(3)`), counted pointers, array fields and
    counted fields of structs: the callee in its own process reads the same data."""
    mono = subprocess.run([str(deep_arrays / "build" / "mono" / "deep_arrays")], capture_output=True,
                          text=True, timeout=60)
    split = subprocess.run([str(deep_arrays / "build" / "split" / "deep_arrays")], capture_output=True,
                           text=True, timeout=60)
    assert mono.returncode == 0 and split.returncode == 0, split.stderr
    assert mono.stderr == "store runs in this process\n"
    assert split.stderr == "store runs in another process\n"
    assert split.stdout == mono.stdout
    assert mono.stdout.splitlines()[-1] == "43"


def test_generated_code_of_a_deep_argument_last_is_indented_right(deep_arrays):
    """No QPM_SHARED global, deep-copied arguments last: nothing follows their encoding loop."""
    for src in (deep_arrays / "build" / "split" / "deep_arrays.qpm").glob("*.c"):
        subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", *STRICT, "-I", os.path.join(ROOT, "runtime"),
                        "-I", os.path.join(ROOT, "clang_attrs"), "-I", str(deep_arrays), "-fsyntax-only",
                        str(src)], check=True)


def test_check_refuses_what_the_build_cannot_copy(tmp_path):
    """Each refusal at the parameter (or function), with the plan line that draws the boundary;
    the build refuses the same plan with the same messages."""
    case = tmp_path / "contract_refusals"
    shutil.copytree(os.path.join(CASES, "contract_refusals"), case)
    proc = subprocess.run([QTOOL, "check", "--plan", "plan.yaml"], cwd=case, capture_output=True, text=True)
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert all("drawn at plan.yaml:3" in line for line in errors), errors
    by_name = {line.split("'")[1]: line for line in errors}
    assert by_name.keys() == {"store_each_name", "store_fill_recs", "store_update_recs", "store_first",
                              "store_grid"}
    assert "callback of type 'int (const char *)'" in by_name["store_each_name"]
    assert by_name["store_each_name"].endswith("[QPM013]")
    assert "QPM_OUT(n)" in by_name["store_fill_recs"] and by_name["store_fill_recs"].endswith("[QPM014]")
    assert "QPM_INOUT(2) by default" in by_name["store_update_recs"]
    assert "returns a struct" in by_name["store_first"]
    assert "arrays of structs with pointers" in by_name["store_grid"]
    (case / "SConstruct").write_text(_sconstruct("refusals"))
    build = subprocess.run([SCONS, "-Q", "ISOLATE=plan.yaml"], cwd=case, capture_output=True, text=True)
    assert build.returncode != 0
    for line in errors:
        assert line in build.stderr.replace(f"{case}/plan.yaml", "plan.yaml")
    assert not list(case.glob("build/obj/*.o"))
    assert not (case / "build" / "plan" / "refusals").exists()


def test_check_refuses_only_functions_that_cannot_leave_their_callers(tmp_path):
    """A plan places functions, not files.  Check refuses, at the function and with the plan's
    line, a static function whose QPM_COMPONENT puts it away from its callers, and an inline or
    hidden one gcc may copy into callers of another domain (QPM044); the build refuses the same
    plan with the same messages before compiling anything.  Without those, the same file builds
    split and runs as it does whole."""
    case = tmp_path / "placement_refusals"
    shutil.copytree(os.path.join(CASES, "placement_refusals"), case)
    proc = subprocess.run([QTOOL, "check", "--plan", "plan.yaml"], cwd=case, capture_output=True, text=True)
    assert proc.returncode == 1
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert {line.split("'")[1] for line in errors} == {"helper", "twice", "hidden_one"}
    assert all(line.endswith("[QPM044]") and "drawn at plan.yaml:3" in line for line in errors), errors
    (case / "SConstruct").write_text(_sconstruct("placement"))
    build = subprocess.run([SCONS, "-Q", "ISOLATE=plan.yaml"], cwd=case, capture_output=True, text=True)
    assert build.returncode != 0
    for line in errors:
        assert line in build.stderr.replace(f"{case}/plan.yaml", "plan.yaml")
    assert not list(case.glob("build/obj/*.o")) and not (case / "build" / "plan" / "placement").exists()

    src = case / "input.c"
    src.write_text(src.read_text().replace("QPM_COMPONENT(parse) static int helper", "static int helper")
                   .replace("inline int twice", "int twice").replace('__attribute__((visibility("hidden"))) ', ""))
    proc = subprocess.run([QTOOL, "check", "--plan", "plan.yaml"], cwd=case, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    _scons(case, "ISOLATE=plan.yaml")
    _scons(case)
    split = subprocess.run([str(case / "build" / "plan" / "placement")], timeout=60)
    mono = subprocess.run([str(case / "build" / "mono" / "placement")], timeout=60)
    assert split.returncode == mono.returncode == 21


def test_static_inline_helpers_of_a_header_run_split(tmp_path):
    """A header's static inline helpers are compiled into each unit: the calls one makes from the
    main program cross to the store's domain through generated stubs, the same helper's calls
    inside the store stay there, and the split program computes what the monolithic one does."""
    case = tmp_path / "static_inline_plan"
    shutil.copytree(os.path.join(CASES, "static_inline_plan"), case)
    (case / "SConstruct").write_text(_sconstruct("kv"))
    scons(case)
    scons(case, "ISOLATE=plan.yaml")
    assert (case / "build" / "plan" / "kv-store_iso").exists()
    for variant in ("mono", "plan"):
        run = subprocess.run([str(case / "build" / variant / "kv")], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, (variant, run.stdout, run.stderr)
