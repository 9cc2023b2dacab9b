"""The tables behind notebooks 02-06, built from run logs (the frames of `sale.runlog.load_logs`).

Quantities are fractions (pass@1 0.638, not 63.8); `fmt_*` helpers turn them into the paper's percent strings.
A run may be unfinished: every table works on whatever tasks it holds, and a comparison against a reference
(the largest agent alone, the `full` ablation) is paired on the tasks both hold. Runs with several task orders
(SALE, random routing) give each order's rows; per-task values are first averaged over the orders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from sale import CONF_DIR, REPO_ROOT
from sale.metrics import (aiq, apgr, blended_price_per_mtok, bootstrap_ci, cpt, largest_agent_share, mean_std,
                          overhead_share, paired_bootstrap_ci, pgr, relative_cost, reliance_reduction)
from sale.runlog import DATA_DIR_PREFIX, load_logs, relative_to_data_dir

MAIN_METHODS = ("single", "oracle", "cascade", "knn", "mlc", "random", "sale")
ABLATIONS = ("full", "no_memory", "no_refinement", "no_jury", "no_self_evaluation", "no_entropy", "largest_juror",
             "outcome_label", "k1", "short_bids", "mean_objective", "spec_minmax", "overhead_fit")
SWEPT = ("knn", "mlc", "random")  # methods whose arms trace a cost-quality curve (AIQ)

# ----------------------------------------------------------------------------- runs


def pool_agents(pool: str = "cpu") -> list[str]:
    """The pool's agent names, cheapest first (the last is the largest), from conf/pool/<pool>.yaml."""
    from sale.llm import Pool

    return Pool.from_config(yaml.safe_load((CONF_DIR / "pool" / f"{pool}.yaml").read_text())).names


def run_command(name: str) -> str:
    """The command that makes run directory `name` (main-<method>-<pool>, ablation-<switch>-<pool>, scaling-...)."""
    kind, _, rest = name.partition("-")
    if kind == "scaling":
        pool, _, split = rest.partition("-")
        extra = (f" pool={pool}" if pool != "cpu" else "") + (f" tasks.split={split}" if split != "test" else "")
        return f"python -m sale.run experiment=scaling{extra}"
    what, _, pool = rest.rpartition("-")
    extra = f" pool={pool}" if pool != "cpu" else ""
    if kind == "main":
        return f"python -m sale.run experiment=main method={what}{extra}"
    if kind == "ablation":
        return f"python -m sale.run experiment=ablations ablation={what}{extra}"
    return "python -m sale.run ..."


def load_run(runs_dir: str | Path, name: str, verbose: bool = True) -> dict[str, pd.DataFrame] | None:
    """The logs of runs_dir/name, or None (saying so, with the command that makes it) when it has no results."""
    run_dir = Path(runs_dir) / name
    logs = load_logs(run_dir)
    results = logs["results"]
    if results.empty:
        if verbose:
            print(f"{name}: not run yet ({run_command(name)})")
        return None
    if verbose:
        parquet = run_dir / "results.parquet"
        from_journal = not parquet.exists() or len(pd.read_parquet(parquet, columns=["task_id"])) < len(results)
        print(f"{name}: {len(results)} results, {results['task_id'].nunique()} tasks, "
              f"{results['arm'].nunique()} arm(s), orders {sorted(results['order'].unique().tolist())}"
              + (" (read from journal.jsonl: unfinished or interrupted)" if from_journal else ""))
    return logs


def run_input_path(run_cfg: dict, path: str, runs_dir: str | Path) -> Path:
    """An input a run's config.yaml names (its weights file, the routers' train run), found where it is now.

    A run records its inputs under the data_dir it ran with; a run staged under data/next and moved into data/runs
    (scripts/rerun_search_agent.sh) finds them under the data dir that now holds it, runs_dir's parent, as
    sale.run does when it resumes."""
    relative = relative_to_data_dir(path, str(run_cfg.get("data_dir", "data")))
    if relative.startswith(DATA_DIR_PREFIX):
        return Path(runs_dir).parent / relative[len(DATA_DIR_PREFIX):]
    return Path(path) if Path(path).is_absolute() else REPO_ROOT / path


def write_table(table: pd.DataFrame, stem: str | Path, title: str = "", shown: pd.DataFrame | None = None) -> None:
    """`table` to stem.csv (full precision) and stem.md (`shown`, a formatted copy, or `table` to 3 significant
    digits) under an optional title paragraph."""
    stem = Path(stem)
    table.to_csv(stem.with_suffix(".csv"), index=False)
    text = (shown if shown is not None else table).to_markdown(index=False, floatfmt=".3g")
    stem.with_suffix(".md").write_text((f"{title}\n\n" if title else "") + text + "\n")


# ----------------------------------------------------------------------------- per-arm metrics


def per_task(results: pd.DataFrame, cols=("passed", "cost_usd")) -> pd.DataFrame:
    """One row per task_id: `cols` averaged over the task's orders (and domain, bin kept)."""
    df = results.assign(passed=results["passed"].astype(float))
    return df.groupby("task_id").agg(domain=("domain", "first"), bin=("bin", "first"),
                                     **{c: (c, "mean") for c in cols})


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
        rows.append({**dict(zip(keys, key)), "tasks": g["task_id"].nunique(), "orders": g["order"].nunique(),
                     "pass@1": g["passed"].mean(), "pass@1 std": _order_std(g, "passed"),
                     "$/task": g["cost_usd"].mean(), "$/task std": _order_std(g, "cost_usd"),
                     "$/Mtok": blended_price_per_mtok(g["cost_usd"], g["tokens"]),
                     "largest share": largest_agent_share(g["agent"], largest),
                     "refined share": refined.mean(),
                     "auction tok share": overhead_share(g["auction_tokens"], g["tokens"])})
    return pd.DataFrame(rows)


def family(method: str, arm: str) -> str | None:
    """The swept family an arm belongs to: 'knn:theta', 'mlc:lambda', 'random'; None for unswept methods."""
    if method not in SWEPT:
        return None
    return "random" if method == "random" else arm.split("=")[0]


def family_pgr(points: pd.DataFrame, q_weak: float, q_strong: float) -> pd.DataFrame:
    """APGR and CPT(50%) (RouteLLM) of each swept family, from arm_metrics rows (method, arm, largest share,
    pass@1): the PGR curve against the share of tasks sent to the largest (strong) agent, over the family's own
    share range (sale.metrics.apgr, cpt). Indexed by family."""
    fam = [family(m, a) for m, a in zip(points["method"], points["arm"])]
    out = {}
    for f, g in points.assign(family=fam).dropna(subset=["family"]).groupby("family", sort=False):
        out[f] = {"APGR": apgr(g["largest share"], g["pass@1"], q_weak, q_strong),
                  "CPT(50%)": cpt(g["largest share"], g["pass@1"], q_weak, q_strong)}
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
    points = pd.concat([arm_metrics(results, largest, by=["domain"]),
                        arm_metrics(results, largest).assign(domain="all")], ignore_index=True)
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
    row["Δpass@1"], row["Δ lo"], row["Δ hi"] = paired_bootstrap_ci(a["passed"], b["passed"], n_boot=n_boot,
                                                                  seed=seed)
    row["cost rel."] = relative_cost(a["cost_usd"], b["cost_usd"])
    return row


# ----------------------------------------------------------------------------- 02: comparison tables


def comparison_table(runs: dict[str, pd.DataFrame], largest: str,
                     reference: pd.DataFrame | None = None, weak: str | None = None) -> pd.DataFrame:
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
        index=["method", "arm"], columns="bin", values="passed", aggfunc="mean")
    for b in (1, 5):
        table[f"bin {b}"] = [bins.at[(m, a), b] if b in bins.columns else np.nan
                             for m, a in zip(table["method"], table["arm"])]
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
    cols = ["method", "arm", "tasks", "orders", "pass@1", "pass@1 std", "bin 1", "bin 5", "$/task", "$/Mtok",
            "largest share", "common tasks", "Δpass@1", "Δ lo", "Δ hi", "cost rel.", "beats largest", "cuts cost",
            "AIQ", "PGR", "APGR", "CPT(50%)"]
    return table[cols]


def format_comparison(table: pd.DataFrame) -> pd.DataFrame:
    """comparison_table for reading: pass@1 and shares in percent, prices to 3 significant digits."""
    out = table[["method", "arm", "tasks", "orders"]].copy()
    out["pass@1"] = [fmt_pct(p, std=s) for p, s in zip(table["pass@1"], table["pass@1 std"])]
    for c in ("bin 1", "bin 5", "largest share"):
        out[c] = table[c].map(fmt_pct)
    out["$/task"] = table["$/task"].map(lambda v: f"{v:.3g}")
    out["$/Mtok"] = table["$/Mtok"].map(lambda v: f"{v:.3g}")
    out["Δpass@1 vs largest [95% CI]"] = [fmt_pct(d, lo, hi, signed=True)
                                         for d, lo, hi in zip(table["Δpass@1"], table["Δ lo"], table["Δ hi"])]
    out["cost rel. largest"] = table["cost rel."].map(lambda v: "–" if pd.isna(v) else f"{v:.2f}")
    out["beats largest"] = table["beats largest"].map({True: "yes", False: ""})
    out["cuts cost"] = table["cuts cost"].map({True: "yes", False: ""})
    out["AIQ"] = table["AIQ"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    if "PGR" in table:
        out["PGR"] = table["PGR"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        out["APGR"] = table["APGR"].map(lambda v: "" if pd.isna(v) else f"{v:.2f}")
        out["CPT(50%)"] = table["CPT(50%)"].map(lambda v: "" if pd.isna(v) else f"{100 * v:.0f}%")
    return out


def sale_vs_largest(sale: pd.DataFrame, largest_results: pd.DataFrame, largest: str,
                    n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """SPEC §2's table: SALE against the largest agent alone (`largest_results`: that one arm), on the tasks both
    hold, per domain and bin (bin 'all' per domain, and domain 'all'). pass@1 with percentile bootstrap 95% CIs
    over tasks (SALE: per-task means over orders, plus the std of pass@1 over orders), the paired bootstrap CI of
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
            row[f"{who} pass@1"], row[f"{who} lo"], row[f"{who} hi"] = bootstrap_ci(per["passed"], n_boot=n_boot,
                                                                                    seed=seed)
        row["SALE std"] = _order_std(s.assign(passed=s["passed"].astype(float)), "passed")
        row["Δpass@1"], row["Δ lo"], row["Δ hi"] = paired_bootstrap_ci(s_task["passed"], r_task["passed"],
                                                                      n_boot=n_boot, seed=seed)
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
            s, lambda g: relative_cost(g["cost_usd"], r_task.loc[g["task_id"], "cost_usd"]))
        row["SALE largest share std"] = _std_over_orders(s, lambda g: largest_agent_share(g["agent"], largest))
        row["reliance reduction std"] = _std_over_orders(
            s, lambda g: reliance_reduction(largest_agent_share(g["agent"], largest), alone_share))
        rows.append(row)
    return pd.DataFrame(rows)


def fmt_pct(p: float, lo: float | None = None, hi: float | None = None, std: float | None = None,
            signed: bool = False) -> str:
    """A fraction as the paper's percent: '67.3', '67.3 ± 1.2', '67.3 [60.0, 75.0]', '+3.5 [-1.0, 8.0]'."""
    if pd.isna(p):
        return "–"
    text = f"{100 * p:+.1f}" if signed else f"{100 * p:.1f}"
    if std is not None and not pd.isna(std):
        text += f" ± {100 * std:.1f}"
    if lo is not None and not pd.isna(lo):
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    return text


def format_sale_vs_largest(table: pd.DataFrame) -> pd.DataFrame:
    """sale_vs_largest in the paper's shape: percent strings with CIs, prices to 3 significant digits."""
    out = table[["domain", "bin", "tasks", "orders"]].copy()
    out["largest pass@1 [95% CI]"] = [fmt_pct(r["largest pass@1"], r["largest lo"], r["largest hi"])
                                      for _, r in table.iterrows()]
    out["SALE pass@1 ± std [95% CI]"] = [fmt_pct(r["SALE pass@1"], r["SALE lo"], r["SALE hi"], std=r["SALE std"])
                                        for _, r in table.iterrows()]
    out["Δ [95% CI]"] = [fmt_pct(r["Δpass@1"], r["Δ lo"], r["Δ hi"], signed=True) for _, r in table.iterrows()]
    def with_std(col, fmt, scale=1.0, suffix=""):
        return [format(scale * v, fmt) + ("" if pd.isna(sd) else f" ± {format(scale * sd, fmt)}") + suffix
                for v, sd in zip(table[col], table[f"{col} std"])]

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


def ablation_table(runs: dict[str, pd.DataFrame], largest: str, reference: str = "full",
                   n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
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
    cols = ["ablation", "tasks", *measures, *[f"{reference} {m}" for m in measures],
            "common tasks", "Δpass@1", "Δ lo", "Δ hi", "cost rel."]
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
    per_order = per_order.assign(domain=per_order["domain"].fillna("all"),
                                 bin=per_order["bin"].map(lambda b: "all" if pd.isna(b) else str(int(b))))
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


# ----------------------------------------------------------------------------- 06: when does an auction pay


def pool_prices(pool: str = "cpu") -> dict[str, float]:
    """Each agent's price in $/Mtok, from conf/pool/<pool>.yaml."""
    from sale.llm import Pool

    p = Pool.from_config(yaml.safe_load((CONF_DIR / "pool" / f"{pool}.yaml").read_text()))
    return {name: p.spec(name).price for name in p.names}


def outcome_matrix(single: pd.DataFrame, agents: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """[task × agent] frames of each agent's outcome alone (0/1) and its execution $, from a single-agent run
    (first order); only the tasks every agent ran."""
    df = single[single["agent"].isin(agents) & (single["order"] == single["order"].min())]
    passed = df.pivot_table(index="task_id", columns="agent", values="passed", aggfunc="first").astype(float)
    cost = df.pivot_table(index="task_id", columns="agent", values="exec_cost_usd", aggfunc="first")
    keep = passed.notna().all(axis=1) & cost.notna().all(axis=1)
    return passed.loc[keep, agents], cost.loc[keep, agents]


def initial_bids(bids: pd.DataFrame) -> pd.DataFrame:
    """The original (unrefined) bids of each task's auction in its first logged order: they do not depend on the
    memory, so every order has the same ones."""
    b = bids[~bids["refined"].astype(bool)]
    first = b.groupby("task_id")["order"].transform("min")
    return b[b["order"] == first].drop_duplicates(["task_id", "agent"])


def _auroc(scores, labels) -> float:
    """AUROC by the Mann-Whitney rank sum (ties count one half); NaN with one class only."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def jury_auroc(bids: pd.DataFrame, passed: pd.DataFrame, agents: list[str], domains: pd.Series,
               n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """How well each juror's ratings (gamma_<juror> of the initial bids) tell whether the bidder solves the task
    alone, as AUROC per domain (and 'all'), beside the bidder's size alone (its rank in the pool) as the score.
    95% CIs by a bootstrap over tasks. A juror that rated no bid (not consulted) is left out. `domains`: task_id ->
    domain."""
    b = initial_bids(bids)
    b = b[b["task_id"].isin(passed.index)].copy()
    b["solves"] = [passed.at[t, a] for t, a in zip(b["task_id"], b["agent"])]
    b["size"] = b["agent"].map({a: i for i, a in enumerate(agents)})
    b["domain"] = b["task_id"].map(domains)
    raters = [(f"juror {j}", f"gamma_{j}") for j in agents if f"gamma_{j}" in b and b[f"gamma_{j}"].notna().any()]
    raters.append(("bidder size alone", "size"))
    rng = np.random.default_rng(seed)
    rows = []
    for domain in [*sorted(b["domain"].dropna().unique()), "all"]:
        d = (b if domain == "all" else b[b["domain"] == domain]).reset_index(drop=True)
        rows_of = list(d.groupby("task_id").indices.values())  # each task's bid rows
        draws = [np.concatenate([rows_of[i] for i in rng.integers(0, len(rows_of), len(rows_of))])
                 for _ in range(n_boot)]
        for name, col in raters:
            score, label = d[col].to_numpy(dtype=float), d["solves"].to_numpy(dtype=bool)
            ok = ~np.isnan(score)
            boots = np.array([_auroc(score[i][ok[i]], label[i][ok[i]]) for i in draws])
            lo, hi = np.nanquantile(boots, [0.025, 0.975]) if np.isfinite(boots).any() else (np.nan, np.nan)
            rows.append({"domain": domain, "rater": name, "AUROC": _auroc(score[ok], label[ok]), "lo": lo, "hi": hi,
                         "bids": int(ok.sum()), "solved": int(label[ok].sum())})
    return pd.DataFrame(rows)


def self_preference(bids: pd.DataFrame, agents: list[str]) -> pd.Series:
    """Per juror, the share of auctions (initial bids) in which it rates its own plan strictly above every other."""
    b = initial_bids(bids)
    out = {}
    for j in agents:
        col = f"gamma_{j}"
        if col not in b or b[col].isna().all():
            continue
        wins = []
        for _, g in b.groupby("task_id"):
            own, others = g.loc[g["agent"] == j, col], g.loc[g["agent"] != j, col]
            if len(own) and len(others):
                wins.append(float(own.iloc[0] > others.max()))
        out[j] = float(np.mean(wins)) if wins else np.nan
    return pd.Series(out, name="rates its own plan highest")


def solver_groups(passed: pd.DataFrame, domains: pd.Series) -> pd.DataFrame:
    """Tasks counted by which agents solve them alone ('none', or the solvers joined by ' + '), per domain."""
    label = passed.apply(lambda r: " + ".join(a for a in passed.columns if r[a] > 0) or "none", axis=1)
    table = pd.crosstab(label, domains.reindex(passed.index), margins=True, margins_name="all")
    return table.rename_axis(index="solved by", columns=None)


def oracle_costs(passed: pd.DataFrame, exec_cost: pd.DataFrame, domains: pd.Series) -> pd.DataFrame:
    """The oracle (the cheapest agent that solves a task executes it) under each fallback for the tasks no agent
    solves: the cheapest agent or the largest (SPEC's). pass@1, $/task and cost relative to the largest alone, per
    domain and overall. Execution $ only: the oracle holds no auction."""
    agents = list(passed.columns)
    solved = passed.to_numpy() > 0
    first = np.where(solved.any(axis=1), solved.argmax(axis=1), -1)
    rows = []
    for domain in [*sorted(domains.reindex(passed.index).unique()), "all"]:
        mask = np.ones(len(passed), bool) if domain == "all" else (domains.reindex(passed.index) == domain).to_numpy()
        largest = exec_cost.to_numpy()[mask, -1]
        for fallback, idx in (("cheapest", 0), ("largest", len(agents) - 1)):
            pick = np.where(first[mask] >= 0, first[mask], idx)
            cost = exec_cost.to_numpy()[mask][np.arange(mask.sum()), pick]
            rows.append({"domain": domain, "fallback": fallback, "tasks": int(mask.sum()),
                         "pass@1": float(solved[mask].any(axis=1).mean()), "$/task": cost.mean(),
                         "cost rel. largest": cost.sum() / largest.sum(),
                         "largest share": float((pick == len(agents) - 1).mean())})
    return pd.DataFrame(rows)


def auction_call_costs(calls: pd.DataFrame) -> pd.DataFrame:
    """Per task (first logged order), the $ of the initial bids, each juror's $ rating them (the jury calls before
    the auction's first refine call) and of refinement with its jury: columns bid, jury_<juror>, refine_all."""
    c = calls[calls["order"] == calls.groupby("task_id")["order"].transform("min")]
    first_refine = c[c["phase"] == "refine"].groupby("task_id")["call_index"].min()
    limit = c["task_id"].map(first_refine).fillna(np.inf)
    initial = c["call_index"] < limit
    out = pd.DataFrame({"bid": c[c["phase"] == "bid"].groupby("task_id")["cost_usd"].sum()})
    jury = c[(c["phase"] == "jury") & initial].pivot_table(index="task_id", columns="agent", values="cost_usd",
                                                          aggfunc="sum")
    out = out.join(jury.add_prefix("jury_"), how="outer")
    later = c[~initial & c["phase"].isin(AUCTION_PHASES)].groupby("task_id")["cost_usd"].sum()
    out["refine_all"] = later
    return out.fillna(0.0)


SELF_RATINGS = ("kept", "rescaled", "dropped", "imputed")


def replay_auction(bids: pd.DataFrame, weights, prices: dict[str, float], bid_cap: int, jurors=None,
                   perfect: pd.DataFrame | None = None, self_rating: str = "kept") -> pd.Series:
    """The winner of each task's auction on its logged initial bids, rescored with `weights` (sale.auction.weights
    .Weights) and no refinement: score = C − V by the auction's score_bid, the jury term over `jurors` (default:
    those with weight > 0) rescaled as the auction does (Weights.jury_value), ties to the cheaper agent. `perfect`, a [task ×
    agent] 0/1 frame, replaces every rating by 5 × whether the bidder solves the task alone (a perfect jury).

    `self_rating` replays the auction without self-evaluation, from logs that have every juror's rating:
    kept (self-evaluation on), imputed (the bidder's own rating replaced by that juror's mean rating of the other
    plans, as `auction.jury.self_evaluation=false` does: sale.auction.bids.impute_own_ratings), rescaled (the own
    rating left out and the jury's weight spread over the others, the auction's rule before 2026-12-06; a bid no
    weighted juror rated gets its auction's mean jury term) or dropped (SPEC's Σ_j w_j·γ_j with the self term
    absent, no rescaling)."""
    from sale.auction.bids import Bid, impute_own_ratings, score_bid

    if self_rating not in SELF_RATINGS:
        raise ValueError(f"self_rating={self_rating!r}: one of {SELF_RATINGS}")
    agents = list(prices)
    rank = {a: i for i, a in enumerate(agents)}
    max_price = max(prices.values())
    jurors = [j for j in (jurors or agents) if weights.w_jury.get(j, 0) > 0]
    winners = {}
    for task, g in initial_bids(bids).groupby("task_id"):
        auction = []
        for _, b in g.iterrows():
            if perfect is not None:
                ratings = {j: 5.0 * perfect.at[task, b["agent"]] for j in jurors}
            else:
                ratings = {j: b[f"gamma_{j}"] for j in jurors if pd.notna(b.get(f"gamma_{j}"))}
            if self_rating != "kept":
                ratings.pop(b["agent"], None)
            auction.append(Bid(agent=b["agent"], plan="", tokens=b["tokens"], entropy=b["entropy"], jury=ratings))
        if self_rating == "imputed":
            impute_own_ratings(auction, auction, jurors)
        for bid in auction:
            score_bid(bid, weights, prices[bid.agent], max_price, bid_cap)
            if self_rating == "dropped":  # SPEC's sum without the self term, not rescaled
                bid.value = weights.w_entropy * bid.entropy + sum(weights.w_jury[j] * v for j, v in bid.jury.items())
                bid.score = bid.cost - bid.value
        if self_rating == "rescaled":  # a bid no weighted juror rated gets its auction's mean jury term
            terms = [weights.jury_value(bid.jury) for bid in auction]
            rated = [v for v in terms if v is not None]
            for bid, term in zip(auction, terms):
                if term is None and rated:
                    bid.score -= float(np.mean(rated))
        winners[task] = min(auction, key=lambda bid: (bid.score, rank[bid.agent])).agent
    return pd.Series(winners, name="agent")


def replay_outcomes(winners: pd.Series, passed: pd.DataFrame, exec_cost: pd.DataFrame, auction_costs: pd.DataFrame,
                    jurors: list[str], domains: pd.Series) -> pd.DataFrame:
    """Per task of a replayed auction: the winner, whether it solves the task alone, and the $ of the bids, of the
    jurors consulted (their logged ratings of the initial bids) and of the winner's execution alone."""
    tasks = winners.index.intersection(passed.index).intersection(auction_costs.index)
    w = winners.loc[tasks]
    jury_cols = [f"jury_{j}" for j in jurors if f"jury_{j}" in auction_costs]
    out = pd.DataFrame({"agent": w, "domain": domains.reindex(tasks),
                        "passed": [passed.at[t, a] for t, a in w.items()],
                        "exec_cost_usd": [exec_cost.at[t, a] for t, a in w.items()],
                        "bid_usd": auction_costs.loc[tasks, "bid"],
                        "jury_usd": auction_costs.loc[tasks, jury_cols].sum(axis=1)})
    out["auction_cost_usd"] = out["bid_usd"] + out["jury_usd"]
    out["cost_usd"] = out["auction_cost_usd"] + out["exec_cost_usd"]
    return out


def counterfactual_row(name: str, per: pd.DataFrame, largest_per: pd.DataFrame, largest: str,
                       reference: pd.DataFrame | None = None, n_boot: int = 2000, seed: int = 0) -> dict:
    """One row of the counterfactual table: per-task frame `per` (passed, cost_usd, auction_cost_usd, agent)
    against the largest alone (`largest_per`: passed, cost_usd) on the same tasks, and Δpass@1 against
    `reference` (another such frame) with a paired bootstrap CI."""
    tasks = per.index.intersection(largest_per.index)
    per, ref_l = per.loc[tasks], largest_per.loc[tasks]
    d, lo, hi = paired_bootstrap_ci(per["passed"], ref_l["passed"], n_boot=n_boot, seed=seed)
    row = {"variant": name, "tasks": len(tasks), "pass@1": per["passed"].mean(), "Δ vs largest": d,
           "Δ lo": lo, "Δ hi": hi, "cost rel. largest": relative_cost(per["cost_usd"], ref_l["cost_usd"]),
           "largest share": per["largest"].mean() if "largest" in per else float((per["agent"] == largest).mean()),
           "auction $ share": overhead_share(per["auction_cost_usd"], per["cost_usd"]),
           "jury $/task": per["jury_usd"].mean() if "jury_usd" in per else np.nan}
    if reference is not None:
        common = tasks.intersection(reference.index)
        row["Δ vs ref."], row["ref. lo"], row["ref. hi"] = paired_bootstrap_ci(
            per.loc[common, "passed"], reference.loc[common, "passed"], n_boot=n_boot, seed=seed)
    return row


def break_even(auction: float, sale_exec: float, largest_exec: float, scale) -> pd.DataFrame:
    """If every execution were `scale`× as long (auction unchanged): the auction's share of SALE's total and SALE's
    cost relative to the largest agent alone. Inputs are per-task means ($ or tokens)."""
    k = np.asarray(scale, dtype=float)
    return pd.DataFrame({"scale": k, "auction share": auction / (auction + k * sale_exec),
                         "cost rel. largest": (auction + k * sale_exec) / (k * largest_exec)})


def scale_for_share(auction: float, sale_exec: float, share: float) -> float:
    """How many times longer executions must be for the auction to be `share` of SALE's total."""
    return auction * (1 - share) / (share * sale_exec)


def scale_for_parity(auction: float, sale_exec: float, largest_exec: float) -> float:
    """How many times longer executions must be for SALE to cost what the largest agent alone does (inf if SALE's
    executions alone cost as much as the largest's)."""
    saved = largest_exec - sale_exec
    return auction / saved if saved > 0 else float("inf")


def cached_prefix_tokens(calls: pd.DataFrame, plan_tokens: int = 128) -> pd.Series:
    """An estimate of each call's prompt tokens that an earlier call of the same agent on the same task already
    sent, i.e. what a provider's prompt cache would bill at a discount. Jury: a juror's ratings of one task share
    everything before the plan, so each rating after its first is cached up to its shortest rating prompt less
    `plan_tokens` (the bid cap, an upper bound on a plan). Other phases: a call's prompt extends the previous
    call's of the same agent and phase (a multi-turn trace), so min(previous prompt, this prompt) is cached. The
    first call of each is not cached."""
    c = calls.sort_values(["arm", "order", "task_id", "call_index"])
    key = [c["arm"], c["order"], c["task_id"], c["agent"], c["phase"]]
    prev = c.groupby(key)["prompt_tokens"].shift(1)
    first = prev.isna()
    cached = np.minimum(prev.fillna(0), c["prompt_tokens"])
    jury = c["phase"] == "jury"
    shared = (c.groupby(key)["prompt_tokens"].transform("min") - plan_tokens).clip(lower=0)
    cached = cached.where(~jury, np.minimum(shared, c["prompt_tokens"]))
    return cached.where(~first, 0).reindex(calls.index)


PRICE_SCHEMES = {
    "one price for all tokens (ours)": "every token at the agent's price, prompt and completion alike (SPEC §6)",
    "output tokens only": "completion tokens at the agent's price, prompts free",
    "input at 1/4 of output, cached prefixes at 1/10 of input": "completion at the agent's price, prompt tokens at a "
    "quarter of it, and the estimated cached prefix (cached_prefix_tokens) at a tenth of that",
}


def reprice(calls: pd.DataFrame, scheme: str, plan_tokens: int = 128) -> pd.Series:
    """Each call's $ under one of PRICE_SCHEMES (the agent's logged price per Mtok taken as the output price)."""
    p = calls["price_per_mtok"] / 1e6
    if scheme == "one price for all tokens (ours)":
        return (calls["prompt_tokens"] + calls["completion_tokens"]) * p
    if scheme == "output tokens only":
        return calls["completion_tokens"] * p
    if scheme == "input at 1/4 of output, cached prefixes at 1/10 of input":
        cached = cached_prefix_tokens(calls, plan_tokens)
        return (calls["completion_tokens"] + (calls["prompt_tokens"] - cached) / 4 + cached / 40) * p
    raise ValueError(f"unknown price scheme {scheme!r}; one of {list(PRICE_SCHEMES)}")


def cost_sensitivity(sale_calls: pd.DataFrame, sale_results: pd.DataFrame, largest_calls: pd.DataFrame,
                     largest_results: pd.DataFrame, plan_tokens: int = 128) -> pd.DataFrame:
    """SALE against the largest agent alone under each price scheme, per domain and overall, on the tasks both
    hold: $/task of each (SALE: per-task means over its orders), SALE's cost relative to the largest and the
    auction's share of SALE's $."""
    common = set(sale_results["task_id"]) & set(largest_results["task_id"])
    domain = pd.concat([sale_results, largest_results]).drop_duplicates("task_id").set_index("task_id")["domain"]
    rows = []
    for scheme in PRICE_SCHEMES:
        s = sale_calls[sale_calls["task_id"].isin(common)].assign(usd=reprice(sale_calls, scheme, plan_tokens))
        l_ = largest_calls[largest_calls["task_id"].isin(common)].assign(usd=reprice(largest_calls, scheme,
                                                                                   plan_tokens))
        s_task = s.groupby(["order", "task_id"])["usd"].sum().groupby("task_id").mean()
        s_auction = (s[s["phase"].isin(AUCTION_PHASES)].groupby(["order", "task_id"])["usd"].sum()
                     .groupby("task_id").mean().reindex(s_task.index, fill_value=0.0))
        l_task = l_.groupby("task_id")["usd"].sum().reindex(s_task.index, fill_value=0.0)
        for d in [*sorted(domain.reindex(s_task.index).unique()), "all"]:
            m = np.ones(len(s_task), bool) if d == "all" else (domain.reindex(s_task.index) == d).to_numpy()
            rows.append({"scheme": scheme, "domain": d, "tasks": int(m.sum()), "SALE $/task": s_task[m].mean(),
                         "largest $/task": l_task[m].mean(), "cost rel. largest": s_task[m].sum() / l_task[m].sum(),
                         "auction $ share": s_auction[m].sum() / s_task[m].sum()})
    return pd.DataFrame(rows)
