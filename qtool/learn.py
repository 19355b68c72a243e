"""Stage: reports -> which components to isolate, and why (the data-driven step).

    decide(model, store, policy, params, current) -> Decision

One cost model serves every policy, in seconds of service lost per second of running:

    boundary(c)  = what isolating c costs: its crossings per second x the cost of one crossing
                   (the cut stage's best domains for c, measured calls when stats exist)
    together(c)  = rate(c) x restart_cost_s      a fault kills the program: a whole restart and
                                                 the work lost with it (a parameter)
    isolated(c)  = rate(c) x recovery_s          a fault restarts c's domain (measured recovery)

where rate(c) is c's faults per second of observed running, pooled over every run and host:
the mean of a Gamma posterior (Jeffreys prior, shape faults + 1/2, rate seconds observed) and,
for uncertainty, its upper bound (mean + 2 standard deviations).  Seconds observed are the real
running time the stats reports measured (their duration_ms, summed over runs; a run killed by a
signal counts up to its last periodic write).  Without any stats report the observation time is
unknown: the decision then says so (Decision.observed_known, and a note) and its arithmetic
takes one second as a stand-in, which makes every rate "faults per run" and the crossings the
static ones from the analysis.

    optimistic    run together; isolate a component that crashed; merge it back once it has run
                  merge_after_s without a fault.
    pessimistic   start with every component isolated; merge a component once it has served
                  trust_calls calls without a fault, where merging saves the most first.
    cooperative   isolate where the expected cost of faults exceeds the boundary's, using the
                  upper bound of the pooled rate: a component that failed on other hosts is
                  isolated on a host that never saw it fail.

The chosen components go through the cut stage, so trusted helpers go where they are cheapest;
one that keeps state (writes globals) pays, to join a suspect's domain, the suspect's fault rate
times restart_cost_s: its state would be lost at each of the suspect's faults.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

from . import marshal
from .errors import UserError
from .model import ProgramModel
from .record import field, record
from .reports import Store

POLICIES = ("optimistic", "pessimistic", "cooperative")


@record
class Params:
    restart_cost_s: float = 1.0
    merge_after_s: float = 3600.0
    trust_calls: int = 10_000


@record
class ComponentFacts:
    name: str
    faults: int
    hosts_with_faults: int
    last_fault: str | None
    calls: float
    rate: float
    rate_upper: float
    boundary_s: float
    together_s: float
    isolated_s: float
    isolate: bool
    reason: str


@record
class Decision:
    policy: str
    observed_s: float
    runs: int
    hosts: tuple[str, ...]
    recovery_s: float
    components: tuple[ComponentFacts, ...]
    suggestion: cut.Suggestion | None
    notes: tuple[str, ...] = field(default=())
    observed_known: bool = True     # False: no stats report measured a running time (observed_s is 1)

    @property
    def isolated(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.components if c.isolate)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def program_of(model: ProgramModel, store: Store) -> str | None:
    """The program in the store whose reports match the analysed sources best (a store may pool
    reports of several programs): by crashes blamed on its components and calls to its functions."""
    comps = {c.name for c in model.components}
    names = {f.name for f in model.functions if f.defined}
    best, score = None, 0
    for program in store.programs():
        n = sum(1 for f in store.faults(program) if f.culprit in comps)
        n += sum(1 for callee in store.calls(program) if callee in names)
        if n > score:
            best, score = program, n
    return best


def decide(model: ProgramModel, store: Store, policy: str, params: Params, costs: cut.Costs,
           current: list[str] | None = None, program: str | None = None) -> Decision:
    from . import cut       # networkx, imported only when a decision is made
    program = program or program_of(model, store)
    faults = store.faults(program)
    runs = store.runs(program)
    observed = sum((d or 0) for _, _, d in runs) / 1000.0
    notes = []
    observed_known = observed > 0
    if not runs:
        notes.append("no statistics: observation time unknown (no stats report); rates assume 1 s of "
                     "running, crossings are the analysis's static counts")
    elif not observed_known:
        notes.append(f"no statistics: observation time unknown ({len(runs)} stats report(s) without a "
                     f"duration); rates assume 1 s of running")
    if not observed_known:
        observed = 1.0
    unfinished = store.unfinished_runs(program)
    if unfinished:
        notes.append(f"{unfinished} run(s) without a stats write at exit (killed, or still running): "
                     f"observed up to their last periodic write")
    calls = store.calls(program)
    recoveries = sorted(f.recovery_ms for f in faults if f.recovery_ms is not None)
    recovery_s = (recoveries[len(recoveries) // 2] / 1000.0) if recoveries else 0.001
    main = next((f.component for f in model.functions if f.name == "main" and f.defined), None)
    latest = max((t for t in (_parse_time(f.time) for f in faults) if t), default=None)
    latest_run = max((t for t in (_parse_time(r[1]) for r in runs) if t), default=None)
    now = max(t for t in (latest, latest_run, datetime.min.replace(tzinfo=timezone.utc)) if t)

    per_run_s = observed / max(1, len(runs))
    fmap = model.function_map
    comp_calls: dict[str, float] = {}
    for f in model.functions:
        if f.component and f.name in calls:
            comp_calls[f.component] = comp_calls.get(f.component, 0.0) + calls[f.name]

    facts = []
    candidates = [c.name for c in model.components if c.name != main]
    was_isolated = set(current) if current is not None else (set(candidates) if policy == "pessimistic" else set())
    for name in candidates:
        mine = [f for f in faults if f.culprit == name]
        n = len(mine)
        rate = (n + 0.5) / observed
        upper = rate + 2 * math.sqrt(n + 0.5) / observed
        try:
            s = cut.suggest(model, [name], costs, calls or None)
            boundary = s.candidates[0].cost_ns * 1e-9 / per_run_s
        except UserError as e:  # an isolation the constraints forbid costs "infinitely"
            boundary = math.inf
            notes.append(f"{name}: {e.message}")
        together = rate * params.restart_cost_s
        isolated = rate * recovery_s
        last = max((f.time for f in mine if f.time), default=None)
        if policy == "optimistic":
            recent = last is not None and latest is not None and _parse_time(last) is not None and \
                (now - _parse_time(last)).total_seconds() <= params.merge_after_s
            decide_isolate = n > 0 and recent and boundary != math.inf
            reason = (f"crashed {n} time(s), last {last}" if decide_isolate else
                      f"fault-free for over {params.merge_after_s:g} s: merged back" if n and name in was_isolated
                      else "no crash: runs together" if n == 0 else f"crashed, but {params.merge_after_s:g} s ago")
        elif policy == "pessimistic":
            trusted = n == 0 and comp_calls.get(name, 0.0) >= params.trust_calls
            decide_isolate = name in was_isolated and not trusted and boundary != math.inf
            reason = (f"trusted: {comp_calls.get(name, 0.0):.0f} calls without a fault (>= {params.trust_calls})"
                      if trusted else
                      f"{n} fault(s)" if n else
                      f"not yet trusted: {comp_calls.get(name, 0.0):.0f} of {params.trust_calls} fault-free calls")
        else:
            gain = upper * (params.restart_cost_s - recovery_s)
            decide_isolate = gain > boundary
            reason = (f"expected fault cost {gain:.3g} s/s (rate <= {upper:.3g}/s) "
                      f"{'>' if decide_isolate else '<='} boundary {boundary:.3g} s/s")
        facts.append(ComponentFacts(name, n, len({f.host for f in mine}), last, comp_calls.get(name, 0.0),
                                    rate, upper, boundary, together, isolated, decide_isolate, reason))

    if policy == "pessimistic":
        # Merge where it saves the most first: the order in which the trust was earned does not
        # matter for the plan, but the explanation lists merges by the boundary cost they save.
        facts.sort(key=lambda c: (c.isolate, -c.boundary_s if c.boundary_s != math.inf else 0))
    chosen = [c.name for c in facts if c.isolate]
    # A component that keeps state (writes globals) and joins a suspect's domain is restarted with
    # it, losing that state at each of the suspect's faults: as costly as a whole restart.
    worst_rate = max((c.rate for c in facts if c.isolate), default=0.0)
    stateful = {fmap[u].component for g in model.globals if not marshal.read_only(g.type)
                for u in g.writers if u in fmap and fmap[u].component}
    risk = {c: worst_rate * params.restart_cost_s * per_run_s * 1e9 for c in stateful}
    suggestion = cut.suggest(model, chosen, costs, calls or None, risk=risk) if chosen else None
    hosts = sorted({f.host for f in faults if f.host} | {r[0] for r in runs if r[0]})
    if program:
        notes.append(f"reports of program '{program}'")
    return Decision(policy, observed, len(runs), tuple(hosts), recovery_s, tuple(facts), suggestion,
                    tuple(notes), observed_known)
