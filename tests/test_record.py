"""qtool.record: records behave as the dataclasses of the same declaration do (dataclasses is the
oracle)."""

from __future__ import annotations

import dataclasses
import os
import pickle
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from qtool import record as rec  # noqa: E402
from qtool.model import Location  # noqa: E402

DECLARATIONS = {
    "Plain": "    a: int\n    b: str\n",
    "Defaults": "    a: int\n    b: str = 'x'\n    c: tuple = field(default=())\n    d: Location | None = None\n",
    "One": "    only: str\n",
    "Empty": "    pass\n",
}


def _pair(name: str, frozen: bool = True, checked: bool = True):
    """The same class body made a dataclass and a record (checked: one that refuses a frozen
    field's assignment, as the tests make them; else as a run makes them)."""
    made = []
    for decorate, field in ((lambda c: dataclasses.dataclass(frozen=frozen)(c), dataclasses.field),
                            (lambda c: rec._make(c, frozen, checked), rec.field)):
        ns: dict = {}
        exec(f"from __future__ import annotations\nclass {name}:\n{DECLARATIONS[name]}",
             {"field": field, "Location": Location}, ns)
        cls = decorate(ns[name])
        cls.__module__ = __name__
        made.append(cls)
    return made


ARGS = {"Plain": [(1, "a"), (2, "b")], "Defaults": [(1,), (1, "y"), (2, "z", (1, 2), Location("f", 3))],
        "One": [("u",), ("v",)], "Empty": [()]}


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "as-run"])
@pytest.mark.parametrize("name", sorted(DECLARATIONS))
def test_a_record_is_what_a_frozen_dataclass_is(name, checked):
    Data, Rec = _pair(name, checked=checked)
    globals()[name] = Rec               # pickle finds the record class by its name
    values = [(Data(*args), Rec(*args)) for args in ARGS[name]]
    for d, r in values:
        assert repr(r) == repr(d)
        assert hash(r) == hash(d)
        assert r == Rec(*dataclasses.astuple(d)) and not (r != Rec(*dataclasses.astuple(d)))
        assert r != d and (r == 1) is False         # another class: not equal
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            back = pickle.loads(pickle.dumps(r, protocol))
            assert back == r and vars(back) == vars(r)
        if checked:
            with pytest.raises(rec.FrozenInstanceError):
                r.a = 3
            with pytest.raises(AttributeError):
                del r.a
        names = tuple(f.name for f in dataclasses.fields(d))
        assert rec.fields(r) == Rec.__match_args__ == Data.__match_args__ == names
        if names:
            changed = rec.replace(r, **{names[0]: 9})
            assert changed == Rec(*dataclasses.astuple(dataclasses.replace(d, **{names[0]: 9})))
    # Equality and order of fields as a dataclass compares them.
    pairs = [(a, b) for a in values for b in values]
    assert [x[0] == y[0] for x, y in pairs] == [x[1] == y[1] for x, y in pairs]
    assert len({r for _, r in values}) == len({d for d, _ in values})


def test_a_record_that_is_not_frozen_is_not_hashable_and_makes_each_default_anew():
    @rec.record(frozen=False)
    class Facts:
        path: str
        items: list = rec.field(default_factory=list)

    a, b = Facts("p"), Facts("p")
    assert a == b and a.items is not b.items
    a.items.append(1)
    a.path = "q"
    assert a != b and repr(a) == "test_a_record_that_is_not_frozen_is_not_hashable_and_makes_each_default_anew." \
        "<locals>.Facts(path='q', items=[1])"
    with pytest.raises(TypeError):
        hash(a)
    assert not hasattr(Facts, "items")          # a factory's field leaves no class attribute


def test_a_records_own_methods_stay():
    @rec.record
    class Own:
        x: int

        def __repr__(self) -> str:
            return "own"

    assert repr(Own(1)) == "own" and Own(1) == Own(1) and hash(Own(1)) == hash((1,))


def test_a_field_has_one_default():
    with pytest.raises(ValueError):
        rec.field(default=1, default_factory=list)


def test_a_run_makes_records_unchecked_and_analyses_as_the_tests_do(tmp_path):
    # qtool as a user runs it (QPM_CHECK_RECORDS unset: its records set fields as attributes, no
    # __setattr__ of their own) and as the tests run it: the same model of the sample, as JSON.
    import subprocess
    code = ("import sys\nfrom qtool import cli, model\n"
            "print(model.Function.__setattr__ is object.__setattr__, file=sys.stderr)\n"
            "sys.exit(cli.main(['analyze', '--format', 'json', sys.argv[1]]))")
    outs = []
    for checked in ("1", None):
        env = {k: v for k, v in os.environ.items() if k != "QPM_CHECK_RECORDS"}
        if checked:
            env["QPM_CHECK_RECORDS"] = checked
        env.update(PYTHONPATH=ROOT, QPM_CACHE_DIR=str(tmp_path / f"cache-{checked}"))
        proc = subprocess.run([sys.executable, "-c", code, os.path.join(ROOT, "samples", "kvstore")],
                              capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.splitlines()[0] == ("False" if checked else "True")
        outs.append(proc.stdout)
    import json
    assert outs[0] == outs[1] and json.loads(outs[0])["schema"] == "qpm.model/1"


@pytest.mark.parametrize("checked", [True, False])
def test_a_field_made_when_read_is_made_once_by_whatever_reads_it_first(checked):
    ns: dict = {}
    exec("from __future__ import annotations\nclass Model:\n    name: str\n    edges: tuple\n"
         "    arguments: tuple = ()\n", {}, ns)
    Model = rec.made_when_read(rec._make(ns["Model"], True, checked), "edges", "arguments")
    Model.__module__ = __name__
    made = []

    def later(value):
        return rec.Later(lambda: made.append(value) or value, len(value))

    m = Model("m", later((1, 2, 3)))
    assert m.arguments == () and rec.size(m, "edges") == 3 and made == []
    # A copy hands the value on unmade; the first read of either makes it, once, for both.
    copy = rec.replace(m, name="n")
    assert made == [] and rec.size(copy, "edges") == 3
    assert copy.edges == (1, 2, 3) and made == [(1, 2, 3)]
    assert rec.size(m, "edges") == 3        # made by the copy, not yet read through m
    assert m.edges is copy.edges and made == [(1, 2, 3)] and rec.size(m, "edges") == 3
    # Equality, hashing and pickling (what pickle saves of a record) read it as any field.
    for read in (lambda x: x == Model("m", (1, 2), ()), hash, lambda x: x.__reduce__()):
        made.clear()
        x = Model("m", later((1, 2)), later((4,)))
        read(x)
        assert made == [(1, 2), (4,)]
    cls, values = Model("m", later((7,))).__reduce__()
    assert values == ("m", (7,), ()) and cls(*values) == Model("m", (7,))
    if checked:
        with pytest.raises(rec.FrozenInstanceError):
            m.edges = ()
    with pytest.raises(TypeError):
        rec.made_when_read(Model, "nothing")
