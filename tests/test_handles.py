"""QPM_OPAQUE values across the boundary (SPEC §2, §3 trust): a pointer of the main process
crosses to a domain as a token, and only a token main handed to that domain comes back as the
pointer; a domain's own handles go back to it as it made them.

tests/programs/handles passes main's pointers to keeper_iso and gets them back (as results, as
arguments of keeper's calls into main, inside deep-copied structs), hands keeper's own handles
around, and relays both between keeper_iso and other_iso; evil_iso's code forges what it sends.
"""

import glob
import json
import os
import shutil
import subprocess

import pytest

from builds import SANITIZE, SCONS, scons, write_sanitized_sconstruct
from procs import live_processes
from qtool import analyzer, stubgen
from qtool.plan import load_plan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = os.path.join(ROOT, "tests", "programs")


@pytest.fixture(scope="module")
def handles(tmp_path_factory):
    work = tmp_path_factory.mktemp("handles") / "handles"
    shutil.copytree(os.path.join(PROGRAMS, "handles"), work)
    for args in ([], ["ISOLATE=split.yaml"]):
        proc = subprocess.run([SCONS, "-Q", *args], cwd=work, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return work


def _run(exe, *args, reports=None):
    env = dict(os.environ)
    if reports is not None:
        env["QPM_REPORT_DIR"] = str(reports)
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60, env=env)


def _live_domains():
    return live_processes(lambda exe: os.path.basename(exe).startswith("handles-"))


def test_main_pointers_come_back_as_themselves(handles, tmp_path):
    """Every way a pointer of main's can go to a domain and come back gives main that pointer,
    which it uses; keeper's own box goes back to keeper as keeper made it; relayed through main
    between two domains, both arrive as they went."""
    mono = _run(handles / "build" / "mono" / "handles", reports=tmp_path / "mono")
    split = _run(handles / "build" / "split" / "handles", reports=tmp_path / "split")
    assert mono.returncode == 0 and split.returncode == 0, split.stderr
    assert split.stdout == mono.stdout
    assert mono.stdout.splitlines() == [
        "get 0: same 1 one", "get 1: same 2 two", "get 2: same 3 three",
        "echo 1 null 1 small 1 minus 1",
        "visit 101 102 touched 2",
        "box 42",
        "submit 42212",
        "slot 10: same", "slot 11: same", "slot 12: same", "slot 13: same", "slot 14: same",
        "resubmit 3330",
        "job direct 3416",
        "find 301: same",
        "relay 1 1 box 1",
        "other same same",
        "touched 2 0 1",
    ]
    assert not glob.glob(str(tmp_path / "split" / "crash-*.json")), split.stderr
    assert _live_domains() == []


def test_forged_handles_are_bad_messages(handles, tmp_path):
    """evil_iso (on_fault: error) answers with tokens main never handed it, or calls main with
    them, alone or inside a struct: each is a bad message, the call gets its fault value (NULL or
    -1), nothing of main's runs with it, the domain is restarted and main keeps serving.  The
    token main did hand out still works."""
    proc = _run(handles / "build" / "split" / "handles", "forge", reports=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "real token main's",
        "forged token refused",
        "forged mark refused",
        "next token refused",
        "touch real 701",
        "touch forged -1 touched 1",        # app_touch did not run
        "job forged 0 -1 run 0",            # a forged owner: app_job did not run
        "job forged 1 -1 run 0",            # ... in an element of a counted array
        "job forged 2 -1 run 0",            # ... in a nested struct of an array field
        "raw address not main's, back 1",
        "ping 42",
    ]
    reports = [json.load(open(p)) for p in sorted(glob.glob(str(tmp_path / "crash-*.json")))]
    assert [r["signal"] for r in reports] == ["bad message"] * 7
    assert {r["domain"] for r in reports} == {"evil_iso"}
    assert sorted(r["function"] for r in reports) == ["evil_forge"] * 3 + ["evil_job"] * 3 + ["evil_touch"]
    assert proc.stderr.count("domain evil_iso ended (bad message)") == 7
    assert _live_domains() == []


def test_sanitized_split_build_runs_clean(tmp_path):
    """The same, every object and the runtime built with AddressSanitizer and UBSan."""
    work = tmp_path / "handles"
    shutil.copytree(os.path.join(PROGRAMS, "handles"), work)
    write_sanitized_sconstruct(work, "handles")
    scons(work, "ISOLATE=split.yaml")
    for args in ([], ["forge"]):
        proc = _run(work / "build" / "split" / "handles", *args, reports=tmp_path / "reports")
        assert proc.returncode == 0, proc.stderr
        assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
        assert "DIFFERENT" not in proc.stdout and "USED" not in proc.stdout
    assert _live_domains() == []


def _generate(program, plan):
    model = analyzer.analyze([os.path.join(PROGRAMS, program)], progress=False)
    p, diags = load_plan(os.path.join(PROGRAMS, program, plan))
    assert not diags
    return stubgen.generate(model, p, stubgen.layout(model, p), program)


def test_only_the_main_process_translates():
    """The main process's code translates opaque values; a domain's passes them raw; a program
    with no opaque value crossing gets no translation at all."""
    files = _generate("handles", "split.yaml")
    main = files["main"]
    for call in ("qrt_handle_out(", "qrt_handle_in(", "qpm__hput_", "qpm__hget_",
                 "qpm__hin(qpm__peer, qpm__h_c, &qpm__hp_c)", "qpm__hout(qpm__peer, "):
        assert call in main, call
    for domain in ("keeper_iso", "other_iso", "evil_iso"):
        assert "qpm__hout" not in files[domain] and "qpm__hin" not in files[domain]
        assert "qrt_handle_" not in files[domain] and "qrt_peer_domain" not in files[domain]
    untrusted = _generate("untrusted", "split.yaml")["main"]
    assert "qpm__hout" not in untrusted and "qrt_peer_domain" not in untrusted
    # The message limit the stubs check a QPM_OUT buffer against is the runtime's.
    crossings = _generate("crossings", "split.yaml")["main"]
    assert "> QRT_MESSAGE_MAX" in crossings and "QPM__MESSAGE_MAX" not in crossings
