"""Every metric against a small example whose answer is worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from sale.analysis import metrics as M


def test_pass_at_1_and_per_bin():
    assert M.pass_at_1([1, 0, 1, 1]) == 0.75
    assert math.isnan(M.pass_at_1([]))
    df = pd.DataFrame({"bin": [2, 1, 1, 2, 2], "passed": [1, 1, 0, 1, 0]})
    by_bin = M.per_bin(df, "passed", "bin")
    assert list(by_bin.index) == [1, 2]
    assert by_bin.loc[1] == 0.5
    assert by_bin.loc[2] == pytest.approx(2 / 3)


def test_cost_metrics():
    assert M.cost_per_task([0.1, 0.3, 0.2]) == pytest.approx(0.2)
    # 3M tokens at 0.05 $/Mtok (= 0.15 $) + 1M tokens at 0.36 $/Mtok (= 0.36 $): 0.51 $ / 4M tokens
    assert M.blended_price_per_mtok([0.15, 0.36], [3e6, 1e6]) == pytest.approx(0.1275)
    assert M.blended_price_per_mtok(0.36, 1e6) == pytest.approx(0.36)
    assert M.relative_cost([30, 35], 100) == pytest.approx(0.65)
    assert M.cost_reduction([30, 35], 100) == pytest.approx(0.35)


def test_reliance_and_overhead():
    executed = ["4b", "32b", "32b", "8b"]
    share = M.largest_agent_share(executed, "32b")
    assert share == 0.5
    assert M.reliance_reduction(share) == 0.5  # largest-only executes every task: share 1.0
    assert M.reliance_reduction(0.35) == pytest.approx(0.65)
    assert M.reliance_reduction(0.3, reference_share=0.6) == pytest.approx(0.5)
    assert M.largest_agent_share(np.array([3, 3, 0, 1]), 3) == 0.5
    assert M.overhead_share([5, 3], [1000, 600]) == pytest.approx(0.005)


def test_length_stats():
    df = pd.DataFrame({"agent": ["a", "a", "b", "b", "b"], "turns": [2, 4, 1, 1, 7]})
    stats = M.length_stats(df, "turns", "agent")
    assert stats.loc["a", "mean"] == 3 and stats.loc["a", "count"] == 2
    assert stats.loc["b", "median"] == 1 and stats.loc["b", "max"] == 7
    assert stats.loc["a", "std"] == pytest.approx(math.sqrt(2))


# A router swept over its parameter. Hull: (1, .2) -> (2, .6) -> (3, .7), then flat.
# (1.5, .3) lies below the chord (1,.2)-(2,.6) (.4 there), (2.5, .55) below (2,.6)-(3,.7)
# (.65 there), and (4, .5) is dominated by (3, .7).
COSTS = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0]
QUALITIES = [0.2, 0.3, 0.6, 0.55, 0.7, 0.5]


def test_nondecreasing_convex_hull():
    hull_c, hull_q = M.nondecreasing_convex_hull(COSTS, QUALITIES)
    np.testing.assert_allclose(hull_c, [1, 2, 3])
    np.testing.assert_allclose(hull_q, [0.2, 0.6, 0.7])
    np.testing.assert_allclose(M.hull_quality([0.5, 1.5, 2.5, 10], hull_c, hull_q), [0, 0.4, 0.65, 0.7])
    # a collinear middle point is not a vertex; an equal-cost worse point is dropped
    hull_c, hull_q = M.nondecreasing_convex_hull([0, 1, 2, 1], [0, 0.5, 1.0, 0.1])
    np.testing.assert_allclose(hull_c, [0, 2])


def test_hull_bounds_every_point_and_is_concave_nondecreasing():
    rng = np.random.default_rng(0)
    costs, qualities = rng.random(200), rng.random(200)
    hull_c, hull_q = M.nondecreasing_convex_hull(costs, qualities)
    assert np.all(M.hull_quality(costs, hull_c, hull_q) >= qualities - 1e-12)
    slopes = np.diff(hull_q) / np.diff(hull_c)
    assert np.all(slopes > 0) and np.all(np.diff(slopes) < 0)
    assert hull_c[0] == costs.min() and hull_q[-1] == qualities.max()


def test_aiq_by_hand():
    # own range [1, 4]: trapezoids (.2+.6)/2 + (.6+.7)/2 + .7 (flat 3 -> 4) = 1.75, / 3
    assert M.aiq(COSTS, QUALITIES) == pytest.approx(1.75 / 3)
    # common range [0, 5]: 0 on [0, 1), then 1.75 + .7 (flat 4 -> 5) = 2.45, / 5
    assert M.aiq(COSTS, QUALITIES, c_min=0, c_max=5) == pytest.approx(0.49)
    # range [1.5, 2.5]: (.4+.6)/2 * .5 + (.6+.65)/2 * .5 = .5625, / 1
    assert M.aiq(COSTS, QUALITIES, c_min=1.5, c_max=2.5) == pytest.approx(0.5625)
    assert M.aiq([2.0], [0.5]) == 0.5
    with pytest.raises(ValueError):
        M.aiq(COSTS, QUALITIES, c_min=3, c_max=2)


def test_apgr():
    q_weak, q_strong = 0.4, 0.8
    share = np.linspace(0, 1, 11)
    random_mix = q_weak + share * (q_strong - q_weak)  # linear interpolation: PGR(s) = s
    assert M.apgr(share, random_mix, q_weak, q_strong) == pytest.approx(0.5)
    # PGR 0 at s=0, 1 from s=.5 on: area .25 + .5 = .75; input order does not matter
    assert M.apgr([1.0, 0.0, 0.5], [0.8, 0.4, 0.8], q_weak, q_strong) == pytest.approx(0.75)
    # two settings at s=.5 (PGR .5 and 1) count as one point of PGR .75: .1875 + .4375
    assert M.apgr([0, 0.5, 0.5, 1], [0.4, 0.6, 0.8, 0.8], q_weak, q_strong) == pytest.approx(0.625)
    assert M.apgr([0.3, 0.3], [0.6, 0.8], q_weak, q_strong) == pytest.approx(0.75)
    np.testing.assert_allclose(M.pgr([0.4, 0.6, 0.8], q_weak, q_strong), [0, 0.5, 1])


def test_cpt():
    q_weak, q_strong = 0.4, 0.8
    share = [0.0, 0.2, 0.4, 1.0]
    quality = [0.4, 0.52, 0.68, 0.8]  # PGR 0, .3, .7, 1
    # PGR = .5 between s=.2 (.3) and s=.4 (.7): .2 + (.5-.3)/(.7-.3) * .2 = .3
    assert M.cpt(share, quality, q_weak, q_strong) == pytest.approx(0.3)
    assert M.cpt(share, quality, q_weak, q_strong, target=0.8) == pytest.approx(0.4 + 0.1 / 0.3 * 0.6)
    assert M.cpt(share, quality, q_weak, q_strong, target=0.0) == 0.0
    assert math.isnan(M.cpt([0, 1], [0.4, 0.5], q_weak, q_strong))  # PGR tops out at .25
    # first crossing of a non-monotone curve: PGR .6 at s=.5, .4 at s=.6
    assert M.cpt([0, 0.5, 0.6, 1], [0.4, 0.64, 0.56, 0.8], q_weak, q_strong) == pytest.approx(0.5 * 0.5 / 0.6)


def test_time_horizon_recovers_true_logistic():
    rng = np.random.default_rng(0)
    true_horizon, slope = 8.0, -1.2  # P(pass) = σ(slope · (log2 τ − log2 8))
    tau = 2.0 ** rng.uniform(-2, 8, size=20_000)
    p = 1 / (1 + np.exp(-slope * (np.log2(tau) - np.log2(true_horizon))))
    fit = M.time_horizon(tau, rng.random(tau.size) < p)
    assert fit.status == "ok" and not fit.extrapolated
    assert fit.horizon == pytest.approx(true_horizon, rel=0.1)
    assert fit.slope == pytest.approx(slope, rel=0.1)
    # the 80% horizon: log2 τ = log2 8 + logit(.8) / slope
    fit80 = M.time_horizon(tau, rng.random(tau.size) < p, quantile=0.8)
    assert fit80.horizon == pytest.approx(8 * 2 ** (math.log(4) / slope), rel=0.15)


def test_time_horizon_degenerate_cases():
    tau = [1, 2, 4, 8]
    assert M.time_horizon(tau, [1, 1, 1, 1]).status == "all_pass"
    assert M.time_horizon(tau, [1, 1, 1, 1]).horizon == math.inf
    all_fail = M.time_horizon(tau, [0, 0, 0, 0])
    assert all_fail.status == "all_fail" and math.isnan(all_fail.horizon)
    assert M.time_horizon([], []).status == "no_data"
    rising = M.time_horizon([1, 2, 4, 8, 16, 32], [0, 0, 1, 0, 1, 1])  # success grows with τ
    assert rising.status == "nonnegative_slope" and math.isnan(rising.horizon) and rising.slope > 0


def test_time_horizons_per_agent():
    rng = np.random.default_rng(1)
    rows = []
    for agent, horizon in [("small", 2.0), ("large", 16.0)]:
        tau = 2.0 ** rng.uniform(-2, 8, size=5000)
        p = 1 / (1 + np.exp(np.log2(tau) - np.log2(horizon)))
        rows.append(pd.DataFrame({"agent": agent, "tau": tau, "passed": (rng.random(tau.size) < p).astype(int)}))
    table = M.time_horizons(pd.concat(rows), "agent", "tau", "passed")
    assert table.loc["small", "horizon"] == pytest.approx(2.0, rel=0.15)
    assert table.loc["large", "horizon"] == pytest.approx(16.0, rel=0.15)
    assert (table["status"] == "ok").all()


def test_mean_std():
    assert M.mean_std([1, 2, 3]) == (2.0, 1.0)
    mean, std = M.mean_std([5.0])
    assert mean == 5.0 and math.isnan(std)


def test_bootstrap_ci():
    rng = np.random.default_rng(0)
    small, large = rng.random(100), rng.random(400)
    point, lo, hi = M.bootstrap_ci(small)
    assert point == pytest.approx(small.mean())
    assert lo < point < hi
    # percentile CI of a mean ≈ ± 1.96 sd / sqrt(n)
    assert hi - lo == pytest.approx(2 * 1.96 * small.std() / 10, rel=0.2)
    _, lo4, hi4 = M.bootstrap_ci(large)
    assert 0.35 < (hi4 - lo4) / (hi - lo) < 0.65  # 4x the tasks: about half the width
    assert M.bootstrap_ci(small, seed=3) == M.bootstrap_ci(small, seed=3)
    _, lo90, hi90 = M.bootstrap_ci(small, alpha=0.1)
    assert lo < lo90 < hi90 < hi
    point, lo, hi = M.bootstrap_ci([1, 1, 0, 1], stat=np.median, n_boot=200)
    assert point == 1.0 and lo <= hi <= 1.0


def test_paired_bootstrap_ci():
    rng = np.random.default_rng(0)
    b = rng.random(200)
    diff, lo, hi = M.paired_bootstrap_ci(b + 0.1, b)
    # per-task differences are all exactly .1, so pairing leaves no variance
    assert diff == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    noisy = b + 0.05 + 0.01 * rng.standard_normal(200)
    diff, lo, hi = M.paired_bootstrap_ci(noisy, b)
    assert lo < diff < hi and lo > 0.04 and hi < 0.06
    with pytest.raises(ValueError):
        M.paired_bootstrap_ci([1, 2], [1, 2, 3])
