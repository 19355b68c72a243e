"""The runtime is compiled with the program's own flags (qtool/scons.py, QpmRuntime), C dialect
included: each of its files must build, warnings as errors, under the dialects real servers use,
where the C11 and POSIX declarations it needs are hidden unless it asks for them itself."""

import glob
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = sorted(glob.glob(os.path.join(ROOT, "runtime", "*.c")))


@pytest.mark.parametrize("std", ["c99", "gnu99"])
def test_the_runtime_builds_under_the_programs_dialect(std, tmp_path):
    assert SOURCES
    for src in SOURCES:
        proc = subprocess.run(["gcc", f"-std={std}", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread",
                               "-I", os.path.join(ROOT, "runtime"), "-c", src, "-o", str(tmp_path / "x.o")],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{os.path.basename(src)} under -std={std}:\n{proc.stderr}"
