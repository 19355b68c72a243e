"""What crosses back of an out buffer (runtime/wire.c's qrt_put_back and qrt_get_back), checked
byte for byte against the buffer: compiled with the real compiler, under the sanitizers."""

import os
import subprocess

from builds import SANITIZE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _checked(tmp_path, name):
    """tests/programs/wire/<name>.c built with runtime/wire.c under the sanitizers and run: it must
    exit 0; returns the count it prints ("checked N")."""
    exe = tmp_path / name
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", *SANITIZE,
                    "-I", os.path.join(ROOT, "runtime"), os.path.join(ROOT, "tests", "programs", "wire", f"{name}.c"),
                    os.path.join(ROOT, "runtime", "wire.c"), "-o", str(exe)], check=True)
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(proc.stdout.split()[1])


def test_an_out_buffer_sends_exactly_its_bytes_up_to_the_last_that_is_not_zero(tmp_path):
    assert _checked(tmp_path, "put_back") > 1_000_000


def test_every_out_buffer_starts_as_zeros_whatever_the_calls_before_wrote(tmp_path):
    """qrt_out_alloc zeroes only what may not be zeros: what qrt_put_back found written, zeroed
    again by qrt_out_free, and anything taken and written since.  Random calls, nested ones, error
    paths that send back nothing, and message copies beside the buffers; every buffer checked."""
    assert _checked(tmp_path, "out_alloc") > 30_000
