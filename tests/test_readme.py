"""The README's console examples, run as written.

Every ```console or ```text block of README.md with `$ command` lines is run from the root of a
copy of the repository (one copy per block, so commands that write files write there), in one
shell, with `.venv/bin/qtool`, `.venv/bin/scons` and `.venv/bin/python` standing for this
checkout's. The lines under a command are its output (stdout and stderr as a terminal shows them):

* a line `...` stands for any number of lines, and a line ending in `...` for any line that
  begins with what comes before it;
* what depends on the machine is masked on both sides: a figure with a unit of time (`143 ns`,
  `0.539 us`, `640–1020 ns`), a date, a path under the temporary directory, a port;
* a command with no lines under it has its output left unchecked, but must succeed (unless it
  runs in the background: a block's background jobs are stopped when it ends).

A block that cannot run here has `<!-- not run: REASON -->` on the line above it, and is
reported as skipped with that reason.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->")
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", ".qpm", ".qpm-cache", "__pycache__", "*.egg-info",
                                ".sconsign*", ".pytest_cache", "compile_commands.json", ".data")


class Block:
    def __init__(self, line: int, skip: str | None, lines: list[str]):
        self.line, self.skip = line, skip
        self.commands: list[tuple[str, list[str]]] = []
        for text in lines:
            if text.startswith("$ "):
                self.commands.append((text[2:], []))
            elif self.commands:
                self.commands[-1][1].append(text)


def blocks() -> list[Block]:
    found, lines = [], open(README).read().split("\n")
    i = 0
    while i < len(lines):
        fence = re.match(r"^```(console|text)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        start = i + 1
        end = start
        while not lines[end].startswith("```"):
            end += 1
        body = lines[start:end]
        if any(t.startswith("$ ") for t in body):
            above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            skip = NOT_RUN.search(above)
            found.append(Block(i + 1, skip[1] if skip else None, body))
        i = end + 1
    return found


_UNIT = r"(?:ns/byte|us/run|ns|us|ms|s)\b"
_NUM = r"\d+(?:\.\d+)?(?:e[+-]?\d+)?"
MASKS = [
    (re.compile(rf"{_NUM}(?:\s*[–-]\s*{_NUM})?\s*(?={_UNIT})"), "<n> "),
    (re.compile(r"\d{4}-\d\d-\d\d(?:T[\d:.]+Z?)?"), "<date>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
]


def mask(line: str, tmp: str) -> str:
    line = line.replace(tmp, "<tmp>").rstrip()
    for pattern, to in MASKS:
        line = pattern.sub(to, line)
    return re.sub(r"<n>  +", "<n> ", line)


def matches(expected: list[str], actual: list[str]) -> bool:
    """Whether the actual lines fit the expected ones, `...` lines and line ends included."""
    memo: dict[tuple[int, int], bool] = {}

    def fit(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(expected):
                ok = j == len(actual)
            elif expected[i].strip() == "...":
                ok = fit(i + 1, j) or (j < len(actual) and fit(i, j + 1))
            elif j == len(actual):
                ok = False
            elif expected[i].endswith("..."):
                ok = actual[j].startswith(expected[i][:-3]) and fit(i + 1, j + 1)
            else:
                ok = expected[i] == actual[j] and fit(i + 1, j + 1)
            memo[i, j] = ok
        return memo[i, j]

    return fit(0, 0)


def venv(copy: str) -> None:
    """`.venv/bin/` of the copy: qtool, scons and python of the interpreter running the tests,
    importing qtool from the copy."""
    bindir = os.path.join(copy, ".venv", "bin")
    os.makedirs(bindir)
    scons = os.path.join(os.path.dirname(sys.executable), "scons")
    for name, command in (("qtool", f'"{sys.executable}" -m qtool'), ("scons", f'"{scons}"'),
                          ("python", f'"{sys.executable}"')):
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write(f'#!/bin/sh\nPYTHONPATH="{copy}${{PYTHONPATH:+:$PYTHONPATH}}" exec {command} "$@"\n')
        os.chmod(path, 0o755)


MARK = "@@readme-command-{}@@"


def run_block(block: Block, copy: str, tmp: str, home: str) -> list[tuple[str, list[str], int]]:
    """Runs a block's commands in one shell: each command's output lines and exit status."""
    script = ["exec 2>&1", "__rc=0"]
    for n, (command, _) in enumerate(block.commands):
        script += [f"printf '\\n{MARK.format(n)}\\n'", f"(exit $__rc); {command}", "__rc=$?",
                   f"printf '\\n{MARK.format('rc')} %d\\n' $__rc"]
    script += [f"printf '\\n{MARK.format('end')}\\n'", "kill $(jobs -p) 2>/dev/null", "wait"]
    # A new user's environment: a home of its own (the caches start empty and are shared by the
    # blocks, as by one user's commands), nothing of the test run's.
    env = dict(os.environ, TMPDIR=tmp, PYTHONUNBUFFERED="1", HOME=home, QPM_CALIBRATE_ROUNDS="20000")
    for name in ("PYTHONPATH", "QPM_CACHE_DIR", "XDG_CACHE_HOME", "QPM_CROSSING_NS", "QPM_CROSSING_NS_PER_BYTE",
                 "QPM_REPORT_DIR"):
        env.pop(name, None)
    proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=copy, env=env, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out = out.split(f"\n{MARK.format('end')}\n")[0]
    results = []
    for n, (command, _) in enumerate(block.commands):
        part = out.split(f"\n{MARK.format(n)}\n", 1)[1]
        part, _, rest = part.partition(f"\n{MARK.format('rc')} ")
        lines = part.split("\n")
        results.append((command, lines[:-1] if lines and lines[-1] == "" else lines, int(rest.split()[0])))
    return results


BLOCKS = blocks()


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return str(tmp_path_factory.mktemp("home"))


@pytest.mark.parametrize("block", BLOCKS, ids=[f"README.md:{b.line}" for b in BLOCKS])
def test_console_example(block, tmp_path, home):
    if block.skip:
        pytest.skip(block.skip)
    copy = str(tmp_path / "repo")
    shutil.copytree(ROOT, copy, ignore=IGNORE, symlinks=True)
    venv(copy)
    tmp = str(tmp_path / "tmp")
    os.mkdir(tmp)
    for (command, expected), (_, actual, rc) in zip(block.commands, run_block(block, copy, tmp, home)):
        if not expected:
            assert rc == 0 or command.rstrip().split("#")[0].rstrip().endswith("&"), \
                f"README.md:{block.line}: `{command}` failed ({rc}):\n" + "\n".join(actual)
            continue
        want = [mask(t, tmp) for t in expected]
        got = [mask(t, tmp) for t in actual]
        if not matches(want, got):
            pytest.fail(f"README.md:{block.line}: the output of `{command}` is no longer what the README shows "
                        f"(masked)\n--- README\n" + "\n".join(want) + "\n--- now\n" + "\n".join(got), pytrace=False)


def test_every_block_with_commands_is_found():
    # A fence the parser misses would be a block that silently stops being checked.
    text = open(README).read()
    assert len(BLOCKS) == len(re.findall(r"^```(?:console|text)\s*\n(?:(?!```).*\n)*?\$ ", text, re.M))
    assert sum(b.skip is None for b in BLOCKS) >= 6


def synopsis() -> dict[str, set[str]]:
    """The options the README's synopsis gives each subcommand."""
    text = open(README).read().split("\n## qtool\n", 1)[1].split("```\n", 2)[1]
    options: dict[str, set[str]] = {}
    command = None
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if words[:1] == ["qtool"] and len(words) > 1 and not words[1].startswith("-") and words[1] != "COMMAND":
            command = words[1]
            options[command] = set()
        elif words[:1] == ["qtool"]:
            command = None
        if command:
            options[command] |= set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", line))
    return options


def test_the_synopsis_lists_every_command_and_option():
    from qtool.cli import build_parser
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.choices and isinstance(a.choices, dict)]
    listed = synopsis()
    assert sorted(listed) == sorted(sub.choices), "the README's synopsis (## qtool) lists other commands"
    for name, p in sub.choices.items():
        real = {o for a in p._actions for o in a.option_strings if o not in ("-h", "--help")}
        # One spelling of each option is enough (-j or --jobs).
        missing = [a.option_strings for a in p._actions
                   if a.option_strings and a.dest != "help" and not set(a.option_strings) & listed[name]]
        assert not missing, f"qtool {name}: the README's synopsis does not show {missing}"
        assert listed[name] <= real, f"qtool {name}: the README's synopsis shows {listed[name] - real}, unknown"


def test_the_matching_fails_where_it_should():
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"]) and matches(["a", "...", "z"], ["a", "z"])
    assert not matches(["a", "...", "z"], ["a", "b", "y"])
    assert not matches(["a", "b"], ["a", "b", "c"])                 # extra output is a difference
    assert matches(["crossing cost 1 ns (x..."], ["crossing cost 1 ns (xyz)"])
    assert not matches(["crossing cost 1 ns (x..."], ["crossing cost 1 ns (y)"])
    assert mask("0.539 us per run, 3.5 crossings", "/t") == "<n> us per run, 3.5 crossings"
    assert mask("(median of 5, 640–1020 ns; measured 2026-11-30 on", "/t") == "(median of 5, <n> ns; measured <date> on"


def test_the_plans_are_as_the_tour_says():
    # The tour tells which plan retries what: proto, which runs SET and DEL, must not be retried.
    from qtool.plan import load_plan
    plan, diags = load_plan(os.path.join(ROOT, "samples", "kvstore", "plans", "isolate-all.yaml"))
    assert not diags
    policy = {c.name: (d.on_fault, d.fault_value) for d in plan.domains for c in d.components}
    assert policy == {"proto": ("error", -1), "store": ("retry", None), "cache": ("retry", None),
                      "stats": ("retry", None)}
    assert "`isolate-all.yaml` gives proto, store, cache and stats a domain each. There proto," in \
        " ".join(open(README).read().split())
