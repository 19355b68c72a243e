"""A hostile or broken peer cannot make the other side read or write out of bounds.

Everything here runs under AddressSanitizer and UndefinedBehaviorSanitizer with recovery off, so
a memory error ends the program with a sanitizer report instead of passing unnoticed.
"""

import glob
import os
import signal
import shutil
import subprocess

import pytest

from builds import SANITIZE, scons, write_sanitized_sconstruct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOSTILE = os.path.join(ROOT, "tests", "programs", "hostile")


@pytest.fixture(scope="module")
def asan_crossings(tmp_path_factory):
    """tests/programs/crossings split, every object and the runtime built with sanitizers."""
    work = tmp_path_factory.mktemp("asan") / "crossings"
    shutil.copytree(os.path.join(ROOT, "tests", "programs", "crossings"), work)
    write_sanitized_sconstruct(work, "crossings")
    scons(work, "ISOLATE=split.yaml")
    return work / "build" / "split"


def test_sanitized_split_build_runs_clean(asan_crossings):
    proc = subprocess.run([str(asan_crossings / "crossings")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "threads 16 of 16 agree" in proc.stdout
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr


@pytest.fixture(scope="module")
def evil(asan_crossings, tmp_path_factory):
    """The split program with its calc domain replaced by a domain that answers with garbage."""
    work = tmp_path_factory.mktemp("evil")
    shutil.copytree(asan_crossings, work / "split")
    evil_exe = work / "split" / "crossings-calc_iso"
    evil_exe.unlink()
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", *SANITIZE, "-pthread",
                    "-I", os.path.join(ROOT, "runtime"), os.path.join(HOSTILE, "evil_domain.c"),
                    *glob.glob(os.path.join(ROOT, "runtime", "*.c")), "-o", evil_exe], check=True)
    return work / "split" / "crossings"


# Well-formed zero replies to the calls before calc_fill (calc_inits, calc_add: an int and the
# shared int; calc_sum: a long and the shared int), so that the garbage reaches calc_fill.
BEFORE_FILL = "8,8,12"


@pytest.mark.parametrize("mode, prefix, call", [
    ("oversized", "", "calc_inits"),     # a reply longer than the channel
    ("empty", "", "calc_inits"),         # a reply too short for its return value
    ("kind", "", "calc_inits"),          # a message kind that does not exist
    ("error", "", "calc_inits"),         # an error code out of range
    ("zeros", "", "calc_inits"),         # a reply longer than what it carries
    ("zeros", BEFORE_FILL, "calc_fill"),      # a blob whose length disagrees with the caller's count
    ("huge_blob", BEFORE_FILL, "calc_fill"),  # a blob length near 2^64
])
def test_hostile_reply_is_rejected_without_memory_errors(evil, mode, prefix, call, tmp_path):
    proc = subprocess.run([str(evil)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "EVIL_MODE": mode, "EVIL_PREFIX": prefix,
                               "QPM_REPORT_DIR": str(tmp_path)})
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    # A domain that answers garbage is treated like a crashed one: killed and restarted (the
    # plan's policy: retry, 5 restarts a minute); it answers garbage again every time, so the
    # program ends once the restarts run out, killed like the domain, without reading any of it.
    assert f"domain calc_iso ended (bad message) in {call}; restarted" in proc.stderr
    assert "abort: max_restarts exceeded" in proc.stderr
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def test_decoder_fuzz(tmp_path):
    exe = tmp_path / "fuzz_wire"
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O1", "-g", *SANITIZE,
                    "-I", os.path.join(ROOT, "runtime"), os.path.join(HOSTILE, "fuzz_wire.c"),
                    os.path.join(ROOT, "runtime", "wire.c"), "-o", exe], check=True)
    for seed in ("1", "2", "3"):
        proc = subprocess.run([str(exe), seed, "100000"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        accepted, rejected = (int(x) for x in proc.stdout.split()[1::2])
        assert accepted + rejected == 100000
        assert accepted > 1000 and rejected > 1000      # both paths really exercised


def test_runaway_nesting_faults_the_domain_not_main(asan_crossings, tmp_path):
    """main -> calc -> main -> calc ... 200 deep: the domain's call past the bound (32) is its
    fault: it is killed and restarted, the outermost call fails (retry, then the zero value), and
    main goes on serving."""
    proc = subprocess.run([str(asan_crossings / "crossings")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CROSSINGS_DEEP": "200", "QPM_REPORT_DIR": str(tmp_path)})
    assert "Sanitizer" not in proc.stderr and "runtime error" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["deep 0", "add 42"]
    import json
    reports = [json.load(open(p)) for p in glob.glob(str(tmp_path / "crash-*.json"))]
    assert [r["signal"] for r in reports] == ["nesting too deep", "nesting too deep"]
    assert {r["function"] for r in reports} == {"calc_chain"}


def test_a_shallow_chain_is_within_the_bound(asan_crossings, tmp_path):
    proc = subprocess.run([str(asan_crossings / "crossings")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CROSSINGS_DEEP": "40", "QPM_REPORT_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    # 40 calls alternate: 20 of calc's calls into main, within the bound of 32.
    assert proc.stdout.splitlines() == ["deep 220", "add 42"]
    assert not glob.glob(str(tmp_path / "crash-*.json"))
