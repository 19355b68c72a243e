"""The crossing cost: measured through the real runtime, cached with what it depends on, measured
again when that changes, and named on stderr by the commands that use it."""

import datetime
import json
import re
import textwrap

import pytest

from qtool import costs

PROGRAM = {
    "api.h": '#include "qpm.h"\nint parse(int n);\n',
    "app.c": '#include "api.h"\nint main(void) { return parse(3); }\n',
    "parser.c": '#include "api.h"\nint parse(int n) { return n - 3; }\n',
}
LINE = re.compile(r"^crossing cost \d+ ns \+ \d+\.\d{3} ns/byte \(median of 5, (\d+)–(\d+) ns; "
                  r"measured (\d{4}-\d\d-\d\d) on (.+), (\d+) cores?, (.+); cached in (.+)\)$")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """One real calibration (a small round count keeps it to a second or two), kept for the
    module: its costs.json."""
    cache = tmp_path_factory.mktemp("costs")
    cwd = tmp_path_factory.mktemp("cwd")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("QPM_CROSSING_NS", raising=False)
        mp.delenv("QPM_REPORT_DIR", raising=False)
        mp.setenv("QPM_CACHE_DIR", str(cache))
        mp.setenv("QPM_CALIBRATE_ROUNDS", "5000")
        mp.chdir(cwd)
        first = costs.crossing_costs()
    assert not list(cwd.iterdir()), "calibration left files in the working directory"
    return first, (cache / "costs.json").read_text()


@pytest.fixture
def cache(tmp_path, monkeypatch, measured):
    """A cache directory holding the real calibration; any further measurement is counted (and
    faked, to stay fast)."""
    monkeypatch.delenv("QPM_CROSSING_NS", raising=False)
    monkeypatch.setenv("QPM_CACHE_DIR", str(tmp_path))
    (tmp_path / "costs.json").write_text(measured[1])
    runs = []
    real = json.loads(measured[1])

    def fake(runs_=costs.RUNS):
        runs.append(1)
        return dict(real, ns_per_call=1234.0, measured="2030-01-02T03:04:05Z",
                    machine=costs.machine(), compiler=costs._compiler(), code_id=costs.code_id())

    monkeypatch.setattr(costs, "calibrate", fake)
    return tmp_path, runs


def test_a_calibration_is_the_median_of_five_runs_with_its_spread(measured):
    first, text = measured
    record = json.loads(text)
    assert len(record["null_ns"]) == len(record["bulk_ns"]) == record["runs"] == 5
    assert record["ns_per_call"] == sorted(record["null_ns"])[2]
    assert record["ns_per_call_min"] == min(record["null_ns"]) <= record["ns_per_call"] <= record["ns_per_call_max"]
    assert 10 < record["ns_per_call"] < 100_000 and record["ns_per_byte"] >= 0
    assert record["machine"] == costs.machine() and record["machine"]["cores"] >= 1
    assert record["compiler"] == costs._compiler() and record["compiler"]
    assert record["code_id"] == costs.code_id()
    assert record["measured"][:10] == datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert first.ns_per_call == record["ns_per_call"]
    assert first.source.endswith("; measured now: no calibration yet")


def test_the_cached_figure_is_used_while_nothing_changed(cache):
    path, runs = cache
    record = json.loads((path / "costs.json").read_text())
    again = costs.crossing_costs()
    assert runs == [] and again.ns_per_call == record["ns_per_call"]
    m = LINE.match(costs.describe(again))
    assert m, costs.describe(again)
    assert (float(m[1]), float(m[2])) == (round(record["ns_per_call_min"]), round(record["ns_per_call_max"]))
    assert m[3] == record["measured"][:10] and m[4] == record["machine"]["cpu"] and m[6] == record["compiler"]
    assert m[7].endswith("costs.json")


@pytest.mark.parametrize("key, value, why", [
    ("code_id", "0000000000000000", "the runtime or the stub generator changed"),
    ("compiler", "gcc (Elsewhere) 1.0", "the compiler changed"),
    ("machine", {"cpu": "another CPU", "cores": 64, "arch": "x86_64"}, "the machine changed"),
    ("schema", None, "the cached figure is of an older format"),
])
def test_a_change_measures_again(cache, key, value, why):
    path, runs = cache
    record = json.loads((path / "costs.json").read_text())
    record[key] = value
    (path / "costs.json").write_text(json.dumps(record))
    again = costs.crossing_costs()
    assert runs == [1] and again.ns_per_call == 1234.0
    assert again.source.endswith(f"; measured now: {why}")
    assert "measured 2030-01-02 on " in again.source
    stored = json.loads((path / "costs.json").read_text())
    assert stored["code_id"] == costs.code_id() and stored["ns_per_call"] == 1234.0
    costs.crossing_costs()
    assert runs == [1]                                      # and the new figure is used from then on


def test_an_unreadable_cache_measures_again(cache):
    path, runs = cache
    (path / "costs.json").write_text("{not json")
    assert costs.crossing_costs().source.endswith("; measured now: the cached figure was unreadable")
    assert runs == [1]


def test_the_environment_overrides_the_measurement(cache, monkeypatch):
    monkeypatch.setenv("QPM_CROSSING_NS", "250")
    c = costs.crossing_costs(recalibrate=True)
    assert (c.ns_per_call, c.ns_per_byte) == (250.0, 0.0) and cache[1] == []
    assert costs.describe(c) == "crossing cost 250 ns + 0.000 ns/byte (QPM_CROSSING_NS from the environment)"


def test_cut_and_learn_say_which_figure_they_used_and_recalibrate_on_request(cache, qtool, tmp_path):
    path, runs = cache
    src = tmp_path / "src"
    src.mkdir()
    for name, text in PROGRAM.items():
        (src / name).write_text(textwrap.dedent(text))
    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "parser")
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("crossing cost ")]
    assert len(lines) == 1 and LINE.match(lines[0]), err
    assert runs == []

    rc, out, err = qtool("cut", "--suggest", src, "--isolate", "parser", "--recalibrate")
    assert rc == 0, err
    assert runs == [1]
    (line,) = [ln for ln in err.splitlines() if ln.startswith("crossing cost ")]
    assert line.startswith("crossing cost 1234 ns + ") and line.endswith("; measured now: --recalibrate)")
    assert "cost of a crossing: 1234 ns + " in out

    reports = tmp_path / "reports"
    reports.mkdir()
    rc, out, err = qtool("learn", src, "--reports", reports, "--db", tmp_path / "r.sqlite",
                         "--policy", "optimistic", "-o", tmp_path / "plan.yaml", "--recalibrate")
    assert rc == 0, err
    assert runs == [1, 1]
    (line,) = [ln for ln in err.splitlines() if ln.startswith("crossing cost ")]
    assert line.startswith("crossing cost 1234 ns + ") and line.endswith("; measured now: --recalibrate)")


def test_a_bad_round_count_is_a_user_error(monkeypatch):
    monkeypatch.setenv("QPM_CALIBRATE_ROUNDS", "few")
    with pytest.raises(costs.UserError, match="QPM_CALIBRATE_ROUNDS"):
        costs.calibrate()
