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
    """plan.yaml text isolating each group of components that share a source file (a file is
    linked into one process) from the others; the group holding main() stays in main.  None
    when that leaves nothing to isolate."""
    model = analyzer.analyze([case], progress=False)
    parent = {c.name: c.name for c in model.components}

    def find(c):
        while parent[c] != c:
            c = parent[c]
        return c

    by_file: dict[str, set] = {}
    for f in model.functions:
        if f.defined and f.component:
            by_file.setdefault(f.location.file, set()).add(f.component)
    for comps in by_file.values():
        first, *rest = sorted(comps)
        for c in rest:
            parent[find(c)] = find(first)
    main = next((f.component for f in model.functions if f.name == "main" and f.defined and f.component), None)
    groups: dict[str, list] = {}
    for c in parent:
        groups.setdefault(find(c), []).append(c)
    domains = sorted(sorted(g) for root, g in groups.items() if main is None or root != find(main))
    if not domains:
        return None
    lines = ["version: 1", "isolate:"]
    for i, comps in enumerate(domains):
        lines += [f"  - domain: iso{i}", f"    components: [{', '.join(comps)}]"]
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
    """Cases with a plan of their own, or with more than one source file: a case of one file has
    nothing a plan could split today (a file is linked into one process)."""
    names = []
    for d in sorted(set(os.listdir(CASES)) - NOT_A_PROGRAM):
        path = os.path.join(CASES, d)
        if os.path.isdir(path) and (os.path.exists(os.path.join(path, "plan.yaml")) or
                                    len([f for f in os.listdir(path) if f.endswith(".c")]) > 1):
            names.append(d)
    return names


@pytest.mark.parametrize("name", _case_names())
def test_every_case_check_accepts_builds_split(name, tmp_path):
    work = tmp_path / name
    shutil.copytree(os.path.join(CASES, name), work)
    plan = work / "plan.yaml"
    if not plan.exists():
        text = _isolating_plan(str(work))
        assert text is not None, "every component shares a file with main()'s: nothing to isolate"
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


def test_check_refuses_a_file_split_between_domains(tmp_path):
    """A file is linked into one process: a plan separating two components of one file is
    refused by check at the function, with the plan's line, as the build refuses it."""
    case = tmp_path / "struct_ptr"
    shutil.copytree(os.path.join(CASES, "struct_ptr"), case)
    (case / "plan.yaml").write_text("version: 1\nisolate:\n  - domain: db_iso\n    components: [db]\n")
    proc = subprocess.run([QTOOL, "check", "--plan", "plan.yaml"], cwd=case, capture_output=True, text=True)
    assert proc.returncode == 1
    split = [line for line in proc.stdout.splitlines() if "a file is linked into one process" in line]
    assert len(split) == 1 and split[0].startswith("input.c:") and split[0].endswith("[QPM042]")
    assert "drawn at plan.yaml:3" in split[0]
    (case / "SConstruct").write_text(_sconstruct("struct_ptr"))
    build = subprocess.run([SCONS, "-Q", "ISOLATE=plan.yaml"], cwd=case, capture_output=True, text=True)
    assert build.returncode != 0
    assert split[0] in build.stderr.replace(f"{case}/plan.yaml", "plan.yaml")


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
