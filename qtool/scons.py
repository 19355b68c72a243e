"""The SCons tool: `env.QpmProgram('prog', Glob('*.c'))` builds a program whole or split.

    import qtool.scons
    env = Environment(tools=['default', qtool.scons.tool])
    env.QpmProgram('prog', Glob('*.c'))

`scons` builds build/mono/prog; `scons ISOLATE=plan.yaml` builds build/<plan stem>/prog and one
prog-<domain> beside it per isolated domain.  The steps, each an SCons node with exact
dependencies:

    source.c  -> build/obj/source.o              compiled once, shared by every variant
    source.c  -> build/analysis/source.facts     the analyzer's facts (header dependencies scanned)
    facts + plan -> build/<variant>/<prog>.qpm/  stubs, dispatchers, program table (<domain>.c);
                    layout.json (which code runs where); split/source.split, per source: whether
                    the plan splits that file between domains
    source.c + source.split -> build/<variant>/<prog>.qpm/split/source.o
                    the split compile of a file the plan splits (placement.py); for any other
                    file an empty placeholder, with nothing compiled
    objects + generated + runtime -> executables (the layout says which objects go where; a split
                    file links as split/source.<domain>.o, its split compile cut down to the
                    code that runs in that domain)

A plan places functions, not files: two functions of one file may run in different domains.
Switching plans relinks but never recompiles a component: only a file that a plan splits is
compiled again, once, for that plan's variant (and again only when it changes, or stops or
starts being split).  Editing a source re-analyses only it; editing the plan regenerates the
stubs.  compile_commands.json is written beside the SConstruct.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import SCons.Action
import SCons.Builder
import SCons.Script
import SCons.Tool

from .placement import SPLIT_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLANG_ATTRS = os.path.join(ROOT, "clang_attrs")
RUNTIME = os.path.join(ROOT, "runtime")
RUNTIME_SOURCES = ("transport.c", "process.c", "wire.c", "report.c", "stats.c")
# The alias of every program's stubs step, where the plan is checked: whatever Requires() it is
# compiled only once every plan checked out (the runtime is; an SConstruct may add its own).
CHECKED = "qpm-checked"


def _fail(message: str) -> int:
    sys.stderr.write(message.rstrip("\n") + "\n")
    return 1


def _shown(path: str) -> str:
    """A path as messages show it: relative to the working directory when below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def _tidy(gen_dir: str, build_dir: str) -> None:
    """After a failed stubs step: the directories SCons made for its targets go again, so a plan
    with errors leaves no empty build/<variant>/<prog>.qpm/ behind (a previous build's files stay)."""
    for path, _, _ in os.walk(gen_dir, topdown=False):
        try:
            os.rmdir(path)
        except OSError:
            pass
    parent = os.path.dirname(gen_dir)
    while parent.startswith(build_dir + os.sep):
        try:
            os.rmdir(parent)
        except OSError:
            break
        parent = os.path.dirname(parent)


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
    from .analyzer.sources import check_names, check_regular
    from .errors import UserError
    path = source[0].abspath
    try:
        args = _parse_args(env, target, source)
        check_names([(path, args)])
        check_regular(path)
        clang_env.check_version()
        facts = unit.parse_unit(path, args, isolated=True)
    except UserError as e:
        return _fail(str(e))
    from .atomic import write_bytes
    write_bytes(target[0].abspath, unit.entry_bytes(facts, digests=False))
    return 0


def _load_model(source):
    """The model of the sources' facts: merged again only where they changed since the last
    build (analyzer.model_of_facts), so that editing one source merges little."""
    from .analyzer import model_of_facts
    return model_of_facts([node.abspath for node in source if str(node).endswith(".facts")])


def _stubs_action(target, source, env):
    from . import marshal, output, stubgen
    from .atomic import write_text
    from .errors import UserError
    from .plan import check_plan, load_plan
    plan_path = env["QPM_PLAN"]
    gen_dir = os.path.dirname(target[0].abspath)

    def fail(message: str) -> int:
        _tidy(gen_dir, env.Dir("$QPM_BUILD_DIR").abspath)
        return _fail(message)

    try:
        model = _load_model(source)
        if plan_path:
            plan, diags = load_plan(plan_path)
            diags += check_plan(plan, model)
        else:
            plan, diags = None, []
        diags = marshal.sorted_unique(list(model.diagnostics) + diags + marshal.check_annotations(model))
        errors = [d for d in diags if d.severity == "error"]
        if errors:
            return fail(output.diagnostics_text(errors, os.getcwd()) +
                        f"qtool: {len(errors)} error(s): nothing generated")
        if plan is None or plan.monolithic:     # no plan, or isolate: [], is the monolithic build
            files = {"mono": stubgen.generate_mono(model, env["QPM_PROGRAM"])}
            placement = {"files": {"mono": sorted({f.location.file for f in model.functions if f.defined} |
                                                  set(model.translation_units))},
                         "split": {}}
        else:
            lay = stubgen.layout(model, plan)
            files = stubgen.generate(model, plan, lay, env["QPM_PROGRAM"])
            placement = {"files": {d: list(fs) for d, fs in lay.files.items()}, "split": lay.split}
    except UserError as e:
        return fail(str(e))
    for name, text in files.items():
        write_text(os.path.join(gen_dir, name + ".c"), text)
    write_text(os.path.join(gen_dir, "layout.json"), json.dumps(placement, indent=1, sort_keys=True) + "\n")
    markers = [t for t in target if str(t).endswith(".split")]
    for node, src in zip(markers, env.get("QPM_SOURCES", [])):
        write_text(node.abspath, "split\n" if src in placement["split"] else "whole\n")
    return 0


def _split_of(marker) -> bool:
    try:
        with open(marker.abspath, encoding="utf-8") as f:
            return f.read().strip() == "split"
    except FileNotFoundError:
        return True     # not made yet (scons -n): it may well be


def _split_compile_action(target, source, env):
    """Compiles source[0] as $CCCOM does, then $QPMSPLITFLAGS (placement.SPLIT_FLAGS), when its
    marker, source[1], says the plan splits it; otherwise leaves an empty placeholder, compiling
    nothing."""
    from .atomic import write_bytes
    if not _split_of(source[1]):
        write_bytes(target[0].abspath, b"")
        return 0
    # Through the shell, as SCons runs $CCCOM: a define written for it (-DVERSION=\"2.90\")
    # reaches the compiler as it does in the ordinary compile.
    cmd = env.subst("$CCCOM $QPMSPLITFLAGS", target=target, source=source[:1])
    if env.get("QPM_VERBOSE"):
        print(cmd)
    return subprocess.call(["/bin/sh", "-c", cmd])


def _split_compile_string(target, source, env):
    return env.subst("$QPMSPLITCCCOMSTR", target=target, source=source[:1]) if _split_of(source[1]) else None


def _link_action(target, source, env):
    """Links the objects the layout places in this executable, plus generated code and runtime.
    A file split between domains links as its split compile cut down to this domain's code."""
    from .errors import UserError
    from .placement import domain_object
    layout_node = next(s for s in source if str(s).endswith("layout.json"))
    with open(layout_node.abspath, encoding="utf-8") as f:
        placement = json.load(f)
    domain = env["QPM_DOMAIN"]
    objects = env["QPM_OBJECT_OF"]
    compiled = env.get("QPM_SPLIT_OF", {})
    wanted = []
    for src in placement["files"].get(domain, []):
        if src in placement["split"] and src in compiled:
            own = _domain_object_path(compiled[src], domain)
            try:
                domain_object([str(a) for a in env.subst_list("$CC")[0]], compiled[src], own, src,
                              placement["split"][src], domain)
            except UserError as e:
                return _fail(str(e))
            wanted.append(own)
        elif src in objects:
            wanted.append(objects[src])
    ours = set(objects.values()) | set(compiled.values())
    extra = [s.abspath for s in source if str(s).endswith((".o", ".a")) and s.abspath not in ours]
    cmd = (shlex.split(env.subst("$LINK $LINKFLAGS")) + ["-o", target[0].abspath] + wanted + extra +
           shlex.split(env.subst("$_LIBDIRFLAGS $_LIBFLAGS")))
    if env.get("QPM_VERBOSE"):
        print(" ".join(cmd))
    return subprocess.call(cmd)


def _domain_object_path(compiled: str, domain: str) -> str:
    """split/source.o -> split/source.<domain>.o: a split file's object for one executable."""
    return f"{compiled[:-len('.o')]}.{domain}.o"


def _variant(plan: str | None) -> str:
    return os.path.splitext(os.path.basename(plan))[0] if plan else "mono"


def _plan_domains(plan: str) -> list[str]:
    from .errors import UserError
    from .plan import load_plan
    try:
        p, diags = load_plan(_shown(plan))
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
    # Again here, not only when the tool is applied: Environment(CPPPATH=…, CCFLAGS=…) sets its
    # keyword arguments after its tools ran, replacing what generate() appended.
    env.AppendUnique(CPPPATH=[CLANG_ATTRS], CCFLAGS=["-pthread"], LINKFLAGS=["-pthread"])
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
    # Which files the plan splits between domains is known once the sources are analysed: the
    # stubs step says it per file (a marker), and each file's split compile depends on its own
    # marker, so that only a file the plan splits is compiled again, and only when it changes.
    rels = [os.path.splitext(os.path.relpath(src.abspath, top))[0] for src in sources]
    markers = [gen_dir.File(f"split/{rel}.split") for rel in rels] if isolated else []
    gen_targets = [gen_dir.File(f"{d}.c") for d in domains] + [gen_dir.File("layout.json")] + markers
    gen_sources = facts + ([env.File(plan)] if plan else [])
    generated = env.QpmStubs(gen_targets, gen_sources, QPM_PLAN=plan or "", QPM_PROGRAM=name,
                             QPM_SOURCES=[src.abspath for src in sources] if isolated else [])
    layout = generated[len(domains)]
    # A plan that check refuses stops the build before anything is compiled, the runtime
    # included (order only: a new plan does not recompile a component).
    env.Requires(objects, generated)
    env.Alias(CHECKED, generated)
    runtime = env.QpmRuntime()
    env.Requires(env["_QPM_RUNTIME_OBJECTS"], generated)

    gen_env = env.Clone()
    gen_env.AppendUnique(CPPPATH=[RUNTIME], CCFLAGS=["-Wall", "-Wextra", "-Werror"])
    outputs = []
    exe_dir = build.Dir(variant)
    if not isolated:
        gen_obj = gen_env.Object(gen_dir.File("mono.o"), generated[0])
        outputs += env.QpmLink(exe_dir.File(name), objects + gen_obj + runtime + [layout], QPM_DOMAIN="mono",
                               QPM_OBJECT_OF=object_of, LIBS=env.get("LIBS", []) + ["pthread"])
        return outputs
    split_objects, split_of = [], {}
    for src, rel, marker in zip(sources, rels, markers):
        compiled = env.QpmSplitObject(gen_dir.File(f"split/{rel}.o"), [src, marker])
        split_objects += compiled
        split_of[src.abspath] = compiled[0].abspath
    for i, d in enumerate(domains):
        gen_obj = gen_env.Object(gen_dir.File(f"{d}.o"), generated[i])
        exe = exe_dir.File(name if d == "main" else f"{name}-{d}")
        outputs += env.QpmLink(exe, objects + split_objects + gen_obj + runtime + [layout], QPM_DOMAIN=d,
                               QPM_OBJECT_OF=object_of, QPM_SPLIT_OF=split_of,
                               LIBS=env.get("LIBS", []) + ["pthread"])
        env.Clean(exe, [_domain_object_path(path, d) for path in split_of.values()])
    return outputs


def QpmRuntime(env):
    """The runtime library, built once per build directory."""
    if "_QPM_RUNTIME" not in env:
        rt_env = env.Clone()
        rt_env.AppendUnique(CPPPATH=[RUNTIME], CCFLAGS=["-Wall", "-Wextra", "-Werror", "-pthread"])
        build = env.Dir(env.subst("$QPM_BUILD_DIR"))
        objs = [rt_env.Object(build.File(f"runtime/{os.path.splitext(s)[0]}.o"), os.path.join(RUNTIME, s))
                for s in RUNTIME_SOURCES]
        env["_QPM_RUNTIME_OBJECTS"] = objs
        env["_QPM_RUNTIME"] = rt_env.StaticLibrary(build.File("runtime/libqrt.a"), objs)
    return env["_QPM_RUNTIME"]


def generate(env):
    env.SetDefault(QPM_BUILD_DIR="#build", QPM_ANALYZER_ID=_code_id("analyzer"), QPM_GENERATOR_ID=_code_id(".", "analyzer"), QPMANALYZECOMSTR="analyse $SOURCE",
                   QPMSTUBSCOMSTR="generate stubs for $QPM_PROGRAM", QPMLINKCOMSTR="link $TARGET",
                   QPMSPLITCCCOMSTR="compile $SOURCE to split it between domains", QPMSPLITFLAGS=list(SPLIT_FLAGS))
    env.AppendUnique(CPPPATH=[CLANG_ATTRS], CCFLAGS=["-pthread"], LINKFLAGS=["-pthread"])
    if "CompilationDatabase" not in env["BUILDERS"]:
        env.Tool("compilation_db")
    env["BUILDERS"]["QpmAnalyze"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_analyze_action, "$QPMANALYZECOMSTR",
                                   varlist=["QPM_ANALYZER_ID", "CFLAGS", "CCFLAGS", "CPPPATH", "CPPDEFINES"]),
        source_scanner=SCons.Tool.CScanner, suffix=".facts")
    env["BUILDERS"]["QpmStubs"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_stubs_action, "$QPMSTUBSCOMSTR", varlist=["QPM_PLAN", "QPM_PROGRAM", "QPM_GENERATOR_ID"]))
    env["BUILDERS"]["QpmSplitObject"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_split_compile_action, strfunction=_split_compile_string,
                                   varlist=["CC", "CCCOM", "CFLAGS", "CCFLAGS", "CPPPATH", "CPPDEFINES",
                                            "QPMSPLITFLAGS"]),
        source_scanner=SCons.Tool.CScanner, suffix=".o")
    env["BUILDERS"]["QpmLink"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_link_action, "$QPMLINKCOMSTR",
                                   varlist=["QPM_DOMAIN", "LIBS", "LINKFLAGS", "QPM_GENERATOR_ID"]))
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
