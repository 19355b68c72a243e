"""A plan places functions, not files (placement.py): tests/programs/placement has a server in one
file, server.c, whose parser functions (component parse) a plan isolates while the rest of the
file (component server) stays with main(), plus a static helper both sides call, globals, and
calls both ways; util.c is all main's.  Built whole and split, run, and taken apart."""

import json
import os
import re
import subprocess

import pytest

from builds import build_program, scons
from procs import live_processes

# The functions of server.c with external linkage, and the domain each runs in under split.yaml.
FILE_FUNCTIONS = {"main": "main", "server_log": "main", "parse_init": "parse_iso", "parse_request": "parse_iso",
                  "parse_pid": "parse_iso", "parse_scaled": "parse_iso", "parse_leaf": "parse_iso",
                  "parse_crash": "parse_iso"}


@pytest.fixture(scope="module")
def placement(tmp_path_factory):
    return build_program(tmp_path_factory, "placement", "split.yaml")


def run(exe, *args, env=None):
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})
    assert not live_processes(lambda argv0: argv0.endswith("placement-parse_iso")), "a domain outlived main"
    return proc


def test_a_file_split_between_domains_runs_as_it_does_whole(placement):
    mono = run(placement / "build" / "mono" / "placement")
    split = run(placement / "build" / "split" / "placement")
    assert mono.returncode == 0 and split.returncode == 0, split.stderr
    assert split.stdout == mono.stdout
    assert mono.stdout.splitlines() == [
        "parsed 12 verb 1 key alpha value 42 sum 640097802 logged 2", "checksum 640097802",
        "parsed 10 verb 2 key beta value 7 logged 5", "requests 2 logged 5", "twice 57", "total 144",
        "pids agree"]
    # parse_pid() returns getpid() of the process it runs in.
    assert mono.stderr == "parse runs in this process\n"
    assert split.stderr == "parse runs in another process\n"


def test_a_crash_in_an_isolated_function_of_the_file_is_contained(placement, tmp_path):
    whole = run(placement / "build" / "mono" / "placement").stdout.splitlines()
    proc = run(placement / "build" / "split" / "placement", "crash", env={"QPM_REPORT_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    # on_fault: error returns the plan's fault_value; the restarted domain serves the rest (the
    # total differs with argc: two arguments here).
    assert out[:2] == ["crash -1", "after 7"]
    assert [line for line in out[2:] if not line.startswith("total ")] == \
        [line for line in whole if not line.startswith("total ")]
    (path,) = tmp_path.glob("crash-*.json")
    report = json.loads(path.read_text())
    assert (report["domain"], report["components"], report["function"]) == ("parse_iso", ["parse"], "parse_crash")
    assert (report["signal"], report["outcome"]) == ("SIGSEGV", "restarted")
    top = next(f for f in report["backtrace"] if f["function"] == "parse_crash")
    assert top["component"] == "parse" and top["file"].endswith("server.c")


def _defined_in(exe):
    """{function: source file of its code} for the functions the executable defines, from the
    symbol table and the line table (the generated stubs come from <prog>.qpm/<domain>.c)."""
    nm = subprocess.run(["nm", "--defined-only", str(exe)], capture_output=True, text=True, check=True).stdout
    symbols = {}
    for line in nm.splitlines():
        addr, kind, name = line.split()
        if kind in "Tt" and re.fullmatch(r"[A-Za-z_]\w*", name):
            symbols[name] = addr
    names = sorted(symbols)
    out = subprocess.run(["addr2line", "-e", str(exe), *(symbols[n] for n in names)], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return {n: os.path.basename(os.path.dirname(loc.split(":")[0])) + "/" + os.path.basename(loc.split(":")[0])
            for n, loc in zip(names, out)}


def test_each_executable_holds_only_its_own_functions_of_the_file(placement):
    """The functions of server.c that run in a domain are server.c's code in its executable;
    in the other, the functions it calls are generated stubs and the rest are not there at all.
    The static helper both sides call is in both; so is every global of the file."""
    split = placement / "build" / "split"
    code = {"main": _defined_in(split / "placement"), "parse_iso": _defined_in(split / "placement-parse_iso")}
    for domain, where in code.items():
        for fn, home in FILE_FUNCTIONS.items():
            if home == domain:
                assert where[fn] == "placement/server.c", (domain, fn)
        assert where["checksum"] == "placement/server.c"
    # Main calls the parser's functions through their stubs; it never calls parse_init (the
    # domain runs it), so that one is not there at all.
    stub = "placement.qpm/main.c"
    assert {fn: code["main"].get(fn) for fn in FILE_FUNCTIONS if FILE_FUNCTIONS[fn] == "parse_iso"} == {
        "parse_init": None, "parse_request": stub, "parse_pid": stub, "parse_scaled": stub, "parse_leaf": stub,
        "parse_crash": stub}
    # The domain calls back server_log only: its stub; its main() is the domain's own; the
    # server's other functions, and util.c, are not in it.
    assert code["parse_iso"]["server_log"] == "placement.qpm/parse_iso.c"
    assert code["parse_iso"]["main"] == "placement.qpm/parse_iso.c"
    assert code["main"]["server_total"] == "placement/server.c" and "server_total" not in code["parse_iso"]
    assert code["main"]["util_add"] == "placement/util.c" and "util_add" not in code["parse_iso"]
    for exe in ("placement", "placement-parse_iso"):
        data = subprocess.run(["nm", "--defined-only", str(split / exe)], capture_output=True, text=True,
                              check=True).stdout
        assert re.search(r" [BD] requests$", data, re.M) and re.search(r" [BD] logged$", data, re.M)


def _functions(obj):
    """{function: its disassembly lines, relocations included} of an object file."""
    out = subprocess.run(["objdump", "-dr", "--no-show-raw-insn", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    functions, current = {}, None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            current = functions.setdefault(m.group(1), [])
        elif current is not None and line.strip():
            current.append(line.strip())
    return functions


def _calls_to(functions, names):
    """How many relocations of the code name each of these functions (a call, a jump, an address)."""
    counts = dict.fromkeys(names, 0)
    for lines in functions.values():
        for line in lines:
            m = re.match(r"^[0-9a-f]+: R_X86_64_\w+\s+(\w+)([-+]0x[0-9a-f]+)?$", line)
            if m and m.group(1) in counts:
                counts[m.group(1)] += 1
    return counts


# The registers a call may clobber besides its result's, by family (x86-64 System V).
_FAMILIES = {"di": ("rdi", "edi", "di", "dil"), "si": ("rsi", "esi", "si", "sil"),
             "dx": ("rdx", "edx", "dx", "dl"), "cx": ("rcx", "ecx", "cx", "cl"),
             **{f"r{n}": (f"r{n}", f"r{n}d", f"r{n}w", f"r{n}b") for n in (8, 9, 10, 11)}}
_FAMILY = {reg: family for family, regs in _FAMILIES.items() for reg in regs}


def _trusts_callee_registers(lines, callees):
    """Whether, after a call to one of `callees`, the code reads a register the call may clobber
    before writing it: it relies on knowing which registers the callee leaves alone (IPA-RA).
    Looks at the straight-line code after each such call, up to the next jump, call or return;
    AT&T operands, the destination last."""
    for i, line in enumerate(lines[:-1]):
        target = re.match(r"^[0-9a-f]+: R_X86_64_\w+\s+(\w+)", lines[i + 1])
        if not re.match(r"^[0-9a-f]+:\s+call\b", line) or not target or target.group(1) not in callees:
            continue
        written = set()
        for after in lines[i + 2:]:
            m = re.match(r"^[0-9a-f]+:\s+(\S+)\s*(.*)$", after)
            if not m or "R_X86_64" in after:
                continue            # a relocation line
            op, args = m.group(1), re.sub(r"\s+#.*$", "", m.group(2))
            if op.startswith(("j", "call", "ret")):
                break
            operands = [o.strip() for o in re.findall(r"[^,(]*\([^)]*\)|[^,]+", args)]
            for k, operand in enumerate(operands):
                pure_write = (k == len(operands) - 1 and operand.startswith("%")
                              and op.startswith(("mov", "lea", "pop", "set", "cvt")))
                for reg in re.findall(r"%(\w+)", operand):
                    if reg in _FAMILY and _FAMILY[reg] not in written and not pure_write:
                        return True
            if operands and operands[-1].startswith("%") and operands[-1][1:] in _FAMILY:
                written.add(_FAMILY[operands[-1][1:]])
    return False


def test_the_split_compile_keeps_every_call_between_functions_of_the_file(placement):
    """Plain gcc (the monolithic object) inlines parse_pid and parse_scaled into the server's
    code and keeps server_total's operands in registers parse_leaf does not touch; the split
    compile of server.c makes every call to a function of the file a call through its name, so
    that the stub can stand in for it, with nothing assumed of the callee."""
    mono = _functions(placement / "build" / "obj" / "server.o")
    split = _functions(placement / "build" / "split" / "placement.qpm" / "split" / "server.o")
    names = sorted(FILE_FUNCTIONS)
    # Each call site in the source: two parse_request, two parse_crash, two parse_scaled
    # (server_twice), one each of parse_pid, parse_leaf and server_log.
    assert _calls_to(split, names) == {"main": 0, "parse_crash": 2, "parse_init": 0, "parse_leaf": 1,
                                       "parse_pid": 1, "parse_request": 2, "parse_scaled": 2, "server_log": 1}
    assert _calls_to(mono, names)["parse_pid"] == 0 and _calls_to(mono, names)["parse_scaled"] == 0
    assert not [f for f in split if re.match(rf"({'|'.join(names)})\.", f)], "a clone of a function of the file"
    assert _trusts_callee_registers(mono["server_total"], names)
    assert not [f for f, lines in split.items() if _trusts_callee_registers(lines, names)]


def test_each_domain_object_defines_its_own_functions_only(placement):
    """The split compile cut down per executable: the functions of the other domain are
    undefined (resolved to the stubs), and their code and what only they used are gone."""
    split_dir = placement / "build" / "split" / "placement.qpm" / "split"
    for domain in ("main", "parse_iso"):
        nm = subprocess.run(["nm", str(split_dir / f"server.{domain}.o")], capture_output=True, text=True,
                            check=True).stdout
        defined = {line.split()[2] for line in nm.splitlines() if len(line.split()) == 3 and line.split()[1] == "T"}
        assert defined == {fn for fn, home in FILE_FUNCTIONS.items() if home == domain}
        code = _functions(split_dir / f"server.{domain}.o")
        assert "checksum" in code
        assert ("server_total" in code) == (domain == "main")


def test_only_the_split_file_is_compiled_again_and_only_when_it_changes(placement):
    """util.c is not split: its objects are build/obj's, and its split-compile node is an empty
    placeholder.  Rebuilding compiles nothing; a plan edit that moves no function relinks
    nothing it need not; touching server.c compiles it twice (build/obj and split)."""
    split_dir = placement / "build" / "split" / "placement.qpm" / "split"
    assert (split_dir / "util.split").read_text() == "whole\n" and (split_dir / "util.o").stat().st_size == 0
    assert (split_dir / "server.split").read_text() == "split\n" and (split_dir / "server.o").stat().st_size > 0
    assert scons(placement, "ISOLATE=split.yaml").stdout.splitlines() == ["Building compilation database "
                                                                        "compile_commands.json"]
    stamp = (split_dir / "server.o").stat().st_mtime_ns
    plan = placement / "split.yaml"
    plan.write_text(plan.read_text().replace("max_restarts: 5", "max_restarts: 6"))
    out = scons(placement, "ISOLATE=split.yaml").stdout
    assert "generate stubs for placement" in out
    assert not re.findall(r"^compile |^gcc -o build/obj/", out, re.M)
    assert (split_dir / "server.o").stat().st_mtime_ns == stamp
    src = placement / "server.c"
    src.write_text(src.read_text() + "\n/* touched */\n")
    out = scons(placement, "ISOLATE=split.yaml").stdout
    assert re.findall(r"^compile (\S+) to split it between domains$", out, re.M) == ["server.c"]
    assert re.findall(r"^gcc -o (\S+) -c ", out, re.M) == ["build/obj/server.o"]
    assert run(placement / "build" / "split" / "placement").returncode == 0
