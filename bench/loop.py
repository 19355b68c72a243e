#!/usr/bin/env python3
"""The edit-check loop: `qtool analyze` and `qtool check` on a generated 100-unit program, cold,
with nothing changed, and after one file was edited (twice: in a function body, and so that lines
move).

Run from the repository root:

    .venv/bin/python bench/loop.py              # 3 repetitions (median shown)
    .venv/bin/python bench/loop.py --repeat 5 --units 100
    .venv/bin/python bench/loop.py --against HEAD    # also qtool as committed, runs alternating
    .venv/bin/python bench/loop.py --scons           # the SCons build of the same program instead
    .venv/bin/python bench/loop.py --served          # also the commands run by `qtool serve`

The program is generated into a temporary directory: UNITS .c files, each with a dozen functions
that call each other and functions of two other units through one shared header (which includes
libc, pthread and socket headers, as a server's common header does), globals, a struct and an
indirect call.  Each command runs as a subprocess (as the `qtool` script runs it, so its
start-up is counted) with a cache directory of its own, and its code compiled to bytecode once before, in
the tree's own __pycache__ directories, as an installed package has it.  (Not under a
PYTHONPYCACHEPREFIX: with one set, Python looks for every module's bytecode there, the standard
library's too, finds none, and compiles the modules a start imports at every start, about 0.1 s
that no installed qtool pays.)

  cold       the caches emptied first (the compiled walker kept): every unit parsed;
  unchanged  the same command again: nothing to parse;
  edited     a constant in one function body of one unit changed (the file's size too), then the
             command again: the unit is parsed again, and nothing in the program model changes;
  moved      a line added to or taken from the top of that function's body, then the command
             again: every later place in that unit moves, and the model changes.

A run's time is from its start to its exit.  A command exits before its cache writers finish;
after each run the script waits for them (untimed), as a user who edits between two runs never
waits for them either.

With --server lighttpd (or nginx) the program is instead a copy of that server as bench/analyze.py
fetches and configures it (a Debian source package), analysed with a compile_commands.json of its
units (`analyze -p`, JSON and text; no plan: `check` is left out), and the file edited is one of
its own (lighttpd's src/response.c, nginx's src/http/ngx_http_request.c): "edited" puts a comment
at the end of the first line of its first function body after line 100 (no line moves), "moved"
puts a blank line before that line or takes it away again.  Each result is also in seconds: on
real code the issue's bound is 0.5 s as well as 10% of cold.

With --scons the program (and a main.c) builds with the SCons tool instead (`scons -Q -j2
--debug=time`, a SConstruct calling env.QpmProgram, no plan), cold (build directory and SCons's
database removed, qtool's caches emptied), then unchanged, edited and moved as above.  What is
compared is qtool's part of each build: the time SCons reports for the commands of the analysis
steps (build/analysis/*.facts) and of the stubs step (the model merged from the facts, the
generated code written), summed; the whole build's wall time (gcc's compiles and links, and
SCons's own start and dependency scan) is shown beside it, for information.

Targets: unchanged <= 0.05 of cold, edited and moved <= 0.10 of cold.  Exit status 0 whatever the
numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from machine import await_writers, start_qtool_server, stop_qtool_server  # bench/machine.py: scripts here run with bench/ on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The shared header includes what a server's common header does: libc, threads, sockets.
HEADER = """#ifndef LOOP_H
#define LOOP_H
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <fcntl.h>
#include <signal.h>
#include <time.h>
#include <pthread.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
struct item { int key; long value; char name[32]; struct item *next; };
typedef int (*handler_fn)(struct item *, int);
$decls
#endif
"""

PLAN = """version: 1
isolate:
  - domain: isolated
    components: [$comp]
"""


def unit_source(i: int, units: int, funcs: int, edit: int = 0, moved: int = 0) -> str:
    """Unit i: FUNCS functions; each calls the next one here and a function of units i+1, i+2.
    Function 1 adds the constant `edit`, and begins with `moved` empty lines."""
    out = [f'#include "loop.h"', f'#include <string.h>', f'#include <stdlib.h>', "",
           f"static struct item table_{i}[64];", f"int counter_{i};", ""]
    for f in range(funcs):
        name = f"u{i}_f{f}"
        body = [f"int {name}(struct item *it, int n)", "{", *[""] * (moved if f == 1 else 0), "    int acc = 0;",
                "    for (int k = 0; k < n; k++) {",
                f"        acc += it->key * k + (int)table_{i}[k & 63].value;",
                "        if (acc > 1000)", "            acc -= it->value;", "    }"]
        if f + 1 < funcs:
            body.append(f"    acc += u{i}_f{f + 1}(it, n / 2);")
        else:
            for j in (1, 2):
                body.append(f"    acc += u{(i + j) % units}_f0(it, n - 1);")
        if f == 0:
            body += [f"    handler_fn h = (n & 1) ? u{i}_f1 : u{i}_f2;", "    acc += h(it, n - 2);",
                     f"    memcpy(it->name, \"unit{i}\", 6);", f"    counter_{i} += acc;"]
        if f == 1:
            body.append(f"    acc += {edit};")
        body += ["    return acc;", "}", ""]
        out += body
    return "\n".join(out)


def generate(root: str, units: int, funcs: int) -> None:
    decls = []
    for i in range(units):
        decls += [f"int u{i}_f{f}(struct item *it, int n);" for f in range(funcs)]
        decls.append(f"extern int counter_{i};")
    with open(os.path.join(root, "loop.h"), "w") as f:
        f.write(HEADER.replace("$decls", "\n".join(decls)))
    for i in range(units):
        with open(os.path.join(root, f"unit{i:03d}.c"), "w") as f:
            f.write(unit_source(i, units, funcs))
    with open(os.path.join(root, "plan.yaml"), "w") as f:
        f.write(PLAN.replace("$comp", "unit001"))


def empty_caches(cache: str) -> None:
    """Forgets every unit's facts, every merged model and every remembered result; keeps the
    compiled walker, built once per machine (its first build is not part of any run measured
    here)."""
    for sub in ("units", "models", "results"):
        shutil.rmtree(os.path.join(cache, sub), ignore_errors=True)


def run(argv: list[str], cwd: str, env: dict[str, str]) -> float:
    """The command's wall time, from its start to its exit.  A command ends before its cache
    writers do (their entries follow it in the background, and the next run waits for any still
    at work); so that a run is not charged with the writing of the run before it, which a user
    who edits between two runs never waits for, they are waited for here, untimed."""
    t = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, timeout=900)
    dt = time.perf_counter() - t
    if p.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stderr}")
    await_writers(env, cwd)
    return dt


# What the `qtool` console script runs (a tree from before qtool/client.py: the command itself).
LAUNCH = ("try:\n    from qtool.client import console\nexcept ImportError:\n    from qtool.cli import console\n"
          "console()\n")


def edited_unit(units: int) -> tuple[str, int]:
    """The file both loops edit, and its unit's number."""
    name = "unit050.c" if units > 50 else "unit000.c"
    return name, int(name[4:7])


SCONSTRUCT = """import os
import qtool.scons
env = Environment(tools=["default", qtool.scons.tool], ENV=os.environ, CCFLAGS=["-O2"])
env.QpmProgram("loop", Glob("*.c"))
"""

MAIN = """#include "loop.h"
int main(void) { struct item it = {0}; return u0_f0(&it, 3) & 1; }
"""


def scons_run(src: str, env: dict[str, str]) -> tuple[float, float]:
    """One `scons` build of src: its wall time, and the time SCons reports for qtool's commands
    (the analysis steps' and the stubs step's), summed; the cache writers it left are waited for,
    untimed."""
    scons = os.path.join(os.path.dirname(sys.executable), "scons")
    t = time.perf_counter()
    p = subprocess.run([scons, "-Q", "-j2", "--debug=time"], cwd=src, env=env, capture_output=True, text=True,
                       timeout=1800)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"scons failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    await_writers(env, src)      # the stubs step's model entry, written after SCons ends
    qtool = 0.0
    for target, seconds in re.findall(r"^Command execution time: (.*): ([0-9.]+) seconds$", p.stdout, re.M):
        if target.endswith(".facts") or (".qpm/" in target and not target.endswith(".o")):
            qtool += float(seconds)
    return wall, qtool


def scons_loop(args, trees: dict[str, str], envs: dict[str, dict[str, str]], tmp: str) -> None:
    """The loop of the module's doc, built with SCons (--scons)."""
    srcs = {}
    for k, label in enumerate(trees):
        srcs[label] = os.path.join(tmp, f"scons{k}")
        os.mkdir(srcs[label])
        generate(srcs[label], args.units, args.funcs)
        for name, text in (("SConstruct", SCONSTRUCT), ("main.c", MAIN)):
            with open(os.path.join(srcs[label], name), "w") as f:
                f.write(text)
    name, index = edited_unit(args.units)
    kinds = ("cold", "unchanged", "edited", "moved")
    walls = {label: {k: [] for k in kinds} for label in trees}
    steps = {label: {k: [] for k in kinds} for label in trees}
    edit = moved = 0
    for r in range(args.repeat):
        for label in (list(trees) if r % 2 == 0 else list(reversed(trees))):
            src, env = srcs[label], envs[label]
            empty_caches(env["QPM_CACHE_DIR"])
            shutil.rmtree(os.path.join(src, "build"), ignore_errors=True)
            for db in (".sconsign.dblite", "compile_commands.json"):
                if os.path.exists(os.path.join(src, db)):
                    os.remove(os.path.join(src, db))
            for kind in kinds:
                if kind == "edited":
                    edit += 1
                elif kind == "moved":
                    moved = 1 - moved
                if kind in ("edited", "moved"):
                    with open(os.path.join(src, name), "w") as f:
                        f.write(unit_source(index, args.units, args.funcs, edit, moved))
                wall, qtool = scons_run(src, env)
                walls[label][kind].append(wall)
                steps[label][kind].append(qtool)
    print(f"qtool edit-check loop, SCons build (bench/loop.py --scons): {args.units} units x {args.funcs} "
          f"functions + main.c, scons -j2, {os.cpu_count()} cores, median of {args.repeat}, Python "
          f"{sys.version.split()[0]}")
    print(f"{'qtool':14} {'what':34} {'cold s':>7} {'unchanged s':>12} {'ratio':>6} {'edited s':>9} {'ratio':>6} "
          f"{'moved s':>8} {'ratio':>6}  result (unchanged <= 0.05, edited, moved <= 0.10)")
    for label in trees:
        for what, t, judged in (("qtool's steps (analysis + stubs)", steps[label], True),
                                ("whole build, wall", walls[label], False)):
            cold, same, edit_t, moved_t = (statistics.median(t[k]) for k in kinds)
            r1, r2, r3 = same / cold, edit_t / cold, moved_t / cold
            verdicts = (f"{'PASS' if r1 <= 0.05 else 'MISS'} / {'PASS' if r2 <= 0.10 else 'MISS'} / "
                        f"{'PASS' if r3 <= 0.10 else 'MISS'}") if judged else "(info: gcc and SCons's own work too)"
            print(f"{label:14} {what:34} {cold:7.2f} {same:12.3f} {r1:6.3f} {edit_t:9.3f} {r2:6.3f} "
                  f"{moved_t:8.3f} {r3:6.3f}  {verdicts}")
    print("  qtool's steps: the command times `scons --debug=time` reports for build/analysis/*.facts and for the "
          "stubs step, summed (with -j2, two may run at once)")


SERVER_FILES = {"lighttpd": "src/response.c", "nginx": "src/http/ngx_http_request.c"}


def server_program(name: str, into: str):
    """A copy of the server (bench/analyze.py's, fetched and configured once) in `into`, with a
    compile_commands.json of its units; the path of the file the loop edits, and a function of
    (edit, moved) giving that file's text after the edits (see the module's doc)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import json

    import analyze as bench_analyze     # bench/analyze.py: the servers
    server = next(sv for sv in bench_analyze.SERVERS if sv.name == name)
    server = bench_analyze.fetch_server(server)
    root, units = bench_analyze.server_copy(server, into)
    commands = [{"directory": root, "file": u, "arguments": ["gcc", "-c", *flags, u]} for u, flags in units]
    with open(os.path.join(root, "compile_commands.json"), "w") as f:
        json.dump(commands, f)
    edited = os.path.join(root, SERVER_FILES[name])
    with open(edited) as f:
        lines = f.read().split("\n")
    body = next(i for i, line in enumerate(lines) if i > 100 and line.startswith("{")) + 1

    def text(edit: int, moved: int) -> str:
        out = list(lines)
        out[body] += f" /* edit {edit} */"
        out[body:body] = [""] * moved
        return "\n".join(out)
    return root, edited, text


def checkout(rev: str, into: str) -> str:
    """qtool's package, the headers it parses with and the runtime its SCons tool builds, as they
    were at rev."""
    os.mkdir(into)
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "qtool", "clang_attrs", "runtime"],
                             capture_output=True, check=True, timeout=120).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True, timeout=120)
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--funcs", type=int, default=12, help="functions per unit (default 12)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--against", metavar="REV", help="also measure qtool as it was at this git revision, "
                    "its runs alternating with this tree's")
    ap.add_argument("--scons", action="store_true", help="the program built with the SCons tool instead of "
                    "qtool's commands")
    ap.add_argument("--served", action="store_true", help="also this tree's commands run by `qtool serve` (a "
                    "server started anew before each cold run, so that it keeps nothing of the runs before)")
    ap.add_argument("--server", choices=sorted(SERVER_FILES), help="the loop on a copy of this real server "
                    "(bench/analyze.py's) instead of the generated program")
    args = ap.parse_args()
    if args.server and args.scons:
        ap.error("--server measures qtool's commands; --scons builds the generated program")
    tmp = tempfile.mkdtemp(prefix="qtool-loop-")
    try:
        if args.server:
            src, edited, edited_text = server_program(args.server, tmp)
        else:
            src = os.path.join(tmp, "src")
            os.mkdir(src)
            generate(src, args.units, args.funcs)
            name, index = edited_unit(args.units)
            edited = os.path.join(src, name)

            def edited_text(edit: int, moved: int) -> str:
                return unit_source(index, args.units, args.funcs, edit, moved)
        trees = {"this tree": ROOT}
        if args.served:
            trees["served"] = ROOT
        if args.against:
            trees[f"at {args.against}"] = checkout(args.against, os.path.join(tmp, "against"))
        envs = {}
        for k, (label, tree) in enumerate(trees.items()):
            envs[label] = dict(os.environ, PYTHONPATH=tree, QPM_CACHE_DIR=os.path.join(tmp, f"cache{k}"))
            envs[label].pop("PYTHONDONTWRITEBYTECODE", None)
            envs[label].pop("PYTHONPYCACHEPREFIX", None)
            subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(tree, "qtool")],
                           env=envs[label], check=True, timeout=300, stdout=subprocess.DEVNULL)
            subprocess.run([sys.executable, "-c", "from qtool.analyzer import clang_env; clang_env.walker()"],
                           env=envs[label], check=True, timeout=300)     # the walker, built once
        if args.scons:
            scons_loop(args, trees, envs, tmp)
            return 0
        # Each command as the installed `qtool` script runs it (not `python -m qtool`, whose runpy
        # costs a start about 8 ms that the script does not pay).
        qtool = [sys.executable, "-c", LAUNCH]
        where = ["-p", "compile_commands.json"] if args.server else ["."]
        commands = {
            "analyze --format json": [*qtool, "analyze", "--format", "json", "-o", os.path.join(tmp, "model.json"), *where],
            "analyze (text)": [*qtool, "analyze", "-o", os.path.join(tmp, "model.txt"), *where],
        }
        if not args.server:
            commands["check --plan"] = [*qtool, "check", "--plan", "plan.yaml", "."]
        kinds = ("cold", "unchanged", "edited", "moved")
        times = {(label, c): {k: [] for k in kinds} for label in trees for c in commands}
        edit = moved = 0
        for r in range(args.repeat):
            labels = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name, argv in commands.items():
                for label in labels:
                    env = envs[label]
                    empty_caches(env["QPM_CACHE_DIR"])
                    t = times[label, name]
                    try:
                        server = start_qtool_server([sys.executable, "-c", LAUNCH], env, src) \
                            if label == "served" else None
                    except RuntimeError as e:
                        sys.exit(str(e))
                    if label != "served":
                        env = dict(env, QPM_NO_SERVER="1")
                    t["cold"].append(run(argv, src, env))
                    t["unchanged"].append(run(argv, src, env))
                    edit += 1
                    with open(edited, "w") as f:
                        f.write(edited_text(edit, moved))
                    t["edited"].append(run(argv, src, env))
                    moved = 1 - moved
                    with open(edited, "w") as f:
                        f.write(edited_text(edit, moved))
                    t["moved"].append(run(argv, src, env))
                    if server is not None:
                        stop_qtool_server(server)
        program = (f"{args.server} ({os.path.relpath(edited, src)} edited)" if args.server else
                   f"{args.units} units x {args.funcs} functions")
        print(f"qtool edit-check loop (bench/loop.py): {program}, "
              f"{os.cpu_count()} cores, median of {args.repeat}, Python {sys.version.split()[0]}")
        print(f"{'qtool':14} {'command':22} {'cold s':>7} {'unchanged s':>12} {'ratio':>6} {'edited s':>9} "
              f"{'ratio':>6} {'moved s':>8} {'ratio':>6}  result (unchanged <= 0.05, edited, moved <= 0.10)")
        for (label, name), t in times.items():
            cold, same, edit_t, moved_t = (statistics.median(t[k]) for k in kinds)
            r1, r2, r3 = same / cold, edit_t / cold, moved_t / cold
            print(f"{label:14} {name:22} {cold:7.2f} {same:12.3f} {r1:6.3f} {edit_t:9.3f} {r2:6.3f} "
                  f"{moved_t:8.3f} {r3:6.3f}  {'PASS' if r1 <= 0.05 else 'MISS'} / "
                  f"{'PASS' if r2 <= 0.10 else 'MISS'} / {'PASS' if r3 <= 0.10 else 'MISS'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
