"""Diagnostic cases are data: tests/cases/<name>/ holds C sources (and a plan.yaml when the case
is about `qtool check`) and expected.txt, the exact diagnostic lines qtool prints for it."""

import os
import re

import pytest

CASES = os.path.join(os.path.dirname(__file__), "cases")
DIAGNOSTIC_LINE = re.compile(r"^\S+:\d+:\d+: (error|warning|note): ")


def case_names():
    return sorted(d for d in os.listdir(CASES) if os.path.isdir(os.path.join(CASES, d)))


@pytest.mark.parametrize("name", case_names())
def test_case(name, qtool):
    case = os.path.join(CASES, name)
    if os.path.exists(os.path.join(case, "plan.yaml")):
        rc, out, _ = qtool("check", "--plan", "plan.yaml", cwd=case)
    else:
        rc, out, _ = qtool("analyze", cwd=case)
    got = [line for line in out.splitlines() if DIAGNOSTIC_LINE.match(line)]
    with open(os.path.join(case, "expected.txt"), encoding="utf-8") as f:
        want = f.read().splitlines()
    assert got == want
    assert rc == (1 if any(": error: " in line for line in want) else 0)
