"""The analyzer's caches (qtool/analyzer/cache.py): a run that reuses them prints exactly what a
run on an empty cache prints, after any edit; it reuses them (parses and merges only what an edit
touched, and a run where nothing changed analyses nothing); a broken entry is ignored."""

import json
import os
import shutil

import pytest

from qtool.analyzer import build, cache, unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KVSTORE = os.path.join(ROOT, "samples", "kvstore")

# -j 1: the units are parsed in this process, where they are counted.
COMMANDS = {
    "analyze-json": ("analyze", "-j", "1", "--format", "json"),
    "analyze-text": ("analyze", "-j", "1"),
    "analyze-sarif": ("analyze", "-j", "1", "--format", "sarif"),
    "check-json": ("check", "-j", "1", "--plan", "plans/isolate-cache.yaml", "--format", "json"),
    "check-text": ("check", "-j", "1", "--plan", "plans/isolate-all.yaml"),
}


def replace(path, old, new):
    with open(path) as f:
        text = f.read()
    assert old in text, (path, old)
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


# Edits of the kvstore sample: (file, text replaced, replacement).
STATS_PROBE = ("\nint stats_probe(void)\n{\n    char b[8];\n    return store_get(\"k\", b, sizeof b);\n}\n"
               "int probe_count;\n")
EDITS = {
    # Inside a comment: the unit is parsed again, the model stays as it was.
    "comment": [("cache.c", "KVSTORE_CACHE_RACE=1 in", "KVSTORE_CACHE_RACE=2 in")],
    # Every later line of the file moves.
    "lines": [("cache.c", "QPM_FILE_COMPONENT(cache);\n", "QPM_FILE_COMPONENT(cache);\n\n\n")],
    # A new function, a new global, a new call that crosses a boundary.
    "function": [("stats.c", "    return len;\n}\n", "    return len;\n}\n" + STATS_PROBE)],
    # A function goes.
    "removed": [("stats.c", "void stats_count(int what)", "static void stats_count_gone(int what)")],
    # A header every unit includes: an annotation removed, so diagnostics change.
    "header": [("kvstore.h", "int store_del(const char *key QPM_STRING);", "int store_del(const char *key);")],
    # A file's default component.
    "component": [("stats.c", "QPM_FILE_COMPONENT(stats);", "QPM_FILE_COMPONENT(counters);")],
    # Two units at once.
    "two": [("stats.c", "    return len;\n}\n", "    return len;\n}\n" + STATS_PROBE),
            ("cache.c", "QPM_FILE_COMPONENT(cache);\n", "QPM_FILE_COMPONENT(cache);\n\n")],
}


@pytest.fixture
def program(tmp_path):
    """A copy of the kvstore sample."""
    src = tmp_path / "kvstore"
    shutil.copytree(KVSTORE, src, ignore=shutil.ignore_patterns("build", ".*"))
    return src


@pytest.fixture
def counted(monkeypatch):
    """Counts the units parsed and the merges and model loads made, for each run."""
    counts = {"parsed": 0, "merged": 0, "models": 0}
    parse, merge, model = unit.parse_unit, build.merge, cache.Entry.model

    def counting(name, real):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(unit, "parse_unit", counting("parsed", parse))
    monkeypatch.setattr(build, "merge", counting("merged", merge))
    monkeypatch.setattr(cache.Entry, "model", counting("models", model))
    return counts


def cold(qtool, monkeypatch, tmp_path, args, cwd):
    """What the command prints with an empty cache (the compiled walker kept)."""
    warm = os.environ["QPM_CACHE_DIR"]
    empty = tmp_path / f"cold-{len(os.listdir(tmp_path))}"
    empty.mkdir()
    for name in os.listdir(warm):
        if name.startswith("walker-"):
            shutil.copy(os.path.join(warm, name), empty)
    monkeypatch.setenv("QPM_CACHE_DIR", str(empty))
    try:
        return qtool(*args, cwd=cwd)
    finally:
        cache.wait()
        monkeypatch.setenv("QPM_CACHE_DIR", warm)


@pytest.mark.parametrize("command,edit", [("analyze-json", e) for e in sorted(EDITS)] +
                         [(c, e) for c in sorted(COMMANDS) if c != "analyze-json" for e in ("comment", "function", "header", "lines")])
def test_a_warm_run_prints_what_a_cold_run_prints(qtool, monkeypatch, tmp_path, program, counted, edit, command):
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    args = COMMANDS[command]
    first = qtool(*args, cwd=program)
    assert first[0] in (0, 1) and "Traceback" not in first[2]
    assert counted["parsed"] == 5

    # Nothing changed: the result is the remembered one; nothing is parsed, merged or loaded.
    counted.update(parsed=0, merged=0, models=0)
    assert qtool(*args, cwd=program) == first
    assert counted == {"parsed": 0, "merged": 0, "models": 0}

    for name, old, new in EDITS[edit]:
        replace(program / name, old, new)
    counted.update(parsed=0, merged=0, models=0)
    edited = qtool(*args, cwd=program)
    touched = 5 if edit == "header" else len(EDITS[edit])
    # An edit inside a comment leaves what the unit says: it is parsed again, nothing is merged.
    assert counted["parsed"] == touched and counted["merged"] == (edit != "comment")
    again = qtool(*args, cwd=program)
    assert again == edited
    assert edited == cold(qtool, monkeypatch, tmp_path, args, program)
    if edit == "comment" or command == "analyze-json":
        assert (edited == first) == (edit == "comment")


def test_an_edit_that_leaves_the_model_reuses_the_result(qtool, monkeypatch, tmp_path, program):
    """Only the edited unit is parsed again; the checks and the output are not made again."""
    import qtool.output as output
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    first = qtool("analyze", "--format", "json", cwd=program)
    rendered = []
    real = output.model_json
    monkeypatch.setattr(output, "model_json", lambda *a, **k: rendered.append(1) or real(*a, **k))
    replace(program / "cache.c", "KVSTORE_CACHE_RACE=1 in", "KVSTORE_CACHE_RACE=2 in")
    assert qtool("analyze", "--format", "json", cwd=program) == first
    assert rendered == []
    replace(program / "cache.c", "QPM_FILE_COMPONENT(cache);\n", "QPM_FILE_COMPONENT(cache);\n\n")
    moved = qtool("analyze", "--format", "json", cwd=program)
    assert rendered == [1] and moved != first


@pytest.mark.parametrize("edit", ["lines", "two", "function"])
def test_an_edit_loads_of_the_units_the_state_holds_only_those_its_merge_uses(qtool, monkeypatch, tmp_path,
                                                                             program, edit):
    """The merge state's units are loaded when first used (cache.Unread), a frame of the entry's
    base at a time: with a frame for each unit, an edit that only moves lines of one unit loads
    that unit alone; one that merges again loads all.  Each prints what a cold run prints."""
    monkeypatch.setattr(cache, "_BASE_UNITS", 1)
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    args = COMMANDS["analyze-json"]
    assert qtool(*args, cwd=program)[0] in (0, 1)
    cache.wait()
    for name, old, new in EDITS[edit]:
        replace(program / name, old, new)
    edited = qtool(*args, cwd=program)
    entry = cache._kept
    paths = [u.path for u in entry.state.units]
    assert len(paths) == 5 and all(type(u) is cache.Unread for u in entry.state.units)
    changed = sorted(i for i, p in enumerate(paths) if os.path.basename(p) in {n for n, _, _ in EDITS[edit]})
    assert sorted(entry.loaded_base) == (changed if edit == "lines" else list(range(5)))
    assert edited == cold(qtool, monkeypatch, tmp_path, args, program)


def test_a_unit_not_as_its_entry_says_is_refused_when_loaded(monkeypatch, tmp_path, program):
    """A base frame whose checksum holds but whose units are not the entry's (a unit of another
    file): loading it is UnreadableEntry, and the analysis that needed it is made anew."""
    from qtool import analyzer
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(program)
    first = analyzer.analyze(["."])
    cache.wait()
    items, key = analyzer.program(["."])
    entry = cache.read_model(key, len(items))
    state = entry.merge([p for p, _ in items])
    frames = entry.base_frames
    units = frames[0].load()
    units[0], units[1] = units[1], units[0]
    import pickle
    import zlib
    data = pickle.dumps(units)
    frames[0].data, frames[0].crc = memoryview(data), zlib.crc32(data)
    with pytest.raises(cache.UnreadableEntry):
        state.units[0].functions
    # The same through the analysis: an edit that moves lines of the first unit.
    monkeypatch.setattr(cache, "read_model", lambda k, n: entry if k == key else None)
    entry.loaded_base.clear()
    first_file = items[0][0]
    with open(first_file) as f:
        text = f.read()
    with open(first_file, "w") as f:
        f.write("\n" + text)
    tries = []
    real = analyzer._analyze
    monkeypatch.setattr(analyzer, "_analyze", lambda *a, **k: tries.append(k.get("use_entry", True)) or real(*a, **k))
    again = analyzer.analyze(["."])
    assert tries == [True, False]
    assert [f.location.line for f in again.functions if f.location.file == first_file] == \
        [f.location.line + 1 for f in first.functions if f.location.file == first_file]


def test_a_merge_state_reading_left_paused_is_stopped_by_the_next_analysis(monkeypatch, tmp_path, program):
    """After an edit inside a body the merge state is not needed: its reading (a thread) is left
    paused rather than stopped while the command runs; the model is still there when asked for,
    and the next analysis in the process stops that reading."""
    import threading

    from qtool import analyzer
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(program)
    first = analyzer.analyze(["."], jobs=1)
    cache.wait()
    threads = threading.active_count()
    replace(program / "cache.c", "KVSTORE_CACHE_RACE=1 in", "KVSTORE_CACHE_RACE=2 in")
    model = analyzer.analysis(["."], jobs=1)
    assert len(cache._paused) == 1
    assert model() == first                     # stops the reading, loads the model
    replace(program / "cache.c", "KVSTORE_CACHE_RACE=2 in", "KVSTORE_CACHE_RACE=3 in")
    again = analyzer.analysis(["."], jobs=1)    # a reading left paused again
    assert len(cache._paused) == 1
    paused = cache._paused[0]
    assert analyzer.analyze(["."], jobs=1) == first
    assert cache._paused == [] and paused._stopped
    for t in threading.enumerate():
        if t is not threading.current_thread() and t.daemon:
            t.join(10)
    assert threading.active_count() == threads
    assert again() == first


def test_an_edit_undone_and_units_added_and_removed(qtool, monkeypatch, tmp_path, program):
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    args = COMMANDS["analyze-json"]
    first = qtool(*args, cwd=program)
    path = program / "stats.c"
    original = path.read_text()
    replace(path, "    return len;\n}\n", "    return len;\n}\n" + STATS_PROBE)
    assert qtool(*args, cwd=program) != first
    path.write_text(original)
    assert qtool(*args, cwd=program) == first
    (program / "extra.c").write_text('#include "kvstore.h"\nint extra(void) { return store_del("x"); }\n')
    added = qtool(*args, cwd=program)
    assert added == cold(qtool, monkeypatch, tmp_path, args, program)
    (program / "extra.c").unlink()
    assert qtool(*args, cwd=program) == first


CORRUPTIONS = {
    "truncated": lambda data: data[:len(data) // 2],
    "byte flipped": lambda data: data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x20]) + data[len(data) // 2 + 1:],
    "empty": lambda data: b"",
    "garbage": lambda data: os.urandom(len(data)),
    "another version": lambda data: data.replace(cache.FORMAT.encode(), b"qtool-cache/0", 1),
    "a pickle of something else": lambda data: __import__("pickle").dumps({"not": "an entry"}),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
@pytest.mark.parametrize("where", ["units", "models", "results"])
def test_a_broken_entry_is_ignored(qtool, monkeypatch, tmp_path, program, where, kind):
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    args = COMMANDS["analyze-json"]
    first = qtool(*args, cwd=program)
    replace(program / "stats.c", "    return len;\n}\n", "    return len;\n}\n" + STATS_PROBE)
    expected = cold(qtool, monkeypatch, tmp_path, args, program)
    directory = tmp_path / "cache" / where
    entries = sorted(directory.iterdir())
    assert entries
    for entry in entries:
        entry.write_bytes(CORRUPTIONS[kind](entry.read_bytes()))
    assert qtool(*args, cwd=program) == expected != first
    assert qtool(*args, cwd=program) == expected       # and the entries written again are good


def test_a_unit_entry_changed_on_disk_is_not_used(qtool, monkeypatch, tmp_path, program):
    """A unit's entry carries a checksum: one whose bytes changed (here a function's name, which
    would still unpickle) is parsed again, not believed.  The model and result entries are
    removed so that the unit entries are what the run reads."""
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    args = COMMANDS["analyze-json"]
    expected = qtool(*args, cwd=program)
    cache.wait()
    changed = 0
    for entry in (tmp_path / "cache" / "units").iterdir():
        data = entry.read_bytes()
        if b"store_get" in data:
            entry.write_bytes(data.replace(b"store_get", b"store_Get"))
            changed += 1
    assert changed
    for where in ("models", "results"):
        shutil.rmtree(tmp_path / "cache" / where)
    out = qtool(*args, cwd=program)
    assert "store_Get" not in out and out == expected


def test_a_command_ends_before_its_writers_and_the_next_run_waits_for_them(tmp_path, program):
    """A cold run prints and exits while its cache writers are still at work (here held on a FIFO
    until the test lets them go); a run started meanwhile waits for them and then parses nothing:
    it prints the same from the entries they wrote."""
    import subprocess
    import sys
    env = dict(os.environ, QPM_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    argv = [sys.executable, "-m", "qtool", "analyze", "--format", "json"]
    first = subprocess.run(argv, cwd=program, env=dict(env, QPM_CACHE_WRITER_GATE=str(gate)),
                           capture_output=True, text=True, timeout=120)
    assert first.returncode in (0, 1), first.stderr
    writers = os.listdir(tmp_path / "cache" / "writers")
    assert writers, "the cold run's writers should still hold their locks"
    assert not os.path.exists(tmp_path / "cache" / "models") or not os.listdir(tmp_path / "cache" / "models")
    # The next run, with a hook that says how many units it parsed.
    probe = ("import sys, runpy\nfrom qtool.analyzer import unit\nreal = unit.parse_unit\nn = [0]\n"
             "def counting(*a, **k):\n    n[0] += 1\n    return real(*a, **k)\nunit.parse_unit = counting\n"
             "import atexit\natexit.register(lambda: sys.stderr.write(f'parsed {n[0]}\\n'))\n"
             "sys.argv = ['qtool', 'analyze', '-j', '1', '--format', 'json']\n"
             "from qtool.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    second = subprocess.Popen([sys.executable, "-c", probe], cwd=program, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    with open(gate, "w"):
        pass                    # the writers go
    out, err = second.communicate(timeout=120)
    assert second.returncode == first.returncode, err
    assert out == first.stdout
    assert "parsed 0" in err, err
    assert os.listdir(tmp_path / "cache" / "writers") == []


def test_a_plan_read_before_is_not_read_again(tmp_path):
    """load_plan keeps a plan as read, by its name and contents: a second run of the same plan gets
    the same plan and diagnostics without YAML (yaml is not even imported), and an edited plan is
    read again, its problems at their new lines."""
    import subprocess
    import sys
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nisolate:\n  - domain: d\n    components: [cache]\n    window_s: 0\n")
    probe = ("import sys\nfrom qtool.plan import load_plan\np, d = load_plan(sys.argv[1])\n"
             "print(repr(p)); print([(x.code, x.location.line, x.message) for x in d])\n"
             "print('yaml' in sys.modules)\n")
    env = dict(os.environ, QPM_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)

    def load():
        r = subprocess.run([sys.executable, "-c", probe, str(plan)], env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.splitlines()

    first = load()
    assert first[2] == "True" and "QPM042" in first[1] and ", 5," in first[1]
    second = load()
    assert second[:2] == first[:2] and second[2] == "False"
    plan.write_text("version: 1\nisolate:\n  - domain: d\n    components: [cache]\n\n    window_s: 0\n")
    third = load()
    assert third[2] == "True" and ", 6," in third[1]


# A program with crossings in three files, for the findings of the checks (marshal.Signatures).
CROSSINGS = {
    "net.c": "#include \"qpm.h\"\nint store_put(char *buf, int n);\nint store_close(int fd);\n"
             "int log_line(const char *s QPM_STRING, int *seen);\n"
             "int net_run(void)\n{\n    char b[4];\n    int seen = 0;\n"
             "    return store_put(b, 4) + store_close(3) + log_line(\"x\", &seen);\n}\n"
             "int main(void) { return net_run(); }\n",
    "store.c": "#include \"qpm.h\"\n#include <unistd.h>\nint store_put(char *buf, int n)\n{\n    return buf[0] + n;\n}\n"
               "int store_close(int fd)\n{\n    return fd;\n}\n",
    "log.c": "#include \"qpm.h\"\nint log_line(const char *s QPM_STRING, int *seen)\n{\n    *seen = s[0];\n    return 0;\n}\n",
}


@pytest.mark.parametrize("command", [("analyze", "-j", "1"), ("check", "-j", "1", "--plan", "plan.yaml")])
def test_the_checks_of_an_edited_program_are_made_again_only_where_what_they_read_changed(
        qtool, monkeypatch, tmp_path, command):
    """After an edit, a crossing is checked again only when something its check read changed (the
    function called, the flows of its parameters, its structs); what is printed is what a run on
    an empty cache prints: a finding whose place moved, and one that the edit made, included."""
    from qtool import marshal
    src = tmp_path / "src"
    src.mkdir()
    for name, text in CROSSINGS.items():
        (src / name).write_text(text)
    (src / "plan.yaml").write_text("version: 1\nisolate:\n  - domain: d\n    components: [store, log]\n")
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    checked = []
    real = marshal.check_signature
    monkeypatch.setattr(marshal, "check_signature", lambda m, fn, *a, **k: checked.append(fn.name) or real(m, fn, *a, **k))
    first = qtool(*command, cwd=src)
    assert sorted(checked) == ["log_line", "store_close", "store_put"]
    assert "store.c:3:" in first[1] + first[2]         # store_put's buffer, at its place

    # Lines of store.c move: what the checks found is kept whole with the model (and the plan),
    # and every finding is the one before with its place moved: nothing is checked.
    checked.clear()
    replace(src / "store.c", "#include <unistd.h>\n", "#include <unistd.h>\n\n\n")
    moved = qtool(*command, cwd=src)
    assert checked == []
    assert "store.c:5:" in moved[1] + moved[2] and "store.c:3:" not in moved[1] + moved[2]
    cache.wait()                # this run's entries, into this cache (before cold() changes it)
    assert moved == cold(qtool, monkeypatch, tmp_path, command, src)

    # A body now hands its parameter to close(): only that crossing is checked again, and it
    # now has a finding (a descriptor) that it did not have.
    checked.clear()
    replace(src / "store.c", "    return fd;\n", "    return close(fd);\n")
    edited = qtool(*command, cwd=src)
    assert checked == ["store_close"]
    assert "QPM016" in edited[1] + edited[2] and "QPM016" not in moved[1] + moved[2]
    cache.wait()
    assert edited == cold(qtool, monkeypatch, tmp_path, command, src)

    # Nothing changed in the program, another output: the findings are reused, none checked.
    checked.clear()
    assert qtool(*command, "--format", "json", cwd=src)[0] in (0, 1)
    assert checked == []


def test_the_json_of_the_files_an_edit_left_is_not_made_again(qtool, monkeypatch, tmp_path, program):
    """A model's entry keeps the JSON of each file's functions and calls: after lines of one file
    moved, only that file's are written again, and the output is what a cold run prints; after a
    function of another file is renamed, the calls to it are written again too."""
    import qtool.output as output
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    args = ("analyze", "-j", "1", "--format", "json")
    qtool(*args, cwd=program)
    cache.wait()
    rendered = {"functions": [], "calls": []}
    real_f, real_e = output._function_json, output._edge_json
    monkeypatch.setattr(output, "_function_json", lambda f, *a: rendered["functions"].append(f.name) or real_f(f, *a))
    monkeypatch.setattr(output, "_edge_json", lambda e, *a: rendered["calls"].append(e.caller) or real_e(e, *a))
    replace(program / "cache.c", "QPM_FILE_COMPONENT(cache);\n", "QPM_FILE_COMPONENT(cache);\n\n")
    moved = qtool(*args, cwd=program)
    model = json.loads(moved[1])
    in_cache_c = sorted(f["name"] for f in model["functions"] if f["file"] == "cache.c")
    assert sorted(rendered["functions"]) == in_cache_c
    usrs_in_cache_c = {f["usr"] for f in model["functions"] if f["file"] == "cache.c"}
    assert rendered["calls"] and set(rendered["calls"]) <= usrs_in_cache_c
    cache.wait()
    assert moved == cold(qtool, monkeypatch, tmp_path, args, program)

    # stats.c's functions move to another component: the calls to them from other files are the
    # same calls, but their JSON names the callee's component, and is written again.
    rendered["calls"].clear()
    replace(program / "stats.c", "QPM_FILE_COMPONENT(stats);", "QPM_FILE_COMPONENT(counters);")
    placed = qtool(*args, cwd=program)
    doc = json.loads(placed[1])
    usr = {f["name"]: f["usr"] for f in doc["functions"]}
    across = {usr[c["caller"]] for c in doc["calls"]
              if c["callee_component"] == "counters" and c["caller_component"] != "counters"}
    assert across and across <= set(rendered["calls"])
    cache.wait()
    assert placed == cold(qtool, monkeypatch, tmp_path, args, program)


def test_findings_moved_with_lines_are_those_of_the_same_plan(qtool, monkeypatch, tmp_path):
    """check's findings are moved with an edit's lines only when the plan is the one they were
    found under: a plan whose domain moved to another line (its messages name that line) is
    checked again, and prints what a cold run prints."""
    src = tmp_path / "src"
    src.mkdir()
    for name, text in CROSSINGS.items():
        (src / name).write_text(text)
    plan = "version: 1\nisolate:\n  - domain: d\n    components: [store, log]\n"
    (src / "plan.yaml").write_text(plan)
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    command = ("check", "-j", "1", "--plan", "plan.yaml")
    first = qtool(*command, cwd=src)
    assert "plan.yaml:3" in first[1]
    cache.wait()
    (src / "plan.yaml").write_text("# the domains\n" + plan)
    replace(src / "store.c", "#include <unistd.h>\n", "#include <unistd.h>\n\n")
    again = qtool(*command, cwd=src)
    assert "plan.yaml:4" in again[1] and "plan.yaml:3" not in again[1] and "store.c:4:" in again[1]
    cache.wait()
    assert again == cold(qtool, monkeypatch, tmp_path, command, src)


def test_a_crossing_whose_parameter_flows_through_an_edited_file_is_checked_again_only_when_the_flow_changed(
        qtool, monkeypatch, tmp_path):
    """store_close's descriptor flows into log.c (the same domain under the plan): lines of log.c
    moving change nothing a check uses (nothing is checked again: the findings move with the
    lines, and what is printed is what a cold run prints); log.c's function handing it to close()
    does."""
    from qtool import marshal
    src = tmp_path / "src"
    src.mkdir()
    files = dict(CROSSINGS)
    files["store.c"] = files["store.c"].replace("int store_close(int fd)\n{\n    return fd;\n}\n",
                                                "int log_fd(int fd);\nint store_close(int fd)\n{\n    log_fd(fd);\n    return 0;\n}\n")
    files["log.c"] += "int log_fd(int fd)\n{\n    return fd;\n}\n"
    for name, text in files.items():
        (src / name).write_text(text)
    (src / "plan.yaml").write_text("version: 1\nisolate:\n  - domain: d\n    components: [store, log]\n")
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    command = ("check", "-j", "1", "--plan", "plan.yaml")
    checked = []
    real = marshal.check_signature
    monkeypatch.setattr(marshal, "check_signature", lambda m, fn, *a, **k: checked.append(fn.name) or real(m, fn, *a, **k))
    first = qtool(*command, cwd=src)
    assert sorted(checked) == ["log_line", "store_close", "store_put"] and "QPM016" not in first[1]
    cache.wait()

    checked.clear()
    replace(src / "log.c", "#include \"qpm.h\"\n", "#include \"qpm.h\"\n\n\n\n")
    moved = qtool(*command, cwd=src)
    assert checked == []
    cache.wait()
    assert moved == cold(qtool, monkeypatch, tmp_path, command, src)

    checked.clear()
    replace(src / "log.c", "int log_fd(int fd)\n{\n    return fd;\n}\n", "int log_fd(int fd)\n{\n    return close(fd);\n}\n")
    edited = qtool(*command, cwd=src)
    assert "store_close" in checked
    assert "QPM016" in edited[1] and "'log_fd'" in edited[1]
    cache.wait()
    assert edited == cold(qtool, monkeypatch, tmp_path, command, src)


def test_the_units_workers_parse_are_in_the_unit_cache(monkeypatch, tmp_path, program):
    """Parsed by a pool of workers, each unit's facts reach the unit cache, written when the
    command's work is done (here, by cache.wait()), with the digest of every file the unit read,
    and equal to what parsing it here makes: a later run finds them there."""
    from qtool import analyzer
    cache.wait()                        # what earlier tests in this process left to write
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(program)
    items, _ = analyzer.program(["."])
    assert len(items) > 2
    assert all(unit.cached(*item) is None for item in items)
    here, stored, real_store = os.getpid(), [], unit.store

    def store(path, args, facts):
        stored.append((path, os.getpid()))
        return real_store(path, args, facts)

    monkeypatch.setattr(unit, "store", store)
    model = analyzer.analyze(["."], jobs=2, progress=False)
    assert stored == []                 # nothing written before the command's work is done
    cache.wait()
    assert sorted(stored) == sorted((path, here) for path, _ in items)
    for path, args in items:
        found = unit.cached(path, args)
        assert found == unit.parse_unit(path, args), path
        assert len(found.deps) > 2
        for file, size, mtime, digest in found.deps:
            assert digest == cache.file_digest(file) and size == os.path.getsize(file), file
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "empty"))
    assert analyzer.analyze(["."], jobs=1, progress=False) == model


def test_a_file_digest_is_taken_when_written_and_only_of_the_file_as_it_was_read(tmp_path):
    """A unit's files are hashed when its entry is written, not when it is parsed (cache.dep,
    cache.filled): a file that changed in between gets no digest that any contents match, and
    one only touched since it was hashed is still unchanged."""
    kept, changed = tmp_path / "kept.h", tmp_path / "changed.h"
    kept.write_text("int kept;\n")
    changed.write_text("int changed;\n")
    deps = [cache.dep(str(kept)), cache.dep(str(changed))]
    assert [d[3] for d in deps] == [None, None]         # never hashed in this process
    assert cache.unchanged(deps)                        # as read
    changed.write_text("int changed_after_the_parse;\n")
    written = cache.filled(deps)
    assert written[0][3] == cache.file_digest(str(kept))
    assert written[1][3] == ""
    assert cache.filled(written) is written             # nothing missing: the same list
    later = os.stat(kept).st_mtime_ns + 5_000_000_000
    os.utime(kept, ns=(later, later))                   # touched, same contents
    os.utime(changed, ns=(later, later))
    assert cache.unchanged(written[:1]) and not cache.unchanged(written[1:])
    assert not cache.unchanged(deps[1:])                # an unhashed dep whose file moved on


SHARED_STRUCT = {
    "msg.h": "#include \"qpm.h\"\nstruct inner { int n; };\n"
             "struct msg { int *body QPM_COUNT(len); int len; struct inner in; };\n"
             "int bus_send(const struct msg *m);\nint bus_peek(const struct msg *m);\n",
    "bus.c": "#include \"msg.h\"\nQPM_FILE_COMPONENT(bus);\n"
             "int bus_send(const struct msg *m) { return m->len; }\nint bus_peek(const struct msg *m) { return m->in.n; }\n",
    "app.c": "#include \"msg.h\"\nint main(void)\n{\n    struct msg m = {0};\n    return bus_send(&m) + bus_peek(&m);\n}\n",
}


def test_a_struct_edited_below_two_crossings_has_both_checked_again(qtool, monkeypatch, tmp_path):
    """Two crossings take the same struct: the second's check finds what the struct holds already
    worked out by the first's, and still notes that it read it, so that an edit of a struct it
    holds has both checked again, as a run on an empty cache does."""
    from qtool import marshal
    src = tmp_path / "src"
    src.mkdir()
    for name, text in SHARED_STRUCT.items():
        (src / name).write_text(text)
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path / "cache"))
    checked = []
    real = marshal.check_signature
    monkeypatch.setattr(marshal, "check_signature", lambda m, fn, *a, **k: checked.append(fn.name) or real(m, fn, *a, **k))
    first = qtool("analyze", "-j", "1", cwd=src)
    assert sorted(checked) == ["bus_peek", "bus_send"] and "QPM014" not in first[1] + first[2]
    cache.wait()

    checked.clear()
    replace(src / "msg.h", "struct inner { int n; };", "struct inner { int n; int *p; };")
    edited = qtool("analyze", "-j", "1", cwd=src)
    assert sorted(checked) == ["bus_peek", "bus_send"]
    assert "QPM014" in edited[1] + edited[2]
    cache.wait()
    assert edited == cold(qtool, monkeypatch, tmp_path, ("analyze", "-j", "1"), src)
