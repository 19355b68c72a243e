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


def test_struct_problems_do_not_depend_on_the_order_they_are_asked_in(monkeypatch):
    """struct_problems keeps what it worked out (marshal._problems): asked for the structs of the
    struct_cycles case in every order, each answer is the one worked out with nothing kept."""
    import itertools

    from qtool import marshal
    from qtool.analyzer import analyze
    monkeypatch.chdir(os.path.join(CASES, "struct_cycles"))
    structs = analyze(["input.c"], jobs=1, progress=False).struct_map
    encs = sorted("S" + usr for usr in structs)
    assert len(encs) == 5

    real = marshal.struct_problems

    def nothing_kept(enc, structs, seen=frozenset()):
        marshal._problems = (None, {}, {})
        return real(enc, structs, seen)

    monkeypatch.setattr(marshal, "struct_problems", nothing_kept)
    oracle = {enc: marshal.struct_problems(enc, structs) for enc in encs}
    monkeypatch.setattr(marshal, "struct_problems", real)
    assert any("recursive" in " ".join(why) for why in oracle.values())
    for order in itertools.permutations(encs):
        marshal._problems = (None, {}, {})
        assert {enc: marshal.struct_problems(enc, structs) for enc in order} == oracle, order


@pytest.mark.parametrize("name", ["char_ptr", "global_split", "indirect_helpers", "struct_root", "thread_entry"])
def test_boundary_checks_of_one_domain_are_the_full_checks(name, monkeypatch):
    """check_boundaries answers at once when every component runs in one domain (marshal._one_domain):
    for each way of mapping a case's components to domains, its answer is the full check's."""
    from qtool import marshal
    from qtool.analyzer import analyze
    case = os.path.join(CASES, name)
    monkeypatch.chdir(case)
    model = analyze(sorted(f for f in os.listdir(case) if f.endswith(".c")), jobs=1, progress=False)
    names = [c.name for c in model.components]
    assert len(names) >= 2
    mappings = {"each its own": lambda c: c, "all in one": lambda c: "one",
                "one left out": lambda c: None if c == names[0] else "one"}
    describe = lambda a, b: f"between '{a}' and '{b}'"     # noqa: E731
    found = {how: marshal.check_boundaries(model, domain_of, "warning", describe)
             for how, domain_of in mappings.items()}
    monkeypatch.setattr(marshal, "_one_domain", lambda model, domain_of: False)
    full = {how: marshal.check_boundaries(model, domain_of, "warning", describe)
            for how, domain_of in mappings.items()}
    assert found == full
    assert found["each its own"] and found["all in one"] == []
