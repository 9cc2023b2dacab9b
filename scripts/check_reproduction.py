"""Do regenerated runs equal the committed ones, task for task? For every run directory under both data dirs (or the
names given): each (arm, order, task) must be in both, with the same verdict, the same agent executing (SALE's
winner), the same tokens and the same $; a fitted weights folder must hold the same weights (when and where each
was fitted aside). Prints a table, lists the first differences, and exits 1 on any.

    .venv/bin/python scripts/check_reproduction.py data /tmp/regenerated          # every run both hold
    .venv/bin/python scripts/check_reproduction.py data /tmp/regenerated main-sale-cpu --subset

--subset compares only the tasks the regenerated run holds (a slice made with run.limit=N). `bash scripts/reproduce.sh
check` regenerates every committed run from the committed call-cache shards into an empty data dir and runs this.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from sale.harness.runlog import read_journal

COMPARED = ("passed", "agent", "tokens", "cost_usd")


def task_rows(run_dir: Path) -> pd.DataFrame:
    """One row per journalled (arm, order, task): the compared fields."""
    rows = [
        {"arm": r["key"][0], "order": r["key"][1], "task_id": r["key"][2], **{c: r["result"].get(c) for c in COMPARED}}
        for r in read_journal(run_dir)
    ]
    return pd.DataFrame(rows, columns=["arm", "order", "task_id", *COMPARED])


def compare_run(committed: Path, regenerated: Path, subset: bool) -> tuple[dict, list[str]]:
    a, b = task_rows(committed), task_rows(regenerated)
    keys = ["arm", "order", "task_id"]
    if subset:
        a = a.merge(b[keys], on=keys)
    m = a.merge(b, on=keys, how="outer", suffixes=("_committed", "_regenerated"), indicator=True)
    row = {"run": committed.name, "tasks committed": len(a), "tasks regenerated": len(b)}
    row["missing"] = int((m["_merge"] == "left_only").sum())
    row["extra"] = int((m["_merge"] == "right_only").sum())
    both = m[m["_merge"] == "both"]
    problems = [
        f"{committed.name}: {r.task_id} (arm {r.arm}, order {r.order}) missing"
        for r in m[m["_merge"] == "left_only"].head(3).itertuples()
    ]
    for col in COMPARED:
        x, y = both[f"{col}_committed"], both[f"{col}_regenerated"]
        differ = ~((x == y) | (x.isna() & y.isna()))
        if col in ("tokens", "cost_usd"):
            differ = (x.astype(float) - y.astype(float)).abs() > 1e-12 * (1 + x.astype(float).abs())
        row[f"{col} differ"] = int(differ.sum())
        problems += [
            f"{committed.name}: {r.task_id} (arm {r.arm}, order {r.order}) {col}: "
            f"{getattr(r, col + '_committed')} committed, {getattr(r, col + '_regenerated')} regenerated"
            for r in both[differ].head(3).itertuples()
        ]
    return row, problems


# Provenance that names when and where a fit was made, not what it found.
WHEN_AND_WHERE = ("created_at", "saved_at", "train_run")


def fitted(path: Path) -> dict:
    weights = json.loads(path.read_text())
    provenance = {k: v for k, v in weights.get("provenance", {}).items() if k not in WHEN_AND_WHERE}
    return {**weights, "provenance": provenance}


def compare_weights(committed: Path, regenerated: Path) -> tuple[dict, list[str]]:
    files = sorted(p.name for p in committed.glob("*.json"))
    differ = [f for f in files if not (regenerated / f).exists() or fitted(committed / f) != fitted(regenerated / f)]
    row = {"run": f"weights/{committed.name}", "tasks committed": len(files), "tasks regenerated": len(files)}
    row.update({"missing": 0, "extra": 0, **{f"{c} differ": 0 for c in COMPARED}})
    row["passed differ"] = len(differ)  # the weights files that differ
    return row, [f"weights/{committed.name}/{f} differs" for f in differ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("committed", type=Path, help="the data dir holding the committed runs (data)")
    ap.add_argument("regenerated", type=Path, help="the data dir the regenerated runs were written to")
    ap.add_argument("names", nargs="*", help="run names (default: every run both data dirs hold)")
    ap.add_argument("--subset", action="store_true", help="compare only the tasks each regenerated run holds")
    args = ap.parse_args()
    names = args.names or sorted(
        p.parent.name
        for p in (args.regenerated / "runs").glob("*/journal.jsonl")
        if (args.committed / "runs" / p.parent.name / "journal.jsonl").exists()
    )
    if not names:
        raise SystemExit(f"error: no run directory in both {args.committed}/runs and {args.regenerated}/runs")
    rows, problems = [], []
    for name in names:
        row, found = compare_run(args.committed / "runs" / name, args.regenerated / "runs" / name, args.subset)
        rows.append(row)
        problems += found
    for weights in sorted((args.regenerated / "weights").glob("*")):
        if (args.committed / "weights" / weights.name).is_dir():
            row, found = compare_weights(args.committed / "weights" / weights.name, weights)
            rows.append(row)
            problems += found
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False))
    if problems:
        print(f"\n{len(problems)} differences (first ones):", *problems[:30], sep="\n  ", file=sys.stderr)
        return 1
    runs = table[~table["run"].str.startswith("weights/")]
    print(f"\nidentical: {len(runs)} runs, {int(runs['tasks regenerated'].sum())} tasks (verdict, agent, tokens, $)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
