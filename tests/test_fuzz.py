"""The transport fuzzer, bounded: a hostile domain (tests/programs/hostile/hostile_transport.c)
against a main program built with AddressSanitizer and UndefinedBehaviorSanitizer.  bench/fuzz.py
runs the long campaign; this is its 15-second version."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import fuzz  # noqa: E402  (bench/fuzz.py)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    exe = fuzz.build(str(tmp))
    return fuzz.campaign(exe, str(tmp), seconds=15, threads=4, rate=5000)


def test_main_survives_a_hostile_domain(fuzzed):
    assert fuzz.verdict(fuzzed) == []
    # Every call ended one way or the other, and the domain really lied and was really restarted.
    assert fuzzed["calls"] > fuzzed["faulted"] > 0
    assert fuzzed["messages"] > 20000 and fuzzed["lies"] > 100
    assert fuzzed["restarts"] > 10


def test_every_kind_of_lie_was_told(fuzzed):
    assert all(n > 0 for n in fuzzed["kinds"]), dict(zip(fuzz.LIES, fuzzed["kinds"]))
