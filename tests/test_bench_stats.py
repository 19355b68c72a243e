"""The benchmarks' interval for a median (bench/kvstore.py), by which bench/fixed_rate.py says
whether a p99 is within 10% of its floor's: it must hold the true median at least as often as it
claims, and be no wider than that needs."""

import math
import os
import random
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import kvstore  # noqa: E402  (bench/kvstore.py)


def below(n: int, k: int) -> float:
    """P(B <= k) for B ~ Binomial(n, 1/2)."""
    return sum(math.comb(n, j) for j in range(k + 1)) / 2 ** n


def test_the_interval_is_the_narrowest_pair_of_order_statistics_that_covers_90_percent():
    assert kvstore.median_interval([1.0, 2.0, 3.0, 4.0]) is None      # 4 values: no 90% interval
    for n in range(5, 80):
        xs = [float(i) for i in range(1, n + 1)]                       # x(i) = i
        low, median, high = kvstore.median_interval(list(reversed(xs)))
        k = int(low)
        assert high == n + 1 - k and median == (n + 1) / 2
        assert 1 - 2 * below(n, k - 1) >= 0.9                          # it covers 90%
        assert 1 - 2 * below(n, k) < 0.9                               # one step narrower would not


def test_the_interval_holds_the_true_median_as_often_as_it_claims_on_skewed_ratios():
    rng = random.Random(13)
    for n in (5, 12, 40):
        held = 0
        for _ in range(2000):
            ratios = [rng.lognormvariate(0.0, 1.0) for _ in range(n)]   # true median 1, a long tail
            low, _, high = kvstore.median_interval(ratios)
            held += low <= 1.0 <= high
        assert held / 2000 >= 0.88, (n, held)


def test_the_verdicts_follow_the_interval():
    assert kvstore.verdict([0.9, 0.95, 1.0, 1.02, 1.05, 0.97, 1.01], 1.1) == "within"
    assert kvstore.verdict([1.3, 1.5, 1.2, 1.6, 1.25, 1.4, 1.35], 1.1) == "beyond"
    assert kvstore.verdict([0.5, 3.0, 0.8, 2.0, 1.1, 0.9, 1.6], 1.1) == "not resolved"
    assert kvstore.verdict([1.0, 1.0, 1.0], 1.1) == "not resolved"    # too few rounds to say
    assert kvstore.interval_text([1.0, 1.0, 1.0]).endswith("(too few rounds for a 90% interval)")
    assert kvstore.interval_text([0.9, 0.95, 1.0, 1.02, 1.05]) == "1.00 (90%: 0.90 to 1.05)"


def test_at_least_asks_the_interval_from_below():
    rounds = [0.92, 0.95, 0.97, 1.0, 0.93, 0.99, 0.96, 0.94, 1.01, 0.98]
    assert kvstore.at_least(rounds, 0.9) == "yes"
    assert kvstore.at_least([x - 0.2 for x in rounds], 0.9) == "no"
    assert kvstore.at_least([0.7, 1.0, 0.85, 0.95, 0.8, 1.1, 0.9, 0.75, 1.05, 0.88], 0.9) == "not resolved"
    assert kvstore.at_least([0.9] * 10, 0.9) == "yes"                 # the bound itself is at least it
    assert kvstore.at_least([1.0, 1.0, 1.0], 0.9) == "not resolved"  # too few rounds to say


def test_the_balanced_order_runs_every_build_after_every_other_equally_often():
    for n in range(1, 9):
        builds = tuple(f"b{i}" for i in range(n))
        period = n if n % 2 == 0 else 2 * n
        after = {}
        for k in range(period):
            order = kvstore.balanced(builds, k)
            assert sorted(order) == sorted(builds)                     # each build once a round
            for a, b in zip(order, order[1:]):
                after[a, b] = after.get((a, b), 0) + 1
        assert len(after) == n * (n - 1)                               # every ordered pair occurs ...
        assert len(set(after.values())) <= 1                           # ... equally often
        assert kvstore.balanced(builds, period) == kvstore.balanced(builds, 0)
