"""Records: classes of named fields, as @dataclass makes them, made at a fraction of the cost.

    @record                     frozen: fields set once, by __init__; equal and hashed by them
    @record(frozen=False)       fields may be set again; equal by them; not hashable
    x: T = field(default_factory=list)     a default made for each instance (field(default=v): v)
    fields(record_or_class)     the field names, in order
    replace(r, **changes)       a copy of r with these fields changed (through __init__)
    made_when_read(cls, *names) these fields may be given a Later: made when first read
    size(r, name)               len() of a field, without making it when it is a Later

A command's start defines some fifty record classes (the program model, the plan, what checks
them).  As dataclasses, they cost a run whose analysis is all cached a third of its time:
importing dataclasses imports inspect (and ast, dis, tokenize …), and each class compiles six
methods of its own.  Here only each class's __init__ is compiled (the others read the fields with
one attrgetter), and nothing is imported but operator.  What a
record is matches what a dataclass with the same declaration is: __init__ with the fields as
parameters, defaults and factories; __eq__ between two of the same class by their fields, in
order; __hash__ of the fields' tuple (frozen); __repr__ as "Class(field=value, …)"; __match_args__;
the fields in the instance's __dict__.  Pickle saves a record as its class and its fields, in
order, and loads it through __init__.

That a frozen record's fields are not assigned again is checked (FrozenInstanceError, as a frozen
dataclass raises) where QPM_CHECK_RECORDS=1 is set when the classes are made: the test suite sets
it.  Elsewhere it is not: the check is a __setattr__ of the class's own, and with one __init__
cannot set a field as an attribute but only through the instance's __dict__, made for each record
then instead of the attribute storage Python keeps inside the object; a record is made a third
faster without it and its fields are read faster (a model read from the cache and checked after an
edit of lighttpd: 6% of the whole command).  No code of qtool assigns a frozen record's field.
"""

from __future__ import annotations

import os
from operator import attrgetter

__all__ = ["record", "field", "fields", "replace", "FrozenInstanceError", "Later", "made_when_read", "size"]


class FrozenInstanceError(AttributeError):
    """A field of a frozen record assigned or deleted."""


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
# Whether frozen records refuse a field's assignment (see the module's doc), for the classes made
# from now on.
CHECKED = os.environ.get("QPM_CHECK_RECORDS") == "1"


class _Field:
    __slots__ = ("default", "factory")

    def __init__(self, default, factory):
        self.default = default
        self.factory = factory


def field(*, default=_MISSING, default_factory=_MISSING):
    """A field's default: a value, or a function called for each instance made without one."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("a field has a default or a default_factory, not both")
    return _Field(default, default_factory)


def record(cls=None, *, frozen: bool = True):
    """The class made a record (see the module's doc)."""
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def fields(obj) -> tuple[str, ...]:
    return obj.__record_fields__


def replace(obj, **changes):
    # The fields as the instance holds them: a Later not made yet is handed on as it is.
    held = obj.__dict__
    values = {name: held[name] for name in obj.__record_fields__}
    values.update(changes)
    return obj.__class__(**values)


class Later:
    """A field's value made when the field is first read (made_when_read): make(), called once
    however many records hold it; its length, len() of what make() returns, known before."""

    __slots__ = ("make", "length", "value")

    def __init__(self, make, length: int):
        self.make = make
        self.length = length
        self.value = _MISSING

    def get(self):
        if self.value is _MISSING:
            self.value = self.make()
            self.make = None
        return self.value


class _MadeWhenRead:
    """A record field that may hold a Later: the attribute reads what it makes (kept in the
    instance's __dict__ in its place from then on)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        held = obj.__dict__
        value = held[self.name]
        if value.__class__ is Later:
            value = held[self.name] = value.get()
        return value

    def __set__(self, obj, value):
        obj.__dict__[self.name] = value


def made_when_read(cls, *names: str):
    """Lets these fields of a record class be given a Later, whose value is made when the field is
    first read (by anything: an attribute, equality, hashing, pickling).  A value made in the
    background of a command, or not at all, costs its output nothing (the model's edges and
    arguments, which a cold `qtool analyze` with text output only counts)."""
    for name in names:
        if name not in cls.__record_fields__:
            raise TypeError(f"{cls.__qualname__} has no field {name!r}")
        setattr(cls, name, _MadeWhenRead(name))
    return cls


def size(obj, name: str) -> int:
    """len() of a record's field, without making it when it holds a Later not made yet."""
    value = obj.__dict__[name]
    return value.length if value.__class__ is Later else len(value)


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _compared(names: list[str]) -> dict:
    """__eq__, __hash__ and __repr__ of a record of these fields, as a dataclass has them: by
    the tuple of the fields, in order; and __reduce__, which pickles it as its class and that
    tuple."""
    if len(names) > 1:
        fields_of = attrgetter(*names)
    elif names:
        one = attrgetter(names[0])

        def fields_of(obj):
            return (one(obj),)
    else:
        def fields_of(obj):
            return ()

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return fields_of(self) == fields_of(other)
        return NotImplemented

    def __hash__(self):
        return hash(fields_of(self))

    def __repr__(self):
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={v!r}' for n, v in zip(names, fields_of(self)))})"

    def __reduce__(self):
        # Unpickled by the class's own __init__ with the fields in order: a quarter faster to load
        # than the default (a dict of the fields, built and then copied into __dict__), and a
        # third smaller (a model's functions, edges and arguments in the cache).  What a
        # cached_property kept in __dict__ is not saved: it is made again when asked for.
        return (self.__class__, fields_of(self))
    return {"__eq__": __eq__, "__hash__": __hash__, "__repr__": __repr__, "__reduce__": __reduce__}


def _make(cls, frozen: bool, checked: bool | None = None):
    checked = frozen and (CHECKED if checked is None else checked)
    names = list(cls.__dict__.get("__annotations__", {}))
    env: dict = {"_MISSING": _MISSING}
    params, body = [], []
    # A class that refuses assignments (checked) has its __init__ set the fields in the instance's
    # __dict__; any other sets them as attributes.
    target = "_fields_[{!r}]" if checked else "self.{}"
    for name in names:
        default = cls.__dict__.get(name, _MISSING)
        factory = _MISSING
        if isinstance(default, _Field):
            default, factory = default.default, default.factory
        if factory is not _MISSING:
            env[f"_f_{name}"] = factory
            params.append(f"{name}=_MISSING")
            body.append(f"    {target.format(name)} = _f_{name}() if {name} is _MISSING else {name}")
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            if default is not _MISSING:
                env[f"_d_{name}"] = default
                params.append(f"{name}=_d_{name}")
                setattr(cls, name, default)     # as a dataclass leaves it: the class attribute
            else:
                params.append(name)
            body.append(f"    {target.format(name)} = {name}")
    # Only __init__ is compiled for the class (its parameters are the fields); the others read
    # the fields with one attrgetter: compiling them too cost a command's start about 0.1 ms a
    # class.
    source = "\n".join([
        f"def __init__(self, {', '.join(params)}):" if params else "def __init__(self):",
        *(["    _fields_ = self.__dict__"] if checked and body else []),
        *(body or ["    pass"]),
    ])
    exec(source, env)
    methods = {"__init__": env["__init__"], **_compared(names)}
    for method, fn in methods.items():
        fn.__qualname__ = f"{cls.__qualname__}.{method}"
        if method != "__hash__" and method not in cls.__dict__:
            setattr(cls, method, fn)
    own = cls.__dict__
    if not ("__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)):  # not its own
        cls.__hash__ = methods["__hash__"] if frozen else None
    if checked:
        cls.__setattr__ = _frozen_setattr
        cls.__delattr__ = _frozen_delattr
    cls.__record_fields__ = tuple(names)
    cls.__match_args__ = tuple(names)
    return cls
