"""Building the test programs: scons with the qtool tool, and the sanitized variant several test
modules use (every object and the runtime under AddressSanitizer and UBSan, recovery off)."""

import os
import subprocess
import sys

SCONS = os.path.join(os.path.dirname(sys.executable), "scons")
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def scons(cwd, *args):
    """scons -Q ARGS in cwd, which must succeed."""
    proc = subprocess.run([SCONS, "-Q", *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def write_sanitized_sconstruct(work, program):
    """An SConstruct in work building `program` from its *.c with the sanitizers on."""
    flags = ", ".join(repr(f) for f in SANITIZE)
    (work / "SConstruct").write_text(
        "import qtool.scons\n"
        "env = Environment(tools=['default', qtool.scons.tool],\n"
        f"                  CCFLAGS=['-std=c11', '-D_GNU_SOURCE', '-O1', '-g', {flags}],\n"
        f"                  LINKFLAGS=[{flags}])\n"
        f"env.QpmProgram('{program}', Glob('*.c'))\n")


def build_program(tmp_path_factory, name, *plans):
    """tests/programs/<name> copied into a fresh directory and built monolithic and split by each
    plan; returns the copy's path."""
    import shutil
    work = tmp_path_factory.mktemp(name) / name
    shutil.copytree(os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs", name), work)
    scons(work)
    for plan in plans:
        scons(work, f"ISOLATE={plan}")
    return work
