"""plan.yaml (SPEC §3): read it keeping line numbers, validate it, check it against a program.

    load_plan(path) -> (Plan, [Diagnostic])        shape and values of the file itself
    check_plan(plan, model) -> [Diagnostic]        components known, placed once, crossings marshal

A YAML syntax error or an unreadable file is a UserError; everything else is a diagnostic that
carries the plan file's line, so one run reports every problem.
"""

from __future__ import annotations

import math
import os
import re
from functools import cached_property

from . import marshal
from .errors import UserError
from .model import Diagnostic, Location, ProgramModel
from .record import record

MAIN_DOMAIN = "main"
ON_FAULT = ("retry", "error", "abort")
DEFAULTS = {"on_fault": "retry", "fault_value": None, "max_restarts": 5, "window_s": 60,
            "call_timeout_ms": 0}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Enforced ranges (SPEC §3), inclusive.
MAX_RESTARTS = (1, 10000)
WINDOW_S = (0.001, 86400)
CALL_TIMEOUT_MS = (0, 3600000)          # 0: no watchdog
FAULT_VALUE = (-(2 ** 63 - 1), 2 ** 63 - 1)   # a whole fault_value is a C constant of 64 bits


@record
class ComponentRef:
    name: str
    location: Location


@record
class Domain:
    name: str
    components: tuple[ComponentRef, ...]
    on_fault: str = "retry"
    fault_value: int | float | None = None
    max_restarts: int = 5
    window_s: float = 60
    call_timeout_ms: int = 0
    location: Location | None = None


@record
class Plan:
    path: str
    version: int
    domains: tuple[Domain, ...]

    def domain_of(self, component: str) -> str:
        """The domain that isolates the component (the first that names it), else main."""
        return self._domains.get(component, MAIN_DOMAIN)

    @cached_property
    def _domains(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for d in self.domains:
            for c in d.components:
                out.setdefault(c.name, d.name)
        return out

    @property
    def monolithic(self) -> bool:
        return not self.domains


def _loc(path: str, node) -> Location:
    return Location(path, node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(node):
    """The Python value of a scalar node, by YAML's own resolution rules."""
    import yaml
    return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value


def _repeated_keys(root, bad) -> None:
    """Every mapping of the document: a key given twice is an error at its second occurrence
    (YAML would silently keep the last value)."""
    import yaml
    seen_nodes: set[int] = set()
    todo = [root]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in first:
                        bad(k, f"'{k.value}' is given twice in the same mapping (first at line {first[k.value]}); "
                               "keep one")
                    else:
                        first[k.value] = k.start_mark.line + 1
                todo += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            todo += node.value


def _fields(node, bad) -> dict:
    """A mapping node's keys (plain words) to their (key node, value node), first occurrence."""
    import yaml
    fields: dict = {}
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            bad(k, "a key of the plan is a plain word")
        else:
            fields.setdefault(k.value, (k, v))
    return fields


def load_plan(path: str) -> tuple[Plan, list[Diagnostic]]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read plan: {e.strerror}", path) from None
    # A plan read before, with the same name and contents, is what it was then: kept in the
    # cache, it spares a run that only re-checks (an edit elsewhere) importing and running YAML.
    from .analyzer import cache
    key = os.fsencode(path) + b"\0" + data
    kept = cache.load_memo("plan", key)
    if isinstance(kept, tuple) and len(kept) == 2 and isinstance(kept[0], Plan):
        return kept[0], list(kept[1])
    plan, diags = _read_plan(path, data)
    cache.store_memo("plan", key, (plan, tuple(diags)))
    return plan, diags


def _read_plan(path: str, data: bytes) -> tuple[Plan, list[Diagnostic]]:
    import yaml
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise UserError(f"plan is not UTF-8 text (byte 0x{data[e.start]:02x})", path, line, column) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise UserError(f"plan is not valid YAML: {getattr(e, 'problem', None) or e}", path, line, col) from None

    diags: list[Diagnostic] = []

    def bad(node, msg: str) -> None:
        diags.append(Diagnostic("error", "QPM042", msg, _loc(path, node) if node is not None else Location(path, 1, 1)))

    if root is None or not isinstance(root, yaml.MappingNode):
        bad(root, "a plan is a mapping with 'version: 1' and an 'isolate' list")
        return Plan(path, 1, ()), diags
    _repeated_keys(root, bad)
    top = _fields(root, bad)
    for key, (knode, _) in top.items():
        if key not in ("version", "isolate"):
            bad(knode, f"unknown key '{key}' in plan (expected 'version' and 'isolate')")
    version = 1
    if "version" not in top:
        bad(root, "plan lacks 'version: 1'")
    else:
        vnode = top["version"][1]
        if not isinstance(vnode, yaml.ScalarNode) or _scalar(vnode) != 1:
            bad(vnode, "unsupported plan version (this qtool reads version 1)")
    domains: list[Domain] = []
    isolate = top.get("isolate", (None, None))[1]
    if isolate is None or (isinstance(isolate, yaml.ScalarNode) and _scalar(isolate) is None):
        return Plan(path, version, ()), diags
    if not isinstance(isolate, yaml.SequenceNode):
        bad(isolate, "'isolate' is a list of domains")
        return Plan(path, version, ()), diags
    for entry in isolate.value:
        d = _domain(path, entry, bad)
        if d is not None:
            domains.append(d)
    seen: dict[str, Domain] = {}
    for d in domains:
        if d.name == MAIN_DOMAIN:
            diags.append(Diagnostic("error", "QPM042", f"domain name '{MAIN_DOMAIN}' is reserved for the "
                                                       "domain holding main()", d.location))
        elif d.name in seen:
            diags.append(Diagnostic("error", "QPM042", f"domain '{d.name}' is defined twice "
                                                       f"(first at line {seen[d.name].location.line})", d.location))
        seen.setdefault(d.name, d)
    return Plan(path, version, tuple(domains)), diags


def _domain(path: str, node, bad) -> Domain | None:
    import yaml
    if not isinstance(node, yaml.MappingNode):
        bad(node, "each 'isolate' entry is a mapping with 'domain' and 'components'")
        return None
    fields = _fields(node, bad)
    values = dict(DEFAULTS)
    for key, (knode, vnode) in fields.items():
        if key not in ("domain", "components", *DEFAULTS):
            bad(knode, f"unknown key '{key}' in domain entry (expected domain, components, "
                       f"{', '.join(DEFAULTS)})")
            continue
        if key in ("domain", "components"):
            continue
        if not isinstance(vnode, yaml.ScalarNode):
            bad(vnode, f"'{key}' takes a single value")
            continue
        v = _scalar(vnode)
        # bool is not a number here: 'max_restarts: true' is a mistake, not 1.
        whole = type(v) is int
        number = whole or (type(v) is float and math.isfinite(v))
        if key == "on_fault" and v not in ON_FAULT:
            bad(vnode, f"on_fault is one of {', '.join(ON_FAULT)}, not '{vnode.value}'")
        elif key == "max_restarts" and not (whole and MAX_RESTARTS[0] <= v <= MAX_RESTARTS[1]):
            bad(vnode, f"max_restarts is a whole number from {MAX_RESTARTS[0]} to {MAX_RESTARTS[1]}, "
                       f"not '{vnode.value}'")
        elif key == "call_timeout_ms" and not (whole and CALL_TIMEOUT_MS[0] <= v <= CALL_TIMEOUT_MS[1]):
            bad(vnode, f"call_timeout_ms is a whole number of milliseconds from {CALL_TIMEOUT_MS[0]} "
                       f"(no watchdog) to {CALL_TIMEOUT_MS[1]}, not '{vnode.value}'")
        elif key == "window_s" and not (number and WINDOW_S[0] <= v <= WINDOW_S[1]):
            bad(vnode, f"window_s is a number of seconds from {WINDOW_S[0]} to {WINDOW_S[1]}, "
                       f"not '{vnode.value}'")
        elif key == "fault_value" and v is not None and not (
                (whole and FAULT_VALUE[0] <= v <= FAULT_VALUE[1]) or (type(v) is float and number)):
            bad(vnode, f"fault_value is a finite number (a scalar return value; a whole one from "
                       f"{FAULT_VALUE[0]} to {FAULT_VALUE[1]}), not '{vnode.value}'")
        else:
            values[key] = v
    if "domain" not in fields:
        bad(node, "domain entry lacks 'domain: <name>'")
        return None
    name_node = fields["domain"][1]
    name = name_node.value if isinstance(name_node, yaml.ScalarNode) else ""
    if not _NAME.match(name):
        bad(name_node, f"domain name '{name}' is not a C identifier (it names an executable and symbols)")
        return None
    comps: list[ComponentRef] = []
    cnode = fields.get("components", (None, None))[1]
    if cnode is None:
        bad(node, f"domain '{name}' lacks 'components: [...]'")
    elif not isinstance(cnode, yaml.SequenceNode) or not cnode.value:
        bad(cnode, f"'components' of domain '{name}' is a non-empty list of component names")
    else:
        for c in cnode.value:
            if not isinstance(c, yaml.ScalarNode) or not c.value:
                bad(c, "a component name is a plain word")
            else:
                comps.append(ComponentRef(c.value, _loc(path, c)))
    if values["fault_value"] is not None and values["on_fault"] not in ("error", "retry"):
        bad(fields["fault_value"][1], "fault_value only applies with on_fault: error or retry "
                                      "(what the culprit gets after a failed retry)")
    return Domain(name, tuple(comps), values["on_fault"], values["fault_value"], values["max_restarts"],
                  values["window_s"], values["call_timeout_ms"], _loc(path, name_node))


def check_plan(plan: Plan, model: ProgramModel, signatures: marshal.Signatures | None = None) -> list[Diagnostic]:
    """The plan against the program: names, placement, and every crossing it creates
    (signatures: see marshal.check_boundaries)."""
    diags: list[Diagnostic] = []
    known = model.component_map
    placed: dict[str, ComponentRef] = {}
    for d in plan.domains:
        for c in d.components:
            if c.name not in known:
                near = ", ".join(sorted(known)) or "none"
                diags.append(Diagnostic("error", "QPM040", f"plan names unknown component '{c.name}' "
                                                           f"(components: {near})", c.location))
            elif c.name in placed:
                diags.append(Diagnostic("error", "QPM041", f"component '{c.name}' is placed twice (first at "
                                                           f"line {placed[c.name].location.line})", c.location))
            else:
                placed[c.name] = c
    main = next((f for f in model.functions if f.name == "main" and f.defined and f.linkage == "external"), None)
    if main is not None and main.component in placed:
        ref = placed[main.component]
        diags.append(Diagnostic("error", "QPM043", f"component '{main.component}' holds main() and cannot be "
                                                   "isolated; move main() to a component of its own", ref.location))

    lines = {d.name: d.location.line for d in plan.domains if d.location}

    def describe(a: str, b: str) -> str:
        # The plan's line that draws this boundary: the isolated domain's entry.
        line = lines.get(b if b != MAIN_DOMAIN else a, 0)
        return f"across the boundary from domain '{a}' to '{b}' drawn at {plan.path}:{line}"

    diags += marshal.check_boundaries(model, plan.domain_of, "error", describe, signatures)
    if plan.domains:
        # What else the split build by this plan would refuse: reported here first.
        from .stubgen import build_problems
        diags += build_problems(model, plan.domain_of, describe)
    return diags


def render(domains: list[tuple[str, list[str]]], header: str, on_fault: str = "retry",
           max_restarts: int = 5) -> str:
    """plan.yaml text for these domains (none: the monolithic plan).  max_restarts is clamped
    into its range, so what is written always loads."""
    max_restarts = _clamp_restarts(max_restarts)
    lines = [f"# {line}" for line in header.splitlines()] + ["version: 1"]
    if not domains:
        return "\n".join(lines + ["isolate: []"]) + "\n"
    lines.append("isolate:")
    for d, comps in domains:
        lines += [f"  - domain: {d}", f"    components: [{', '.join(comps)}]", f"    on_fault: {on_fault}",
                  f"    max_restarts: {max_restarts}", "    window_s: 60", "    call_timeout_ms: 2000"]
    return "\n".join(lines) + "\n"


def _clamp_restarts(n) -> int:
    """max_restarts into MAX_RESTARTS: a whole number, whatever arithmetic produced it."""
    lo, hi = MAX_RESTARTS
    if isinstance(n, int):
        return min(max(int(n), lo), hi)
    try:
        f = float(n)
    except (TypeError, ValueError, OverflowError):
        return DEFAULTS["max_restarts"]
    if math.isnan(f):
        return DEFAULTS["max_restarts"]
    return int(min(max(math.ceil(f) if math.isfinite(f) else f, lo), hi))
