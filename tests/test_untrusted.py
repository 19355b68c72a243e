"""An untrusted domain cannot hurt the main process through the generated code (SPEC §3, trust).

The generated stubs and dispatchers of tests/programs/untrusted are driven with crafted messages
(tests/programs/hostile/untrusted_harness.c, under AddressSanitizer and UBSan): a reply is used
whole or not at all, every size from the peer is bounded before it is used, callback tokens are
bound to their type and their call.  And the program table says which ids each domain may have
the main process serve or relay: only those its own code calls.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from builds import SANITIZE, build_program, scons

from qtool import analyzer, stubgen
from qtool.plan import load_plan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(ROOT, "tests", "programs")
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")


_scons = scons


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory):
    return build_program(tmp_path_factory, "untrusted", "split.yaml")


def test_split_gives_the_monolithic_result(untrusted):
    mono = subprocess.run([str(untrusted / "build" / "mono" / "untrusted")], capture_output=True, text=True,
                          timeout=60)
    split = subprocess.run([str(untrusted / "build" / "split" / "untrusted")], capture_output=True, text=True,
                           timeout=60)
    assert mono.returncode == 0 and split.returncode == 0, split.stderr
    assert split.stdout == mono.stdout
    assert mono.stdout.splitlines() == ["fill 7 peer 12", "upper 5 QUIET 2", "name peer-7", "sum 9", "each 12",
                                        "map 2.00", "logged 42"]


def test_crafted_messages_cannot_hurt_the_main_process(untrusted, tmp_path):
    generated = untrusted / "build" / "split" / "untrusted.qpm" / "main.c"
    exe = tmp_path / "harness"
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", "-Wall", "-Wextra", "-Werror", *SANITIZE,
                    f'-DGENERATED="{generated}"', "-I", os.path.join(ROOT, "runtime"),
                    "-I", os.path.join(ROOT, "clang_attrs"),
                    os.path.join(PROGRAMS, "hostile", "untrusted_harness.c"),
                    os.path.join(ROOT, "runtime", "wire.c"), "-o", str(exe)], check=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line for line in lines if not line.startswith("ok ")] == []
    assert proc.returncode == 0
    assert len(lines) == 26


def _may_call(main_c: str) -> dict[int, set[str]]:
    """Per domain index: the names of the ids its row in the main program's table allows."""
    names = re.search(r"qpm__functions\[\] = \{(.*)\};", main_c).group(1)
    names = re.findall(r'"((?:[^"\\]|\\.)*)"', names)
    table = re.search(r"qpm__may_call\[\] = \{(.*)\};", main_c).group(1).split(", ")
    out = {}
    for d, entry in enumerate(table):
        if entry == "NULL":
            continue
        row = re.search(rf"{re.escape(entry)}\[\] = \{{(.*)\}};", main_c).group(1).split(", ")
        assert len(row) == len(names)
        out[d] = {n for n, flag in zip(names, row) if flag == "1"}
    return out


def _generate(program: str, plan: str) -> dict[str, str]:
    model = analyzer.analyze([os.path.join(PROGRAMS, program)], progress=False)
    p, diags = load_plan(os.path.join(PROGRAMS, program, plan))
    assert not diags
    return stubgen.generate(model, p, stubgen.layout(model, p), program)


def test_main_serves_a_domain_only_what_its_code_calls():
    """crossings, split: calc calls app_chain and app_apply in main and relay_triple in relay_iso,
    and serves calc_each, which takes a callback of type int (int) that main hands it; relay
    calls nothing.  The main domain has no row."""
    files = _generate("crossings", "split.yaml")
    assert "qpm__may_call[] = {NULL, qpm__may_call_1, qpm__may_call_2};" in files["main"]
    rows = _may_call(files["main"])
    assert rows == {1: {"app_apply", "app_chain", "relay_triple", "callback int (int)"}, 2: set()}
    # The domains' own tables say the same.
    assert _may_call(files["calc_iso"]) == rows == _may_call(files["relay_iso"])


def test_callback_ids_follow_the_functions_a_domain_serves():
    rows = _may_call(_generate("untrusted", "split.yaml")["main"])
    assert rows == {1: {"app_log", "callback double (double)", "callback int (int)"}}
