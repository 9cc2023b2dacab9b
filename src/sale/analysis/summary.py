"""The end-of-run summary table and figure, from the results log alone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sale.analysis.metrics import blended_price_per_mtok


def summary_table(results: pd.DataFrame, largest: str) -> pd.DataFrame:
    """One row per arm: pass@1 overall and per bin, $/task, $/Mtok, largest-agent share, auction overhead."""
    rows = []
    for arm, df in results.groupby("arm", sort=False):
        row = {"arm": arm, "n": len(df), "pass@1": df["passed"].mean()}
        for b, g in df.groupby("bin"):
            row[f"bin{b}"] = g["passed"].mean()
        row["$/task"] = df["cost_usd"].mean()
        row["$/Mtok"] = blended_price_per_mtok(df["cost_usd"].sum(), df["tokens"].sum())
        row["largest share"] = (df["agent"] == largest).mean()
        row["auction tok %"] = 100 * df["auction_tokens"].sum() / max(df["tokens"].sum(), 1)
        row["turns"] = df["turns"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def print_summary(results: pd.DataFrame, calls: pd.DataFrame, pool) -> pd.DataFrame:
    if results.empty:
        print("[sale] no results yet")
        return results
    table = summary_table(results, pool.largest.name)
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=f"pass@1 and cost per arm (pool {pool.name}; bins 1 = easiest .. 5 = hardest)")
        for col in table.columns:
            t.add_column(col, justify="left" if col == "arm" else "right")
        for _, r in table.iterrows():
            t.add_row(*[_fmt(c, r[c]) for c in table.columns])
        Console(width=160).print(t)
    except ImportError:
        print(table.to_string(index=False))
    if "domain" in results:
        by_domain = results.groupby(["arm", "domain"], sort=False)["passed"].mean().unstack()
        print("pass@1 by domain:\n" + by_domain.round(3).to_string())
    return table


def _fmt(col: str, v) -> str:
    if isinstance(v, str):
        return v
    if pd.isna(v):
        return "-"
    if col in ("n",):
        return str(int(v))
    if col in ("$/task", "$/Mtok"):
        return f"{v:.3g}"
    if col in ("auction tok %", "turns"):
        return f"{v:.1f}"
    return f"{v:.2f}"


def summary_figure(results: pd.DataFrame, path: str | Path) -> Path:
    """pass@1 per complexity bin for every arm (and domain), the scaling picture of the run."""
    import logging

    import matplotlib

    matplotlib.use("Agg")
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    import matplotlib.pyplot as plt
    import seaborn as sns

    path = Path(path)
    domains = sorted(results["domain"].unique())
    one_arm = results["arm"].nunique() == 1  # then also show who executed (SALE's routing) per bin
    rows = 2 if one_arm else 1
    fig, axes = plt.subplots(rows, len(domains), figsize=(5.5 * len(domains), 3.8 * rows), squeeze=False)
    agents = list(dict.fromkeys(results.sort_values("exec_cost_usd")["agent"]))
    for col, domain in enumerate(domains):
        df = results[results["domain"] == domain]
        ax = axes[0, col]
        dodge = 0.3 if df["arm"].nunique() > 1 else False
        sns.pointplot(data=df, x="bin", y="passed", hue="arm", ax=ax, errorbar=None, markers="o", dodge=dodge)
        ax.set_title(f"{domain}: pass@1 by complexity bin")
        ax.set_xlabel("complexity bin (by estimated human time tau)")
        ax.set_ylabel("pass@1")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        if one_arm:
            share = pd.crosstab(df["bin"], df["agent"], normalize="index").reindex(columns=agents, fill_value=0)
            share.plot.bar(stacked=True, ax=axes[1, col], rot=0, colormap="viridis")
            axes[1, col].set(title=f"{domain}: who executed", xlabel="complexity bin", ylabel="share of tasks")
            axes[1, col].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
