"""`make demo`'s wall time from an empty call cache, split by phase, at 1 and at 4 calls in flight.

Runs `python -m sale.demo run.concurrency=N` for each N with a fresh call cache and no committed cache shards, so
every call is computed, then splits each arm's wall time (SALE, then the largest agent alone) by phase: the union
of the intervals its calls of that phase ran (calls.parquet: ended_at - latency_s to ended_at), and `other` for the
rest (loading, grading, the search agent's tools, memory and the harness).

    .venv/bin/python scripts/bench_demo.py                 # 1 and 4 in flight (~20 min on 2 cores)
    .venv/bin/python scripts/bench_demo.py --in-flight 1   # one setting

Writes data/bench/demo.parquet (one row per setting x arm x phase) and data/bench/demo.md.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from sale import DATA_DIR, REPO_ROOT
from sale.harness.runlog import load_logs

OUT = DATA_DIR / "bench"
PHASES = ["bid", "jury", "refine", "execute"]


def union_seconds(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of [start, end] intervals."""
    total, end_so_far = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > end_so_far:
            total += end - max(start, end_so_far)
            end_so_far = end
    return total


def arm_rows(run_dir: Path, in_flight: int, arm: str) -> list[dict]:
    logs = load_logs(run_dir)
    results, calls = logs["results"], logs["calls"]
    wall = float(results["finished_at"].max() - results["started_at"].min())  # Unix seconds
    rows, in_phases = [], 0.0
    for phase in PHASES:
        mine = calls[calls["phase"] == phase]
        if mine.empty:
            continue
        seconds = union_seconds(list(zip(mine["ended_at"] - mine["latency_s"], mine["ended_at"])))
        in_phases += seconds
        rows.append({"phase": phase, "wall_s": seconds, "calls": len(mine), "tokens": int(mine["tokens"].sum())})
    rows.append({"phase": "other", "wall_s": wall - in_phases, "calls": 0, "tokens": 0})
    rows.append({"phase": "total", "wall_s": wall, "calls": len(calls), "tokens": int(calls["tokens"].sum())})
    for r in rows:
        r.update(in_flight=in_flight, arm=arm, cached_calls=int(calls["cached"].sum()))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[1, 4], help="run.concurrency values (default 1 4)")
    ap.add_argument(
        "--keep", metavar="DIR", help="write the runs and their caches here and keep them (default: a temp dir)"
    )
    args = ap.parse_args()

    rows, commands = [], {}
    with tempfile.TemporaryDirectory(prefix="sale-bench-demo-") as scratch:
        tmp = args.keep or scratch
        for n in args.in_flight:
            folder = Path(tmp) / f"in-flight-{n}"
            if folder.exists():  # its cache would answer the calls this benchmark must time
                raise SystemExit(f"error: {folder} exists; --keep needs a folder without earlier runs")
            shown = [f"run.concurrency={n}", "run.cache_shards=null"]  # the rest only points at the scratch folder
            overrides = [*shown, f"run.cache={folder}/calls.sqlite", f"run.dir={folder}/demo"]
            commands[n] = "python -m sale.demo " + " ".join(shown)
            print(f"[bench_demo] {commands[n]} (empty cache) ...", flush=True)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sale.demo", *overrides], cwd=REPO_ROOT, check=True)
            command_wall = time.perf_counter() - t0
            rows += arm_rows(folder / "demo", n, "SALE")
            rows += arm_rows(folder / "demo-largest", n, "largest alone")
            rows.append({"phase": "command", "wall_s": command_wall, "in_flight": n, "arm": "both"})
    df = pd.DataFrame(rows)
    df["machine"] = f"{platform.processor() or platform.machine()}, {platform.node()}"
    df["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_parquet(OUT / "demo.parquet", index=False)

    table = df[df["arm"] != "both"].pivot_table(
        index=["arm", "phase"], columns="in_flight", values="wall_s", sort=False
    )
    table.columns = [f"{c} in flight (s)" for c in table.columns]
    whole = df[df["phase"] == "command"].set_index("in_flight")["wall_s"]
    md = [
        "# `make demo` from an empty call cache, by phase (scripts/bench_demo.py)",
        "",
        f"{df['machine'].iloc[0]}, {df['measured_at'].iloc[0]}; pool `cpu`, the demo's 4 tasks, no committed cache "
        "shards. A phase's time is the union of the intervals its calls ran; `other` is the rest of the arm "
        "(loading, grading, tools, memory).",
        "",
        table.reset_index().to_markdown(index=False, floatfmt=".1f"),
        "",
        "The whole command: " + ", ".join(f"{whole[n] / 60:.1f} min at {n} in flight" for n in whole.index) + ".",
        "",
        "Commands: " + "; ".join(f"`{c}`" for c in commands.values()) + " (each with an empty `run.cache`).",
    ]
    (OUT / "demo.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
