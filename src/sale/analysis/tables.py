"""The tables behind notebooks 02-05, built from run logs (the frames of `sale.harness.runlog.load_logs`).

Quantities are fractions (pass@1 0.638, not 63.8); `fmt_*` helpers turn them into the paper's percent strings.
A run may be unfinished: every table works on whatever tasks it holds, and a comparison against a reference
(the largest agent alone, the `full` ablation) is paired on the tasks both hold. Runs with several task orders
(SALE, random routing) give each order's rows; per-task values are first averaged over the orders.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sale.analysis.metrics import (
    aiq,
    apgr,
    blended_price_per_mtok,
    bootstrap_ci,
    cpt,
    largest_agent_share,
    mean_std,
    overhead_share,
    paired_bootstrap_ci,
    pgr,
    relative_cost,
    reliance_reduction,
)
from sale.analysis.reading import SWEPT


def per_task(results: pd.DataFrame, cols=("passed", "cost_usd")) -> pd.DataFrame:
    """One row per task_id: `cols` averaged over the task's orders (and domain, bin kept)."""
    df = results.assign(passed=results["passed"].astype(float))
    return df.groupby("task_id").agg(domain=("domain", "first"), bin=("bin", "first"), **{c: (c, "mean") for c in cols})


def _std_over_orders(results: pd.DataFrame, stat) -> float:
    """The std over task orders of `stat(one order's rows)` (NaN with one order)."""
    return mean_std([stat(g) for _, g in results.groupby("order")])[1]


def _order_std(results: pd.DataFrame, col: str) -> float:
    return _std_over_orders(results, lambda g: g[col].astype(float).mean())


def arm_metrics(results: pd.DataFrame, largest: str, by=()) -> pd.DataFrame:
    """One row per (method, arm, *by): tasks, orders, pass@1 and its std over orders, $/task (and std over
    orders), blended $/Mtok, the largest agent's share of executions, the share of auctions won by a refined bid
    (SALE; NaN for others) and the auction's share of tokens."""
    keys = ["method", "arm", *by]
    results = results.assign(passed=results["passed"].astype(float))
    rows = []
    for key, g in results.groupby(keys, sort=False):
        refined = g["winner_refined"].astype(float) if "winner_refined" in g else pd.Series(dtype=float)
        rows.append(
            {
                **dict(zip(keys, key)),
                "tasks": g["task_id"].nunique(),
                "orders": g["order"].nunique(),
                "pass@1": g["passed"].mean(),
                "pass@1 std": _order_std(g, "passed"),
                "$/task": g["cost_usd"].mean(),
                "$/task std": _order_std(g, "cost_usd"),
                "$/Mtok": blended_price_per_mtok(g["cost_usd"], g["tokens"]),
                "largest share": largest_agent_share(g["agent"], largest),
                "refined share": refined.mean(),
                "auction tok share": overhead_share(g["auction_tokens"], g["tokens"]),
            }
        )
    return pd.DataFrame(rows)


def family(method: str, arm: str) -> str | None:
    """The swept family an arm belongs to: 'knn:theta', 'mlc:lambda', 'random'; None for unswept methods."""
    if method not in SWEPT:
        return None
    return "random" if method == "random" else arm.split("=")[0]


def family_pgr(points: pd.DataFrame, q_weak: float, q_strong: float) -> pd.DataFrame:
    """APGR and CPT(50%) (RouteLLM) of each swept family, from arm_metrics rows (method, arm, largest share,
    pass@1): the PGR curve against the share of tasks sent to the largest (strong) agent, over the family's own
    share range (sale.analysis.metrics.apgr, cpt). Indexed by family."""
    fam = [family(m, a) for m, a in zip(points["method"], points["arm"])]
    out = {}
    for f, g in points.assign(family=fam).dropna(subset=["family"]).groupby("family", sort=False):
        out[f] = {
            "APGR": apgr(g["largest share"], g["pass@1"], q_weak, q_strong),
            "CPT(50%)": cpt(g["largest share"], g["pass@1"], q_weak, q_strong),
        }
    return pd.DataFrame.from_dict(out, orient="index", columns=["APGR", "CPT(50%)"], dtype=float)


def family_aiq(points: pd.DataFrame) -> pd.Series:
    """AIQ (RouterBench) of each swept family over its own cost range, from arm_metrics rows
    (method, arm, $/task, pass@1). Indexed by family."""
    fam = [family(m, a) for m, a in zip(points["method"], points["arm"])]
    out = {}
    for f, g in points.assign(family=fam).dropna(subset=["family"]).groupby("family", sort=False):
        out[f] = aiq(g["$/task"], g["pass@1"])
    return pd.Series(out, name="AIQ", dtype=float)


def cost_quality_points(results: pd.DataFrame, largest: str) -> pd.DataFrame:
    """arm_metrics per domain and overall (domain 'all'), with each arm's swept family: the cost-quality plane."""
    points = pd.concat(
        [arm_metrics(results, largest, by=["domain"]), arm_metrics(results, largest).assign(domain="all")],
        ignore_index=True,
    )
    points["family"] = [family(m, a) for m, a in zip(points["method"], points["arm"])]
    return points


def paired_vs(results: pd.DataFrame, reference: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """`results` against `reference` on the tasks both hold (per-task means over orders): the number of common
    tasks, Δpass@1 (results − reference) with its paired bootstrap 95% CI, and cost relative to the reference."""
    row = {"common tasks": 0, "Δpass@1": np.nan, "Δ lo": np.nan, "Δ hi": np.nan, "cost rel.": np.nan}
    if results.empty or reference.empty:
        return row
    a, b = per_task(results), per_task(reference)
    common = a.index.intersection(b.index)
    if common.empty:
        return row
    a, b = a.loc[common], b.loc[common]
    row["common tasks"] = len(common)
    row["Δpass@1"], row["Δ lo"], row["Δ hi"] = paired_bootstrap_ci(a["passed"], b["passed"], n_boot=n_boot, seed=seed)
    row["cost rel."] = relative_cost(a["cost_usd"], b["cost_usd"])
    return row


# ----------------------------------------------------------------------------- 02: comparison tables


def comparison_table(
    runs: dict[str, pd.DataFrame], largest: str, reference: pd.DataFrame | None = None, weak: str | None = None
) -> pd.DataFrame:
    """One row per (method, arm) over all methods' results (`runs`: method -> results frame): pass@1 overall,
    on the easiest bin (1) and the hardest (5), $/task, $/Mtok, the largest agent's share, and against the
    largest agent alone (`reference`; default: the `single` run's arm `largest`) on common tasks: Δpass@1,
    cost relative to it, whether the arm beats it on pass@1 and whether it cuts its cost. Swept families
    (kNN and MLC thresholds, random shares) get their AIQ on each of their rows.

    RouteLLM's measures, with the cheapest agent alone as the weak model (`weak`; default: the `single` arm with
    the lowest $/task) and the largest alone as the strong one: PGR of every arm (the share of the gap between
    them it recovers), and APGR and CPT(50%) of each swept family (the share of tasks sent to the largest at
    which it first recovers half the gap) on each of its rows."""
    frames = [df for df in runs.values() if df is not None and not df.empty]
    if not frames:
        return pd.DataFrame()
    results = pd.concat(frames, ignore_index=True)
    if reference is None:
        reference = results[(results["method"] == "single") & (results["arm"] == largest)]
    table = arm_metrics(results, largest)
    bins = results.assign(passed=results["passed"].astype(float)).pivot_table(
        index=["method", "arm"], columns="bin", values="passed", aggfunc="mean"
    )
    for b in (1, 5):
        table[f"bin {b}"] = [
            bins.at[(m, a), b] if b in bins.columns else np.nan for m, a in zip(table["method"], table["arm"])
        ]
    paired = [paired_vs(g, reference) for _, g in results.groupby(["method", "arm"], sort=False)]
    table = pd.concat([table, pd.DataFrame(paired)], axis=1)
    table["beats largest"] = table["Δpass@1"] > 0
    table["cuts cost"] = table["cost rel."] < 1
    aiqs = family_aiq(table)
    table["AIQ"] = [aiqs.get(family(m, a), np.nan) for m, a in zip(table["method"], table["arm"])]
    singles = table[table["method"] == "single"].set_index("arm")
    if weak is None and not singles.empty:
        weak = singles["$/task"].idxmin()
    q_weak = singles["pass@1"].get(weak, np.nan)
    q_strong = reference["passed"].astype(float).mean() if not reference.empty else np.nan
    table["PGR"] = pgr(table["pass@1"], q_weak, q_strong) if q_strong != q_weak else np.nan
    fams = family_pgr(table, q_weak, q_strong) if q_strong != q_weak else pd.DataFrame(columns=["APGR", "CPT(50%)"])
    for col in ("APGR", "CPT(50%)"):
        table[col] = [fams[col].get(family(m, a), np.nan) for m, a in zip(table["method"], table["arm"])]
    cols = [
        "method",
        "arm",
        "tasks",
        "orders",
        "pass@1",
        "pass@1 std",
        "bin 1",
        "bin 5",
        "$/task",
        "$/Mtok",
        "largest share",
        "common tasks",
        "Δpass@1",
        "Δ lo",
        "Δ hi",
        "cost rel.",
        "beats largest",
        "cuts cost",
        "AIQ",
        "PGR",
        "APGR",
        "CPT(50%)",
    ]
    return table[cols]


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """comparison_table for reading: pass@1 and shares in percent, prices to 3 significant digits."""
    out = table[["method", "arm", "tasks", "orders"]].copy()
    out["pass@1"] = [fmt_pct(p, std=s) for p, s in zip(table["pass@1"], table["pass@1 std"])]
    for c in ("bin 1", "bin 5", "largest share"):
        out[c] = table[c].map(fmt_pct)
    out["$/task"] = table["$/task"].map(lambda v: f"{v:.3g}")
    out["$/Mtok"] = table["$/Mtok"].map(lambda v: f"{v:.3g}")
    out["Δpass@1 vs largest [95% CI]"] = [
        fmt_pct(d, lo, hi, signed=True) for d, lo, hi in zip(table["Δpass@1"], table["Δ lo"], table["Δ hi"])
    ]
    out["cost rel. largest"] = table["cost rel."].map(lambda v: "–" if pd.isna(v) else f"{v:.2f}")
    out["beats largest"] = table["beats largest"].map({True: "yes", False: ""})
    out["cuts cost"] = table["cuts cost"].map({True: "yes", False: ""})
    out["AIQ"] = table["AIQ"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    if "PGR" in table:
        out["PGR"] = table["PGR"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        out["APGR"] = table["APGR"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        out["CPT(50%)"] = table["CPT(50%)"].map(lambda v: "" if pd.isna(v) else f"{100 * v:.0f}%")
    return out


def sale_vs_largest(
    sale: pd.DataFrame, largest_results: pd.DataFrame, largest: str, n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """The table of docs/method.md §2: SALE against the largest agent alone (`largest_results`: that one arm), on the
    tasks both hold, per domain and bin (bin 'all' per domain, and domain 'all'). pass@1 with percentile bootstrap 95%
    CIs over tasks (SALE: per-task means over orders, plus the std of pass@1 over orders), the paired bootstrap CI of
    the difference, blended $/Mtok, $/task, cost relative to the largest, SALE's reliance on the largest (its
    share of executions) and the reduction from the largest alone (share 1). Empty if they share no task."""
    common = set(sale["task_id"]) & set(largest_results["task_id"])
    if not common:
        return pd.DataFrame()
    sale = sale[sale["task_id"].isin(common)]
    ref = largest_results[largest_results["task_id"].isin(common)]
    scopes = []
    for domain in sorted(sale["domain"].unique()):
        scopes += [(domain, b) for b in sorted(sale.loc[sale["domain"] == domain, "bin"].unique())]
        scopes.append((domain, "all"))
    scopes.append(("all", "all"))
    rows = []
    for domain, b in scopes:
        s, r = sale, ref
        if domain != "all":
            s, r = s[s["domain"] == domain], r[r["domain"] == domain]
        if b != "all":
            s, r = s[s["bin"] == b], r[r["bin"] == b]
        s_task, r_task = per_task(s), per_task(r)
        r_task = r_task.loc[s_task.index]
        row = {"domain": domain, "bin": str(b), "tasks": len(s_task), "orders": s["order"].nunique()}
        for who, per in (("largest", r_task), ("SALE", s_task)):
            row[f"{who} pass@1"], row[f"{who} lo"], row[f"{who} hi"] = bootstrap_ci(
                per["passed"], n_boot=n_boot, seed=seed
            )
        row["SALE std"] = _order_std(s.assign(passed=s["passed"].astype(float)), "passed")
        row["Δpass@1"], row["Δ lo"], row["Δ hi"] = paired_bootstrap_ci(
            s_task["passed"], r_task["passed"], n_boot=n_boot, seed=seed
        )
        row["largest $/Mtok"] = blended_price_per_mtok(r["cost_usd"], r["tokens"])
        row["SALE $/Mtok"] = blended_price_per_mtok(s["cost_usd"], s["tokens"])
        row["largest $/task"] = r_task["cost_usd"].mean()
        row["SALE $/task"] = s_task["cost_usd"].mean()
        row["cost rel."] = relative_cost(s_task["cost_usd"], r_task["cost_usd"])
        alone_share = largest_agent_share(r["agent"], largest)
        row["SALE largest share"] = largest_agent_share(s["agent"], largest)
        row["reliance reduction"] = reliance_reduction(row["SALE largest share"], alone_share)
        row["SALE $/task std"] = _order_std(s, "cost_usd")
        row["SALE $/Mtok std"] = _std_over_orders(s, lambda g: blended_price_per_mtok(g["cost_usd"], g["tokens"]))
        row["cost rel. std"] = _std_over_orders(  # each order against the largest on that order's own tasks
            s, lambda g: relative_cost(g["cost_usd"], r_task.loc[g["task_id"], "cost_usd"])
        )
        row["SALE largest share std"] = _std_over_orders(s, lambda g: largest_agent_share(g["agent"], largest))
        row["reliance reduction std"] = _std_over_orders(
            s, lambda g: reliance_reduction(largest_agent_share(g["agent"], largest), alone_share)
        )
        rows.append(row)
    return pd.DataFrame(rows)


def fmt_pct(
    p: float, lo: float | None = None, hi: float | None = None, std: float | None = None, signed: bool = False
) -> str:
    """A fraction as the paper's percent: '67.3', '67.3 ± 1.2', '67.3 [60.0, 75.0]', '+3.5 [-1.0, 8.0]'."""
    if pd.isna(p):
        return "–"
    text = f"{100 * p:+.1f}" if signed else f"{100 * p:.1f}"
    if std is not None and not pd.isna(std):
        text += f" ± {100 * std:.1f}"
    if lo is not None and hi is not None and not pd.isna(lo):
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def format_sale_vs_largest(table: pd.DataFrame) -> pd.DataFrame:
    """sale_vs_largest in the paper's shape: percent strings with CIs, prices to 3 significant digits."""
    out = table[["domain", "bin", "tasks", "orders"]].copy()
    out["largest pass@1 [95% CI]"] = [
        fmt_pct(r["largest pass@1"], r["largest lo"], r["largest hi"]) for _, r in table.iterrows()
    ]
    out["SALE pass@1 ± std [95% CI]"] = [
        fmt_pct(r["SALE pass@1"], r["SALE lo"], r["SALE hi"], std=r["SALE std"]) for _, r in table.iterrows()
    ]
    out["Δ [95% CI]"] = [fmt_pct(r["Δpass@1"], r["Δ lo"], r["Δ hi"], signed=True) for _, r in table.iterrows()]

    def with_std(col, fmt, scale=1.0, suffix=""):
        return [
            format(scale * v, fmt) + ("" if pd.isna(sd) else f" ± {format(scale * sd, fmt)}") + suffix
            for v, sd in zip(table[col], table[f"{col} std"])
        ]

    for c in ("largest $/Mtok", "largest $/task"):
        out[c] = table[c].map(lambda v: f"{v:.3g}")
    out["SALE $/Mtok"] = with_std("SALE $/Mtok", ".3g")
    out["SALE $/task"] = with_std("SALE $/task", ".3g")
    out["cost rel."] = with_std("cost rel.", ".2f")
    out["reliance on largest"] = with_std("SALE largest share", ".0f", 100, "%")
    out["reliance reduction"] = with_std("reliance reduction", ".0f", 100, "%")
    return out


# ----------------------------------------------------------------------------- 04: memory dynamics


def stream_curve(results: pd.DataFrame, value: str, window: int | None = None) -> pd.DataFrame:
    """How `value` (a 0/1 or numeric column) evolves along each order's task stream: per order the expanding
    mean over positions (or the rolling mean over the last `window` tasks), then the mean and std over orders.
    Indexed by position; columns mean, std (NaN with one order), orders (how many orders reach the position)."""
    df = results.sort_values(["order", "position"])
    curves = {}
    for order, g in df.groupby("order"):
        v = g.set_index("position")[value].astype(float)
        curves[order] = v.expanding().mean() if window is None else v.rolling(window, min_periods=1).mean()
    wide = pd.DataFrame(curves)
    return pd.DataFrame({"mean": wide.mean(axis=1), "std": wide.std(axis=1, ddof=1), "orders": wide.count(axis=1)})


def cheap_win_curve(results: pd.DataFrame, largest: str, window: int | None = None) -> pd.DataFrame:
    """The share of auctions won (tasks executed) by an agent other than the largest, along the task stream."""
    return stream_curve(results.assign(cheap=results["agent"] != largest), "cheap", window)


def refined_win_curve(results: pd.DataFrame, window: int | None = None) -> pd.DataFrame:
    """The share of auctions won by a refined bid, along the task stream."""
    return stream_curve(results.assign(refined=results["winner_refined"].fillna(False).astype(bool)), "refined", window)


# ----------------------------------------------------------------------------- 05: ablations, overhead


def ablation_table(
    runs: dict[str, pd.DataFrame], largest: str, reference: str = "full", n_boot: int = 2000, seed: int = 0
) -> pd.DataFrame:
    """One row per ablation run (`runs`: name -> SALE results) against `reference`, both on the tasks they share:
    pass@1, $/task, the largest agent's share of executions, the share of auctions won by a refined bid and the
    auction's token share, each for the ablation and (prefixed 'full ') for the reference on those same tasks,
    plus Δpass@1 with its paired bootstrap 95% CI and cost relative to the reference. Without the reference run,
    the ablation's own tasks and NaN reference columns."""
    measures = ["pass@1", "$/task", "largest share", "refined share", "auction tok share"]
    ref = runs.get(reference)
    rows = []
    for name, results in runs.items():
        ref_same = pd.DataFrame()
        if ref is not None:
            common = set(results["task_id"]) & set(ref["task_id"])
            results, ref_same = results[results["task_id"].isin(common)], ref[ref["task_id"].isin(common)]
        row = {"ablation": name, "tasks": results["task_id"].nunique()}
        if not results.empty:
            row.update(arm_metrics(results.assign(arm=name), largest).iloc[0][measures].to_dict())
        if not ref_same.empty:
            ref_row = arm_metrics(ref_same.assign(arm=reference), largest).iloc[0]
            row.update({f"{reference} {m}": ref_row[m] for m in measures})
        row.update(paired_vs(results, ref_same, n_boot, seed))
        rows.append(row)
    cols = [
        "ablation",
        "tasks",
        *measures,
        *[f"{reference} {m}" for m in measures],
        "common tasks",
        "Δpass@1",
        "Δ lo",
        "Δ hi",
        "cost rel.",
    ]
    return pd.DataFrame(rows).reindex(columns=cols)


AUCTION_PHASES = ("bid", "jury", "refine")
MEASURES = {"tokens": "tokens", "usd": "cost_usd", "model_s": "latency_s"}


def overhead_by_order(calls: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """One row per (order, domain, bin) and one for each order overall: auction and total per measure."""
    keys = results[["arm", "order", "task_id", "domain", "bin"]].drop_duplicates()
    calls = calls.merge(keys, on=["arm", "order", "task_id"], how="inner")
    calls["auction"] = calls["phase"].isin(AUCTION_PHASES)
    rows = []
    for scope, group_cols in (("bin", ["order", "domain", "bin"]), ("domain", ["order", "domain"]), ("all", ["order"])):
        for key, g in calls.groupby(group_cols):
            key = key if isinstance(key, tuple) else (key,)
            row = dict(zip(group_cols, key), scope=scope, tasks=g["task_id"].nunique())
            for name, col in MEASURES.items():
                total = g[col].sum()
                row[f"{name}_share"] = g.loc[g["auction"], col].sum() / total if total > 0 else float("nan")
                row[f"{name}_per_task"] = total / row["tasks"]
            rows.append(row)
    return pd.DataFrame(rows)


def summarise(per_order: pd.DataFrame) -> pd.DataFrame:
    """overhead_by_order as percent strings, mean ± std over orders, per (domain, bin)."""
    per_order = per_order.assign(
        domain=per_order["domain"].fillna("all"),
        bin=per_order["bin"].map(lambda b: "all" if pd.isna(b) else str(int(b))),
    )
    share_cols = [c for c in per_order if c.endswith("_share")]
    grouped = per_order.groupby(["scope", "domain", "bin"], sort=False)
    table = grouped[share_cols].agg(["mean", "std"])
    out = pd.DataFrame(index=table.index)
    for c in share_cols:
        mean, std = 100 * table[(c, "mean")], 100 * table[(c, "std")].fillna(0)
        out[c.replace("_share", " %")] = [f"{m:.1f} ± {s:.1f}" for m, s in zip(mean, std)]
    out["tasks"] = grouped["tasks"].mean().round(1)
    out["orders"] = grouped.size()
    return out.reset_index().drop(columns="scope")
