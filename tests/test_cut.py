"""qtool cut --suggest on programs whose best cut is known by construction."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCONS = os.path.join(os.path.dirname(sys.executable), "scons")


@pytest.fixture(autouse=True)
def fixed_costs(monkeypatch):
    # A known cost per crossing keeps predictions exact; calibration has its own test.
    monkeypatch.setenv("QPM_CROSSING_NS", "100")
    monkeypatch.setenv("QPM_CROSSING_NS_PER_BYTE", "0")


def write(root, files):
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(textwrap.dedent(text).lstrip())
    return root


HOT_HELPER = {
    "api.h": """
        #include "qpm.h"
        int parse(int n);
        int util_step(int x);
    """,
    "app.c": """
        #include <stdio.h>
        #include "api.h"
        int main(void) { printf("%d\\n", parse(50)); return 0; }
    """,
    "parser.c": """
        #include "api.h"
        int parse(int n) { int s = 0; for (int i = 0; i < n; i++) s += util_step(i); return s; }
    """,
    "util.c": """
        #include "api.h"
        int util_step(int x) { return x * 2; }
    """,
}


def cut_json(qtool, src, *args):
    rc, out, err = qtool("cut", "--suggest", src, "--format", "json", *args)
    assert rc == 0, err
    return json.loads(out)


def domains(candidate):
    return {d["domain"]: d["components"] for d in candidate["domains"]}


def test_hot_helper_joins_the_isolated_component(qtool, tmp_path):
    src = write(tmp_path / "src", HOT_HELPER)
    doc = cut_json(qtool, src, "--isolate", "parser")
    assert doc["schema"] == "qpm.cut/1" and doc["bound"] == "exact (minimum s-t cut)"
    best, naive = doc["candidates"]
    assert domains(best) == {"parser_iso": ["parser", "util"]}
    assert [(e["a"], e["b"]) for e in best["cut"]] == [("app", "parser")]
    assert best["crossings_per_run"] == pytest.approx(1.0)
    assert best["cost_ns_per_run"] == pytest.approx(100.0)
    # Leaving the helper behind would cut the loop (a loop counts 10 trips statically) and the
    # call into parser: 11 crossings per run.
    assert domains(naive) == {"parser_iso": ["parser"]}
    assert naive["crossings_per_run"] == pytest.approx(11.0)
    assert doc["articulation_points"] == ["parser"]


def test_suggested_plan_checks_builds_and_runs(qtool, tmp_path):
    src = write(tmp_path / "src", HOT_HELPER)
    (src / "SConstruct").write_text(
        "import qtool.scons\nenv = Environment(tools=['default', qtool.scons.tool])\n"
        "env.QpmProgram('prog', Glob('*.c'))\n")
    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "parser", "-o", src / "plan.yaml",
                         "--dot", tmp_path / "cut.dot")
    assert rc == 0, err
    assert "1. cheapest: 1 crossings, 0.1 us per run" in out
    rc, _, err = qtool("check", "--plan", src / "plan.yaml", src)
    assert rc == 0, err
    for args in ([], ["ISOLATE=plan.yaml"]):
        proc = subprocess.run([SCONS, "-Q", *args], cwd=src, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    mono = subprocess.run([str(src / "build" / "mono" / "prog")], capture_output=True, text=True)
    split = subprocess.run([str(src / "build" / "plan" / "prog")], capture_output=True, text=True)
    assert mono.stdout == split.stdout == "2450\n"
    assert (src / "build" / "plan" / "prog-parser_iso").exists()
    picture = (tmp_path / "cut.dot").read_text()
    assert 'subgraph "cluster_parser_iso"' in picture
    assert '"app" -- "parser" [color=red, penwidth=2, label="1/run"]' in picture


def test_dot_without_graphviz_says_once_that_no_svg_was_made(qtool, tmp_path, monkeypatch):
    import shutil
    src = write(tmp_path / "src", HOT_HELPER)
    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "dot" else which(name, *a, **k))
    rc, _, err = qtool("cut", "--suggest", src, "--isolate", "parser", "--dot", tmp_path / "cut.dot")
    assert rc == 0, err
    assert (tmp_path / "cut.dot").exists() and not (tmp_path / "cut.svg").exists()
    assert err.count("cut.svg not made") == 1
    assert f"note: {tmp_path / 'cut.svg'} not made: Graphviz's 'dot' is not installed" in err


def test_components_sharing_a_global_stay_together(qtool, tmp_path):
    src = write(tmp_path / "src", {
        "app.c": """
            int parse(void); int state_get(void);
            int main(void) { int s = 0; for (int i = 0; i < 10; i++) s += state_get(); return parse() + s; }
        """,
        "parser.c": "extern int level; int parse(void) { return ++level; }\n",
        "state.c": "int level; int state_get(void) { return level; }\n",
    })
    doc = cut_json(qtool, src, "--isolate", "parser")
    (best,) = doc["candidates"]
    assert domains(best) == {"parser_iso": ["parser", "state"]}
    assert best["crossings_per_run"] == pytest.approx(11.0)
    (note,) = doc["notes"]
    assert "state.c:1:5: global 'level': written by parse and used in 'parser' and 'state'" in note
    assert "to unblock: mark 'level' QPM_SHARED, or keep 'parser' and 'state' together" in note


def test_an_edge_that_cannot_be_marshalled_cannot_be_cut(qtool, tmp_path):
    src = write(tmp_path / "src", {
        "app.c": "int parse(void *blob); int main(void) { char b[4] = {0}; return parse(b); }\n",
        "parser.c": "int parse(void *blob) { return blob != 0; }\n",
    })
    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "parser")
    assert rc == 2 and out == ""
    assert "'parser' cannot be separated from 'app'" in err and "Traceback" not in err


def test_a_static_helper_goes_with_each_caller(qtool, tmp_path):
    """A static function runs wherever its callers run: calls to it never cross, so one whose
    signature could not cross does not tie the components of its file together.  The plan cut
    suggests splits the file, and checks, builds and runs."""
    src = write(tmp_path / "src", {
        "server.c": """
            #include <string.h>
            #include "qpm.h"
            int parse(int n);
            static int trim(char *s) { return (int)strlen(s); }
            QPM_COMPONENT(parse) int parse(int n) { char b[8] = "abc"; return trim(b) + n; }
            int main(void) { char b[8] = "xy"; return parse(trim(b)) == 5 ? 0 : 1; }
        """,
        "SConstruct": """
            import qtool.scons
            env = Environment(tools=['default', qtool.scons.tool])
            env.QpmProgram('prog', Glob('*.c'))
        """,
    })
    doc = cut_json(qtool, src, "--isolate", "parse")
    best = doc["candidates"][0]
    assert domains(best) == {"parse_iso": ["parse"]}
    assert best["crossings_per_run"] == pytest.approx(1.0)      # main -> parse; trim never crosses
    rc, _, err = qtool("cut", "--suggest", src, "--isolate", "parse", "-o", src / "plan.yaml")
    assert rc == 0, err
    rc, _, err = qtool("check", "--plan", src / "plan.yaml", src)
    assert rc == 0, err
    for args in ([], ["ISOLATE=plan.yaml"]):
        proc = subprocess.run([SCONS, "-Q", *args], cwd=src, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert subprocess.run([str(src / "build" / "mono" / "prog")]).returncode == 0
    assert subprocess.run([str(src / "build" / "plan" / "prog")]).returncode == 0
    assert (src / "build" / "plan" / "prog-parse_iso").exists()


def test_several_suspects_share_helpers_where_cheapest(qtool, tmp_path):
    src = write(tmp_path / "src", {
        "app.c": "int a_run(void); int b_run(void); int main(void) { return a_run() + b_run(); }\n",
        "a.c": "int h(int); int a_run(void) { int s = 0; for (int i = 0; i < 10; i++) for (int j = 0; j < 10; j++) s += h(j); return s; }\n",
        "b.c": "int h(int); int b_run(void) { return h(1); }\n",
        "h.c": "int h(int x) { return x + 1; }\n",
    })
    doc = cut_json(qtool, src, "--isolate", "a", "b")
    best = doc["candidates"][0]
    assert doc["bound"] == "exact (every assignment enumerated)"
    assert domains(best) == {"a_iso": ["a", "h"], "b_iso": ["b"]}
    assert best["crossings_per_run"] == pytest.approx(3.0)     # app-a, app-b, b-h


def test_several_suspects_leave_what_nothing_ties_to_them_with_main(qtool, tmp_path):
    src = write(tmp_path / "src", {
        "app.c": "int a_run(void); int b_run(void); int main(void) { return a_run() + b_run(); }\n",
        "a.c": "int a_run(void) { return 1; }\n",
        "b.c": "int b_run(void) { return 2; }\n",
        "stats.c": "void stats_reset(void) { }\n",                        # called by nothing
        "p1.c": "int p2(int); int p1(int x) { return p2(x); }\n",         # only each other
        "p2.c": "int p2(int x) { return x + 1; }\n",
    })
    doc = cut_json(qtool, src, "--isolate", "a", "b")
    assert doc["bound"] == "exact (every assignment enumerated)"
    assert domains(doc["candidates"][0]) == {"a_iso": ["a"], "b_iso": ["b"]}


def test_suspects_come_from_crash_reports(qtool, tmp_path):
    src = write(tmp_path / "src", HOT_HELPER)
    reports = tmp_path / "reports"
    reports.mkdir()
    crash = {"schema": "qpm.crash/1", "components": ["app", "parser", "util"], "backtrace": [
        {"function": "??", "file": None, "line": 0},
        {"function": "util_step", "file": "util.c", "line": 2, "component": "util"}]}
    (reports / "crash-1.json").write_text(json.dumps(crash))
    doc = cut_json(qtool, src, "--profile", reports)
    assert doc["suspects"] == ["util"] and doc["culprits"] == {"util": 1}


def test_measured_calls_replace_static_weights(qtool, tmp_path):
    src = write(tmp_path / "src", HOT_HELPER)
    reports = tmp_path / "stats"
    reports.mkdir()
    stats = {"schema": "qpm.stats/1", "edges": [
        {"caller_domain": "main", "callee": "parse", "calls": 7, "bytes": 0, "time_ns": 0},
        {"caller_domain": "main", "callee": "util_step", "calls": 2, "bytes": 0, "time_ns": 0}]}
    (reports / "stats-1.json").write_text(json.dumps(stats))
    doc = cut_json(qtool, src, "--isolate", "parser", "--profile", reports)
    best = doc["candidates"][0]
    # Measured: 7 calls of parse per run (statically 1), and 2 of util_step (statically 10).
    assert domains(best) == {"parser_iso": ["parser", "util"]}
    assert best["crossings_per_run"] == pytest.approx(7.0)
    assert doc["candidates"][1]["crossings_per_run"] == pytest.approx(9.0)


def test_unknown_component_is_a_clear_error(qtool, tmp_path):
    src = write(tmp_path / "src", HOT_HELPER)
    rc, _, err = qtool("cut", "--suggest", src, "--isolate", "nope")
    assert rc == 2 and "no component 'nope'" in err


def test_detailed_view_lists_the_calls_that_cross(qtool, tmp_path):
    src = write(tmp_path / "src", HOT_HELPER)
    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "parser", "--detail", "--dot", tmp_path / "f.dot")
    assert rc == 0, err
    assert "     call app.main -> parser.parse: 1/run" in out
    assert "     call parser.parse -> util.util_step: 10/run" in out      # the naive candidate's
    picture = (tmp_path / "f.dot").read_text()
    assert '"app.main" -> "parser.parse" [color=red, penwidth=2, label="1/run"];' in picture
    assert '"parser.parse" -> "util.util_step" [color=gray60];' in picture
    assert 'subgraph "cluster_c_util"' in picture


def test_measured_bytes_price_the_crossings(qtool, tmp_path, monkeypatch):
    src = write(tmp_path / "src", HOT_HELPER)
    reports = tmp_path / "stats"
    reports.mkdir()
    stats = {"schema": "qpm.stats/1", "edges": [
        {"caller_domain": "main", "callee": "parse", "calls": 4, "bytes": 4000, "time_ns": 0}]}
    (reports / "stats-1.json").write_text(json.dumps(stats))
    monkeypatch.setenv("QPM_CROSSING_NS_PER_BYTE", "1")
    doc = cut_json(qtool, src, "--isolate", "parser", "--profile", reports)
    best = doc["candidates"][0]
    assert best["cut"][0]["bytes_per_run"] == pytest.approx(4000.0)      # 4 calls x 1000 bytes
    assert best["cost_ns_per_run"] == pytest.approx(4 * 100 + 4000 * 1)
    assert best["calls"] == [{"caller": "main", "callee": "parse", "caller_component": "app",
                              "callee_component": "parser", "crossings_per_run": 4.0}]


# A hash function chosen at start: `hash` is a global pointer set to one of two hash functions,
# each in its own component, and called by main-side code for every key (memcached's hash.c).
HASHED = {
    "hash.h": """
        #include <stdint.h>
        #include "qpm.h"
        typedef uint32_t (*hash_func)(uint64_t key);
        extern hash_func hash;
        void hash_init(int kind);
        uint32_t jenkins_hash(uint64_t key);
        uint32_t murmur3_hash(uint64_t key);
        uint32_t assoc_find(uint64_t key);
        uint32_t slab_automove_run(uint64_t key);
    """,
    "hash.c": """
        #include "hash.h"
        hash_func hash;
        void hash_init(int kind) { hash = kind ? jenkins_hash : murmur3_hash; }
    """,
    "jenkins_hash.c": '#include "hash.h"\nuint32_t jenkins_hash(uint64_t key) { return (uint32_t)(key * 2654435761u); }\n',
    "murmur3_hash.c": '#include "hash.h"\nuint32_t murmur3_hash(uint64_t key) { return (uint32_t)(key ^ (key >> 33)); }\n',
    "assoc.c": '#include "hash.h"\nuint32_t assoc_find(uint64_t key) { return hash(key) & 1023; }\n',
    "stats.c": "void stats_reset(void) { }\n",
    "slab_automove.c": '#include "hash.h"\nuint32_t slab_automove_run(uint64_t key) { return (uint32_t)key % 7; }\n',
    "app.c": """
        #include <stdio.h>
        #include "hash.h"
        int main(int argc, char **argv)
        {
            uint32_t s = 0;
            hash_init(argc > 1);
            for (uint64_t k = 0; k < 100; k++)
                s += assoc_find(k);
            s += slab_automove_run(s);
            printf("%u\\n", s);
            return 0;
        }
    """,
}


def test_components_reached_only_through_a_pointer_stay_with_their_callers(qtool, tmp_path):
    src = write(tmp_path / "src", HASHED)
    doc = cut_json(qtool, src, "--isolate", "slab_automove")
    # Neither the hash functions (reached only through `hash`, from assoc) nor stats (reached by
    # nothing) follow the suspect: only a cheaper cut would take a component along.
    assert domains(doc["candidates"][0]) == {"slab_automove_iso": ["slab_automove"]}
    assert doc["candidates"][0]["crossings_per_run"] == pytest.approx(1.0)

    from qtool import analyzer, cut
    g = cut.component_graph(analyzer.analyze([str(src)]), cut.Costs(100.0, 0.0))
    # assoc_find runs 10 times per run (a loop), its one call through `hash` may reach two
    # functions: each edge gets half.
    for target in ("jenkins_hash", "murmur3_hash"):
        edge = g["assoc"][target]
        assert edge["crossings"] == pytest.approx(5.0)
        (block,) = edge["blocked"]
        assert block.what == f"assoc_find -> {target} (indirect call through 'hash')"
        assert str(block.location).endswith("assoc.c:2:44")
        assert block.fix == f"pass 'hash' to 'assoc_find' as a QPM_CALLBACK parameter, or keep 'assoc' and '{target}' together"
    assert "stats" in g and g.degree("stats") == 0


def test_a_pointer_passed_as_a_callback_can_be_cut(qtool, tmp_path):
    files = dict(HASHED)
    files["hash.h"] = files["hash.h"].replace("uint32_t slab_automove_run(uint64_t key);",
                                              "uint32_t slab_automove_run(uint64_t key, hash_func h QPM_CALLBACK);")
    files["slab_automove.c"] = """
        #include "hash.h"
        uint32_t slab_automove_run(uint64_t key, hash_func h)
        {
            uint32_t s = 0;
            for (int i = 0; i < 4; i++)
                s += h(key + i) % 7;
            return s;
        }
    """
    files["app.c"] = files["app.c"].replace("slab_automove_run(s)", "slab_automove_run(s, hash)")
    src = write(tmp_path / "src", files)
    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "slab_automove", "--detail", "-o", src / "plan.yaml")
    assert rc == 0, err
    # The suspect calls back the hash functions (10 calls a run, half each); they stay with assoc,
    # whose calls through `hash` cannot cross.
    assert "   domain slab_automove_iso: slab_automove\n" in out
    assert "1. cheapest: 11 crossings" in out
    assert "     call slab_automove.slab_automove_run -> jenkins_hash.jenkins_hash via 'h': 5/run" in out
    rc, out, err = qtool("check", "--plan", src / "plan.yaml", src)
    assert rc == 0, out + err


def test_a_refused_cut_names_the_blocking_edges(qtool, tmp_path):
    files = dict(HASHED)
    files["slab_automove.c"] = '#include "hash.h"\nuint32_t slab_automove_run(uint64_t key) { return hash(key) % 7; }\n'
    files["app.c"] = files["app.c"].replace("slab_automove_run(s);", "slab_automove_run(s) + hash(s);")
    src = write(tmp_path / "src", files)
    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "slab_automove")
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == ("qtool: error: 'slab_automove' cannot be separated from 'app': every way apart crosses "
                        "an edge that must not be cut; the fewest to unblock (3):")
    hash_c, slab_c = src / "hash.c", src / "slab_automove.c"
    assert lines[1:] == [
        f"  {hash_c}:2:11: global 'hash': written by hash_init and used in 'app', 'assoc', 'hash' and "
        "'slab_automove', which would each have a copy of their own [QPM032]; to unblock: keep 'app', "
        "'assoc', 'hash' and 'slab_automove' together ('hash' holds pointers: QPM_SHARED cannot carry it)",
        f"  {slab_c}:2:51: slab_automove_run -> jenkins_hash (indirect call through 'hash'): a function "
        "pointer can call into another process only as a QPM_CALLBACK parameter [QPM035]; to unblock: pass "
        "'hash' to 'slab_automove_run' as a QPM_CALLBACK parameter, or keep 'slab_automove' and 'jenkins_hash' "
        "together",
        f"  {slab_c}:2:51: slab_automove_run -> murmur3_hash (indirect call through 'hash'): a function "
        "pointer can call into another process only as a QPM_CALLBACK parameter [QPM035]; to unblock: pass "
        "'hash' to 'slab_automove_run' as a QPM_CALLBACK parameter, or keep 'slab_automove' and 'murmur3_hash' "
        "together",
    ]


def test_a_refusal_names_five_blocking_edges_and_counts_the_rest(qtool, tmp_path):
    protos = "".join(f"int put{i}(void *buf, int len);\n" for i in range(7))
    src = write(tmp_path / "src", {
        "api.h": protos,
        "app.c": '#include "api.h"\nint main(void) { char b[4] = {0}; return '
                 + " + ".join(f"put{i}(b, 4)" for i in range(7)) + "; }\n",
        "store.c": '#include "api.h"\n' + "".join(f"int put{i}(void *buf, int len) {{ return len + {i}; }}\n"
                                                  for i in range(7)),
    })
    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "store")
    assert rc == 2
    lines = err.splitlines()
    assert lines[0].endswith("the fewest to unblock (7):")
    assert len(lines) == 7 and lines[-1] == "  and 2 more"
    app_c = src / "app.c"
    assert lines[1].startswith(f"  {app_c}:2:")
    assert lines[1].endswith(": main -> put0: parameter 'buf' (void *): unannotated 'void *' parameter crosses a "
                             "boundary [QPM010]; to unblock: annotate parameter 'buf' with QPM_INOUT(len), or keep "
                             "'app' and 'store' together")


def test_isolating_cuts_never_hand_a_terminal_to_another(qtool, tmp_path):
    """Two suspects reached only through a global function pointer that many components call
    through (memcached's hash), among enough components that the multiway cut is approximated by
    isolating cuts: they cannot be cut off, and the cut says so, rather than proposing a plan that
    moves main's component into a suspect's domain and leaves the other suspect's empty."""
    files = {f"part{i}.c": (f"extern unsigned (*hash)(unsigned);\n"
                            f"int part{i}(int x) {{ return (int)hash((unsigned)x) + {i}; }}\n") for i in range(12)}
    files["hash_a.c"] = "unsigned hash_a(unsigned k) { return k * 31u; }\n"
    files["hash_b.c"] = "unsigned hash_b(unsigned k) { return k * 33u; }\n"
    files["hash.c"] = ("unsigned hash_a(unsigned); unsigned hash_b(unsigned);\n"
                       "unsigned (*hash)(unsigned);\n"
                       "void hash_init(int which) { hash = which ? hash_a : hash_b; }\n")
    calls = " + ".join(f"part{i}(n)" for i in range(12))
    files["app.c"] = ("void hash_init(int);\n" + "".join(f"int part{i}(int);\n" for i in range(12))
                      + f"int main(int n, char **v) {{ (void)v; hash_init(n > 1); return {calls}; }}\n")
    src = write(tmp_path / "src", files)
    rc, out, err = qtool("cut", src, "--isolate", "hash_a", "hash_b", "-o", tmp_path / "plan.yaml")
    assert rc == 2 and out == "", out
    assert err.splitlines()[0].startswith("qtool: error: 'hash_a', 'hash_b' cannot be separated from each other "
                                          "and 'app'"), err
    assert not (tmp_path / "plan.yaml").exists()
