"""The README's main job (`make demo`): SALE and the largest agent alone on the same tasks, side by side.

    python -m sale.demo                                    # experiment=demo on the cpu pool
    python -m sale.demo run.concurrency=4 pool=cpu_server  # any override of `python -m sale.run`

It runs `python -m sale.run experiment=demo` (SALE), then the same tasks with `method=single
method.agents=largest` in run directory `<run.dir>-largest`, sharing the call cache (a rerun of either is free; the
largest agent alone executes without a plan, so SALE's executions do not answer for it), and prints one table and
draws one figure (`<run.dir>/side_by_side.png`): pass@1 per bin, $ per task, cost relative to the largest agent,
reliance on it (its share of the executions), and the auction's share of tokens and dollars.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from sale.config import compose


def side_by_side(sale: pd.DataFrame, largest: pd.DataFrame, largest_name: str) -> pd.DataFrame:
    """One row per arm: SALE, then the largest agent alone, on the tasks both have finished."""
    common = set(sale["task_id"]) & set(largest["task_id"])
    base_cost = largest.loc[largest["task_id"].isin(common), "cost_usd"].mean()
    rows = []
    for label, df in ((f"SALE ({sale['arm'].iloc[0]})", sale), (f"{largest_name} alone", largest)):
        df = df[df["task_id"].isin(common)]
        row = {"method": label, "tasks": len(df), "pass@1": df["passed"].mean()}
        for b, g in df.groupby("bin"):
            row[f"bin{b}"] = g["passed"].mean()
        row["$/task"] = df["cost_usd"].mean()
        row["cost vs largest"] = df["cost_usd"].mean() / base_cost if base_cost else float("nan")
        row["largest executes"] = (df["agent"] == largest_name).mean()
        row["auction tok %"] = 100 * df["auction_tokens"].sum() / max(df["tokens"].sum(), 1)
        row["auction $ %"] = 100 * df["auction_cost_usd"].sum() / max(df["cost_usd"].sum(), 1e-30)
        rows.append(row)
    return pd.DataFrame(rows)


def side_by_side_figure(sale: pd.DataFrame, largest: pd.DataFrame, table: pd.DataFrame, path: Path) -> Path:
    """pass@1 (%) per complexity bin and domain, and $ per task split into execution and auction, of the two runs on
    the tasks both finished, in the repository's figure style (sale.analysis.style)."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import numpy as np

    from sale.analysis import style

    style.use()
    both = pd.concat([sale.assign(method=table["method"][0]), largest.assign(method=table["method"][1])])
    both = both[both["task_id"].isin(set(sale["task_id"]) & set(largest["task_id"]))]
    domains = sorted(both["domain"].unique())
    methods = list(table["method"][:2])
    colours = [style.OKABE_ITO["vermillion"], style.OKABE_ITO["blue"]]
    fig, axes = style.figure(ncols=len(domains) + 1, width="page", height=2.4, squeeze=False)
    for ax, domain in zip(axes[0], domains):
        for k, (method, colour, marker) in enumerate(zip(methods, colours, ("o", "s"))):
            per_bin = both[(both["domain"] == domain) & (both["method"] == method)].groupby("bin")["passed"].mean()
            ax.plot(per_bin.index + (k - 0.5) * 0.12, style.pct(per_bin), marker=marker, color=colour, label=method)
        ax.set_title(f"{domain}: pass@1 by complexity bin")
        ax.set_xlabel("complexity bin (1 = easiest)")
        ax.set_xticks(sorted(both["bin"].unique()))
        style.pct_axis(ax, lim=(-4, 104))
    style.legend_outside(axes[0, 0], loc="below", ncol=1)
    ax = axes[0, -1]
    cost = both.groupby("method", sort=False)[["exec_cost_usd", "auction_cost_usd"]].mean().reindex(methods)
    x = np.arange(len(cost))
    ax.bar(x, cost["exec_cost_usd"], color=colours, label="execution")
    ax.bar(
        x,
        cost["auction_cost_usd"],
        bottom=cost["exec_cost_usd"],
        color=colours,
        alpha=0.45,
        hatch="//",
        label="auction (bids, jury, refinement)",
    )
    ax.set_xticks(x, [m.replace(" (", "\n(").replace(" alone", "\nalone") for m in cost.index])
    ax.set_title("mean cost per task")
    style.usd_axis(ax, which="y", label="$ per task", log=False)
    ax.set_ylim(0, 1.12 * float((cost["exec_cost_usd"] + cost["auction_cost_usd"]).max()))
    style.legend_outside(ax, loc="below", ncol=1)
    style.save(fig, path)
    matplotlib.pyplot.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    from omegaconf import OmegaConf
    from rich.console import Console
    from rich.table import Table

    from sale.analysis.summary import _fmt
    from sale.harness.concurrency import Interrupted
    from sale.harness.runlog import load_logs
    from sale.llm import LLMError
    from sale.run import run

    sale_cfg = compose("experiment=demo", *argv)
    largest_cfg = compose("experiment=demo", *argv, "method=single", "method.agents=largest")
    OmegaConf.set_struct(largest_cfg, False)
    largest_cfg.run.dir = f"{sale_cfg.run.dir}-largest"
    largest_cfg.run.name = f"{sale_cfg.run.name}-largest"
    try:
        print("[sale.demo] 1/2: SALE")
        sale_dir = run(sale_cfg)
        print("[sale.demo] 2/2: the largest agent alone on the same tasks")
        largest_dir = run(largest_cfg)
    except Interrupted:
        print("[sale.demo] stopped; rerun the same command to resume", file=sys.stderr)
        return 130
    except (LLMError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    sale = load_logs(sale_dir)["results"]
    largest = load_logs(largest_dir)["results"]
    largest_name = largest["agent"].iloc[0]
    table = side_by_side(sale, largest, largest_name)
    t = Table(title=f"SALE against the largest agent alone (pool {sale_cfg.pool.name}, same tasks)")
    for col in table.columns:
        t.add_column(col, justify="left" if col == "method" else "right")
    for _, r in table.iterrows():
        t.add_row(*[_fmt("n" if c == "tasks" else c, r[c]) for c in table.columns])
    Console(width=170).print(t)
    figure = side_by_side_figure(sale, largest, table, Path(sale_dir) / "side_by_side.png")
    print(f"[sale.demo] figure: {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
