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


def _pair(name: str, frozen: bool = True):
    """The same class body made a dataclass and a record."""
    made = []
    for decorate, field in ((lambda c: dataclasses.dataclass(frozen=frozen)(c), dataclasses.field),
                            (lambda c: rec.record(frozen=frozen)(c), rec.field)):
        ns: dict = {}
        exec(f"from __future__ import annotations\nclass {name}:\n{DECLARATIONS[name]}",
             {"field": field, "Location": Location}, ns)
        cls = decorate(ns[name])
        cls.__module__ = __name__
        made.append(cls)
    return made


ARGS = {"Plain": [(1, "a"), (2, "b")], "Defaults": [(1,), (1, "y"), (2, "z", (1, 2), Location("f", 3))],
        "One": [("u",), ("v",)], "Empty": [()]}


@pytest.mark.parametrize("name", sorted(DECLARATIONS))
def test_a_record_is_what_a_frozen_dataclass_is(name):
    Data, Rec = _pair(name)
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
