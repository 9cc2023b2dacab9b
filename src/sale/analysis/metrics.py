"""Metrics of docs/method.md §6, as pure functions on numpy arrays and pandas objects.

Nothing here knows the log schema: callers pass arrays, or a DataFrame plus the names of its
columns. Quantities are fractions (pass@1 = 0.638, not 63.8) unless a docstring says otherwise.

Cost-quality curves
- AIQ after RouterBench (Hu et al. 2024, arXiv 2403.12031): `nondecreasing_convex_hull`, `aiq`.
- PGR, APGR and CPT(x%) after RouteLLM (Ong et al. 2024, arXiv 2406.18665): `pgr`, `apgr`, `cpt`.
Time horizon
- 50% time horizon after METR (Kwa et al. 2025, arXiv 2503.14499): `time_horizon`, `time_horizons`.
Uncertainty
- `mean_std` over task orders, `bootstrap_ci` and `paired_bootstrap_ci` over tasks.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------- quality


def pass_at_1(passed) -> float:
    """pass@1 = the fraction of tasks whose single executed attempt passed. NaN if empty."""
    passed = np.asarray(passed, dtype=float)
    return float(passed.mean()) if passed.size else float("nan")


def per_bin(df: pd.DataFrame, value_col: str, bin_col: str) -> pd.Series:
    """Mean of `value_col` per value of `bin_col` (e.g. pass@1 per complexity bin), bins sorted."""
    return df.groupby(bin_col, sort=True)[value_col].mean()


# ----------------------------------------------------------------------------- cost


def cost_per_task(task_costs) -> float:
    """$ per task = total $ over all phases / number of tasks (`task_costs[t]` = $ spent on t)."""
    task_costs = np.asarray(task_costs, dtype=float)
    return float(task_costs.sum() / task_costs.size)


def blended_price_per_mtok(dollars, tokens) -> float:
    """Blended price in $/Mtok = total $ / total tokens × 1e6 (the paper's cost unit).

    `dollars` and `tokens` are scalars or matching arrays (e.g. per task or per call)."""
    return float(np.sum(dollars) / np.sum(tokens) * 1e6)


def relative_cost(cost, reference_cost) -> float:
    """Cost as a fraction of a reference (largest-only): 0.65 means 35% cheaper."""
    return float(np.sum(cost) / np.sum(reference_cost))


def cost_reduction(cost, reference_cost) -> float:
    """1 − cost / reference cost: the fraction of the reference's cost saved."""
    return 1.0 - relative_cost(cost, reference_cost)


# ----------------------------------------------------------------------------- reliance, overhead


def largest_agent_share(executed_by, largest) -> float:
    """Share of tasks whose trace the largest agent executed (largest-only scores 1.0).

    `executed_by[t]` is the agent (name or index) that executed task t; `largest` is that of
    the largest agent."""
    executed_by = np.asarray(executed_by)
    return float(np.mean(executed_by == largest))


def reliance_reduction(share, reference_share: float = 1.0) -> float:
    """Reduction in reliance on the largest agent relative to a reference:
    1 − share / reference_share. Against largest-only (share 1.0) this is 1 − share."""
    return 1.0 - share / reference_share


def overhead_share(auction_amount, total_amount) -> float:
    """Auction overhead = Σ auction tokens (or $) / Σ all tokens (or $), every phase included."""
    return float(np.sum(auction_amount) / np.sum(total_amount))


def length_stats(df: pd.DataFrame, value_col: str, by) -> pd.DataFrame:
    """Trajectory length statistics (count, mean, std, median, min, max) of `value_col`
    grouped by `by` (e.g. ["agent", "bin"])."""
    stats = ["count", "mean", "std", "median", "min", "max"]
    return df.groupby(by, sort=True)[value_col].agg(stats)


# ----------------------------------------------------------------------------- AIQ (RouterBench)


def _trapezoid(y, x) -> float:
    """Exact area under the piecewise-linear curve through (x, y) (np.trapezoid needs numpy 2)."""
    y, x = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)))


def nondecreasing_convex_hull(costs, qualities) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the non-decreasing convex hull of a router's (cost, quality) points.

    A router swept over its parameter gives points; mixing two settings at random reaches
    any point on the segment between them, and extra budget can always go unspent. So the
    quality reachable at budget c is hull(c) = max{q : (c', q) in conv(points), c' ≤ c}:
    the upper concave envelope from the cheapest point up to the best point, flat after it.
    Returns the vertices (sorted by cost, quality strictly increasing); between vertices
    the hull is linear, after the last it stays at the last quality.
    """
    costs = np.asarray(costs, dtype=float)
    qualities = np.asarray(qualities, dtype=float)
    order = np.lexsort((-qualities, costs))  # by cost, best quality first at equal cost
    hull: list[tuple[float, float]] = []
    for c, q in zip(costs[order], qualities[order]):
        if hull and q <= hull[-1][1]:
            continue  # dominated: no better than something at least as cheap
        # pop vertices that lie on or below the chord from their predecessor to (c, q)
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append((c, q))
    hull_costs, hull_qualities = np.array(hull).T
    return hull_costs, hull_qualities


def hull_quality(c, hull_costs, hull_qualities):
    """hull(c): 0 below the cheapest vertex (the router cannot run that cheaply), linear
    between vertices, the last vertex's quality beyond it."""
    c = np.asarray(c, dtype=float)
    q = np.interp(c, hull_costs, hull_qualities)
    return np.where(c < hull_costs[0], 0.0, q)


def aiq(costs, qualities, c_min: float | None = None, c_max: float | None = None) -> float:
    """Average Improvement in Quality (RouterBench, Hu et al. 2024, eq. for AIQ):

        AIQ = 1 / (c_max − c_min) · ∫_{c_min}^{c_max} hull(c) dc,

    hull = `nondecreasing_convex_hull` of the router's swept (cost, quality) points.

    Variants, by argument:
    - c_min, c_max left as None: the router's own cost range (its cheapest and its most
      expensive point). This is the paper's formula applied to one router alone.
    - c_min, c_max given: a common range for comparing several routers (RouterBench's code
      uses c_min = 0, c_max = the largest cost over all routers compared). Outside the
      router's own range hull(c) is 0 below its cheapest point and flat above its best point.
    If c_max == c_min, AIQ is hull(c_min) (the limit of the average).
    """
    hull_costs, hull_qualities = nondecreasing_convex_hull(costs, qualities)
    c_min = float(np.min(costs)) if c_min is None else float(c_min)
    c_max = float(np.max(costs)) if c_max is None else float(c_max)
    if c_max < c_min:
        raise ValueError(f"c_max {c_max} < c_min {c_min}")
    if c_max == c_min:
        return float(hull_quality(c_min, hull_costs, hull_qualities))
    # hull is 0 left of its first vertex and piecewise linear from there: integrate exactly
    lo = max(c_min, hull_costs[0])
    if c_max <= lo:
        return 0.0
    inner = hull_costs[(hull_costs > lo) & (hull_costs < c_max)]
    grid = np.concatenate([[lo], inner, [c_max]])
    area = _trapezoid(np.interp(grid, hull_costs, hull_qualities), grid)
    return float(area / (c_max - c_min))


# ----------------------------------------------------------------------------- PGR, APGR, CPT (RouteLLM)


def pgr(quality, q_weak: float, q_strong: float):
    """Performance Gap Recovered (RouteLLM): (q − q_weak) / (q_strong − q_weak)."""
    return (np.asarray(quality, dtype=float) - q_weak) / (q_strong - q_weak)


def _curve(strong_share, quality, q_weak, q_strong):
    strong_share = np.asarray(strong_share, dtype=float)
    order = np.argsort(strong_share, kind="stable")
    return strong_share[order], pgr(np.asarray(quality, dtype=float)[order], q_weak, q_strong)


def apgr(strong_share, quality, q_weak: float, q_strong: float) -> float:
    """Average PGR (RouteLLM): the area under the PGR vs strong-call-share curve, divided by
    the share range covered:

        APGR = 1 / (s_max − s_min) · ∫_{s_min}^{s_max} PGR(s) ds,

    PGR linear between the router's sweep points (trapezoid rule), s = fraction of calls
    that go to the strong (largest) model, in [0, 1]. This is RouteLLM's evaluate.py:
    (AUC_router − AUC_weak) / (AUC_strong − AUC_weak) over the sampled shares. When the sweep
    includes s = 0 and s = 1 (RouteLLM's thresholds do) this is ∫_0^1 PGR(s) ds, and a router
    that mixes weak and strong at random scores 0.5. Settings that land on the same share
    are averaged into one point; if there is only one share, APGR is its PGR.
    """
    s, g = _curve(strong_share, quality, q_weak, q_strong)
    s, first = np.unique(s, return_index=True)
    g = np.add.reduceat(g, first) / np.diff(np.append(first, len(g)))
    if len(s) == 1:
        return float(g[0])
    return float(_trapezoid(g, s) / (s[-1] - s[0]))


def cpt(strong_share, quality, q_weak: float, q_strong: float, target: float = 0.5) -> float:
    """Call-Performance Threshold CPT(x) (RouteLLM): the minimum share of calls to the strong
    model at which the router reaches PGR ≥ target (target 0.5 = CPT(50%)).

    The curve is linear between sweep points sorted by share; we return the first crossing
    of PGR = target, interpolated on the segment where it happens. NaN if never reached.
    (RouteLLM's code uses np.interp(target, pgr, share), which equals this when PGR rises
    monotonically with share.) Returned as a fraction; × 100 for the paper's percent.
    """
    s, g = _curve(strong_share, quality, q_weak, q_strong)
    above = np.flatnonzero(g >= target)
    if above.size == 0:
        return float("nan")
    i = above[0]
    if i == 0:
        return float(s[0])
    return float(s[i - 1] + (target - g[i - 1]) / (g[i] - g[i - 1]) * (s[i] - s[i - 1]))


# ----------------------------------------------------------------------------- time horizon (METR)


@dataclass
class TimeHorizon:
    """Fit of P(pass) = σ(intercept + slope · log2 τ) and the τ where it equals `quantile`.

    status: "ok"; "all_pass" (horizon = inf); "all_fail" (horizon = nan, below every task);
    "nonnegative_slope" (success does not fall with τ, horizon = nan); "no_data" (nan).
    extrapolated: the horizon lies outside the observed range of τ."""

    horizon: float
    intercept: float
    slope: float
    status: str
    extrapolated: bool
    n: int


def time_horizon(tau, passed, quantile: float = 0.5, C: float = 1e6, sample_weight=None) -> TimeHorizon:
    """Time horizon after METR (Kwa et al. 2025): logistic regression of pass (0/1) on
    log2(τ), τ = human time in minutes; the 50% horizon is the τ where predicted success is
    0.5, i.e. log2 τ* = (logit(quantile) − intercept) / slope, τ* = 2 ** that.

    We fit sklearn's LogisticRegression with C = 1e6 (essentially unregularised, unit task
    weights). METR fit the same model with C = 1 / regularisation on task weights that sum
    to 1 (eval-analysis-public, horizon/utils/logistic.py); pass `C` and `sample_weight` to
    reproduce that instead.
    """
    log_tau = np.log2(np.asarray(tau, dtype=float))
    passed = np.asarray(passed, dtype=float)
    n = int(passed.size)
    if n == 0:
        return TimeHorizon(float("nan"), float("nan"), float("nan"), "no_data", False, n)
    if np.all(passed == 1):
        return TimeHorizon(float("inf"), float("nan"), float("nan"), "all_pass", False, n)
    if np.all(passed == 0):
        return TimeHorizon(float("nan"), float("nan"), float("nan"), "all_fail", False, n)
    from sklearn.linear_model import LogisticRegression  # imported here: it takes seconds, most callers never fit

    model = LogisticRegression(C=C, max_iter=10_000)
    model.fit(log_tau[:, None], passed.astype(int), sample_weight=sample_weight)
    intercept, slope = float(model.intercept_[0]), float(model.coef_[0, 0])
    if slope >= 0:
        return TimeHorizon(float("nan"), intercept, slope, "nonnegative_slope", False, n)
    log_h = (np.log(quantile / (1 - quantile)) - intercept) / slope
    extrapolated = not (log_tau.min() <= log_h <= log_tau.max())
    return TimeHorizon(float(2.0**log_h), intercept, slope, "ok", extrapolated, n)


def time_horizons(df: pd.DataFrame, agent_col: str, tau_col: str, pass_col: str, **kwargs) -> pd.DataFrame:
    """`time_horizon` per agent: one row per agent with horizon, intercept, slope, status..."""
    rows = {agent: vars(time_horizon(g[tau_col], g[pass_col], **kwargs)) for agent, g in df.groupby(agent_col)}
    return pd.DataFrame.from_dict(rows, orient="index")


# ----------------------------------------------------------------------------- uncertainty


def mean_std(values, ddof: int = 1) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) of a metric over runs, e.g. task orders."""
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=ddof)) if values.size > ddof else float("nan")
    return float(values.mean()), std


def _bootstrap_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_ci(values, stat=np.mean, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap over tasks: resample the n per-task values with replacement
    n_boot times, take `stat` of each resample, and return
    (stat(values), the alpha/2 quantile, the 1 − alpha/2 quantile)."""
    values = np.asarray(values, dtype=float)
    idx = _bootstrap_indices(len(values), n_boot, seed)
    boots = np.array([stat(values[i]) for i in idx])
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(stat(values)), float(lo), float(hi)


def paired_bootstrap_ci(a, b, stat=np.mean, n_boot: int = 2000, seed: int = 0, alpha: float = 0.05):
    """Paired percentile bootstrap of stat(a) − stat(b), where a[t] and b[t] are two methods'
    values on the same task t: each resample draws the same tasks for both methods.
    Returns (difference, lower, upper)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired bootstrap needs both methods on the same tasks")
    idx = _bootstrap_indices(len(a), n_boot, seed)
    boots = np.array([stat(a[i]) - stat(b[i]) for i in idx])
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(stat(a) - stat(b)), float(lo), float(hi)
