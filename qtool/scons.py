"""The SCons tool: `env.QpmProgram('prog', Glob('*.c'))` builds a program whole or split.

    import qtool.scons
    env = Environment(tools=['default', qtool.scons.tool])
    env.QpmProgram('prog', Glob('*.c'))

`scons` builds build/mono/prog; `scons ISOLATE=plan.yaml` builds build/<plan stem>/prog and one
prog-<domain> beside it per isolated domain.  The steps, each an SCons node with exact
dependencies:

    source.c  -> build/obj/source.o              compiled once, shared by every variant
    source.c  -> build/analysis/source.facts     the analyzer's facts (header dependencies scanned)
    facts + plan -> build/<variant>/qpm_gen/*.c  stubs, dispatchers, program table; layout.json
    objects + generated + runtime -> executables (the layout says which objects go where)

Switching plans relinks but never recompiles a component; editing a source re-analyses only it;
editing the plan regenerates the stubs.  compile_commands.json is written beside the SConstruct.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import subprocess
import sys

import SCons.Action
import SCons.Builder
import SCons.Script
import SCons.Tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLANG_ATTRS = os.path.join(ROOT, "clang_attrs")
RUNTIME = os.path.join(ROOT, "runtime")
RUNTIME_SOURCES = ("transport.c", "process.c", "wire.c", "report.c", "stats.c")


def _fail(message: str) -> int:
    sys.stderr.write(message.rstrip("\n") + "\n")
    return 1


def _code_id(*folders: str) -> str:
    """A digest of qtool's own code in these folders: outputs made by other code are made again."""
    import hashlib
    h = hashlib.sha256()
    for folder in folders:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), folder)
        for name in sorted(os.listdir(path)):
            if name.endswith((".py", ".c")):
                with open(os.path.join(path, name), "rb") as f:
                    h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def _parse_args(env, target, source) -> tuple[str, ...]:
    from .analyzer.sources import _clean
    line = env.subst("$CC $CFLAGS $CCFLAGS $_CCCOMCOM", target=target, source=source)
    return _clean(shlex.split(line) + ["-c", str(source[0])], env.Dir("#").abspath)


def _analyze_action(target, source, env):
    from .analyzer import clang_env, unit
    from .errors import UserError
    path = source[0].abspath
    try:
        clang_env.check_version()
        facts = unit.parse_unit(path, _parse_args(env, target, source))
    except UserError as e:
        return _fail(str(e))
    from .atomic import write_bytes
    write_bytes(target[0].abspath, pickle.dumps(facts, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


def _load_model(source):
    from .analyzer.build import build_model
    units = []
    for node in source:
        if str(node).endswith(".facts"):
            with open(node.abspath, "rb") as f:
                units.append(pickle.load(f))
    return build_model(units)


def _stubs_action(target, source, env):
    from . import marshal, output, stubgen
    from .atomic import write_text
    from .errors import UserError
    from .plan import check_plan, load_plan
    plan_path = env["QPM_PLAN"]
    model = _load_model(source)
    try:
        if plan_path:
            plan, diags = load_plan(plan_path)
            diags += check_plan(plan, model)
        else:
            plan, diags = None, []
        diags = marshal.sorted_unique(list(model.diagnostics) + diags + marshal.check_annotations(model))
        errors = [d for d in diags if d.severity == "error"]
        if errors:
            return _fail(output.diagnostics_text(errors, os.getcwd()) +
                         f"qtool: {len(errors)} error(s): nothing generated")
        gen_dir = os.path.dirname(target[0].abspath)
        if plan is None or plan.monolithic:     # no plan, or isolate: [], is the monolithic build
            files = {"mono": stubgen.generate_mono(model, env["QPM_PROGRAM"])}
            placement = {"mono": sorted({f.location.file for f in model.functions if f.defined})}
        else:
            lay = stubgen.layout(model, plan)
            files = stubgen.generate(model, plan, lay, env["QPM_PROGRAM"])
            placement = {d: list(fs) for d, fs in lay.files.items()}
    except UserError as e:
        return _fail(str(e))
    for name, text in files.items():
        write_text(os.path.join(gen_dir, name + ".c"), text)
    write_text(os.path.join(gen_dir, "layout.json"), json.dumps(placement, indent=1, sort_keys=True) + "\n")
    return 0


def _link_action(target, source, env):
    """Links the objects the layout places in this executable, plus generated code and runtime."""
    layout_node = next(s for s in source if str(s).endswith("layout.json"))
    with open(layout_node.abspath, encoding="utf-8") as f:
        placement = json.load(f)
    domain = env["QPM_DOMAIN"]
    objects = env["QPM_OBJECT_OF"]
    wanted = [objects[src] for src in placement.get(domain, []) if src in objects]
    extra = [s.abspath for s in source if str(s).endswith((".o", ".a")) and s.abspath not in objects.values()]
    cmd = (shlex.split(env.subst("$LINK $LINKFLAGS")) + ["-o", target[0].abspath] + wanted + extra +
           shlex.split(env.subst("$_LIBDIRFLAGS $_LIBFLAGS")))
    if env.get("QPM_VERBOSE"):
        print(" ".join(cmd))
    return subprocess.call(cmd)


def _variant(plan: str | None) -> str:
    return os.path.splitext(os.path.basename(plan))[0] if plan else "mono"


def _plan_domains(plan: str) -> list[str]:
    from .errors import UserError
    from .plan import load_plan
    try:
        p, diags = load_plan(plan)
    except UserError as e:
        SCons.Script.Exit(_fail(str(e)) + 1)
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        from . import output
        _fail(output.diagnostics_text(errors, os.getcwd()))
        SCons.Script.Exit(2)
    return [d.name for d in p.domains]


def QpmProgram(env, target, sources, plan=None):
    """Builds program `target` from `sources`, split by `plan` (default: ISOLATE=… or none)."""
    plan = plan if plan is not None else SCons.Script.ARGUMENTS.get("ISOLATE") or None
    if plan:
        plan = env.File(plan).abspath
    name = os.path.basename(str(target))
    variant = _variant(plan)
    build = env.Dir(env.subst("$QPM_BUILD_DIR"))
    top = env.Dir("#").abspath
    sources = [env.File(s) for s in env.Flatten(sources)]

    objects, facts, object_of = [], [], {}
    for src in sources:
        rel = os.path.splitext(os.path.relpath(src.abspath, top))[0]
        obj = env.Object(build.File(f"obj/{rel}.o"), src)
        objects += obj
        object_of[src.abspath] = obj[0].abspath
        facts += env.QpmAnalyze(build.File(f"analysis/{rel}.facts"), src)

    gen_dir = build.Dir(f"{variant}/{name}.qpm")
    isolated = _plan_domains(plan) if plan else []
    domains = ["main", *isolated] if isolated else ["mono"]
    gen_targets = [gen_dir.File(f"{d}.c") for d in domains] + [gen_dir.File("layout.json")]
    gen_sources = facts + ([env.File(plan)] if plan else [])
    generated = env.QpmStubs(gen_targets, gen_sources, QPM_PLAN=plan or "", QPM_PROGRAM=name)
    layout = generated[-1]
    # A plan that check refuses stops the build before anything is compiled (order only: a new
    # plan does not recompile a component).
    env.Requires(objects, generated)

    gen_env = env.Clone()
    gen_env.AppendUnique(CPPPATH=[RUNTIME], CCFLAGS=["-Wall", "-Wextra", "-Werror"])
    outputs = []
    exe_dir = build.Dir(variant)
    runtime = env.QpmRuntime()
    if not isolated:
        gen_obj = gen_env.Object(gen_dir.File("mono.o"), generated[0])
        outputs += env.QpmLink(exe_dir.File(name), objects + gen_obj + runtime + [layout], QPM_DOMAIN="mono",
                               QPM_OBJECT_OF=object_of, LIBS=env.get("LIBS", []) + ["pthread"])
        return outputs
    for i, d in enumerate(domains):
        gen_obj = gen_env.Object(gen_dir.File(f"{d}.o"), generated[i])
        exe = exe_dir.File(name if d == "main" else f"{name}-{d}")
        outputs += env.QpmLink(exe, objects + gen_obj + runtime + [layout], QPM_DOMAIN=d,
                               QPM_OBJECT_OF=object_of, LIBS=env.get("LIBS", []) + ["pthread"])
    return outputs


def QpmRuntime(env):
    """The runtime library, built once per build directory."""
    if "_QPM_RUNTIME" not in env:
        rt_env = env.Clone()
        rt_env.AppendUnique(CPPPATH=[RUNTIME], CCFLAGS=["-Wall", "-Wextra", "-Werror", "-pthread"])
        build = env.Dir(env.subst("$QPM_BUILD_DIR"))
        objs = [rt_env.Object(build.File(f"runtime/{os.path.splitext(s)[0]}.o"), os.path.join(RUNTIME, s))
                for s in RUNTIME_SOURCES]
        env["_QPM_RUNTIME"] = rt_env.StaticLibrary(build.File("runtime/libqrt.a"), objs)
    return env["_QPM_RUNTIME"]


def generate(env):
    env.SetDefault(QPM_BUILD_DIR="#build", QPM_ANALYZER_ID=_code_id("analyzer"), QPM_GENERATOR_ID=_code_id(".", "analyzer"), QPMANALYZECOMSTR="analyse $SOURCE",
                   QPMSTUBSCOMSTR="generate stubs for $QPM_PROGRAM", QPMLINKCOMSTR="link $TARGET")
    env.AppendUnique(CPPPATH=[CLANG_ATTRS], CCFLAGS=["-pthread"], LINKFLAGS=["-pthread"])
    if "CompilationDatabase" not in env["BUILDERS"]:
        env.Tool("compilation_db")
    env["BUILDERS"]["QpmAnalyze"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_analyze_action, "$QPMANALYZECOMSTR",
                                   varlist=["QPM_ANALYZER_ID", "CFLAGS", "CCFLAGS", "CPPPATH", "CPPDEFINES"]),
        source_scanner=SCons.Tool.CScanner, suffix=".facts")
    env["BUILDERS"]["QpmStubs"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_stubs_action, "$QPMSTUBSCOMSTR", varlist=["QPM_PLAN", "QPM_PROGRAM", "QPM_GENERATOR_ID"]))
    env["BUILDERS"]["QpmLink"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_link_action, "$QPMLINKCOMSTR", varlist=["QPM_DOMAIN", "LIBS", "LINKFLAGS"]))
    env.AddMethod(QpmProgram, "QpmProgram")
    env.AddMethod(QpmRuntime, "QpmRuntime")


def exists(env):
    return bool(env.Detect(["gcc", "cc"]))


class _Tool:
    """What `tools=[qtool.scons.tool]` calls: generate(env), with exists(env) beside it."""

    def __call__(self, env, *args, **kw):
        generate(env)
        if not env.get("_QPM_CDB"):
            env["_QPM_CDB"] = env.CompilationDatabase(env.File("#compile_commands.json"))

    exists = staticmethod(exists)


tool = _Tool()
