#!/usr/bin/env python
"""Regrade every committed HumanEval completion with the current grader and sandbox, and compare with the verdict
the run logged.

Reads the coding rows of data/runs/*/results.parquet (and, with --archive, data/runs/archive/*/results.parquet),
takes each distinct (task_id, output) pair once, grades it the way a run does (`sale.harness.methods.grade` on the
task from `sale.tasks.load_tasks`), and prints how many pairs were regraded, how many got the committed verdict,
and every pair that did not, with both grader details. A pair logged with two different verdicts is listed too.

    python scripts/regrade_completions.py              # the runs in data/runs
    python scripts/regrade_completions.py --archive    # and the archived ones
    python scripts/regrade_completions.py --out /tmp/regrade.parquet   # every pair with both verdicts

Exit status 1 when a verdict differs. The sandbox's isolation mode is printed first: in 'basic' mode (no
namespaces) the grade is the same program run with fewer protections, see docs/security.md.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from sale import REPO_ROOT


def committed_pairs(archive: bool) -> pd.DataFrame:
    """The distinct (task_id, output) pairs of the committed coding results, with the verdicts logged for them."""
    files = sorted((REPO_ROOT / "data" / "runs").glob("*/results.parquet"))
    if archive:
        files += sorted((REPO_ROOT / "data" / "runs" / "archive").glob("*/results.parquet"))
    frames = []
    for path in files:
        df = pd.read_parquet(path, columns=None)
        if "domain" not in df:
            continue
        coding = df[df["domain"] == "coding"]
        frames.append(coding[["task_id", "output", "passed", "grade_status"]].assign(run=path.parent.name))
    rows = pd.concat(frames, ignore_index=True)
    rows["output"] = rows["output"].fillna("")
    return rows.groupby(["task_id", "output"], sort=True, as_index=False).agg(
        passed=("passed", lambda s: sorted(set(map(bool, s)))),
        grade_status=("grade_status", lambda s: sorted(set(s))),
        runs=("run", lambda s: sorted(set(s))),
        n_rows=("run", "size"),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archive", action="store_true", help="also the runs under data/runs/archive")
    ap.add_argument("--out", help="write every pair with its committed and new verdict to this parquet file")
    args = ap.parse_args(argv)

    from sale.harness.methods import grade
    from sale.tasks import load_tasks
    from sale.tasks.sandbox import isolation_mode

    print(f"[regrade] sandbox isolation mode: {isolation_mode()}")
    tasks = {t.id: t for t in load_tasks({"sources": ["humaneval"], "split": "all"})}
    pairs = committed_pairs(args.archive)
    print(f"[regrade] {int(pairs['n_rows'].sum())} coding results, {len(pairs)} distinct (task, output) pairs")
    t0 = time.time()
    new_passed, new_status, details = [], [], []
    for row in pairs.itertuples():
        g = grade(tasks[row.task_id], row.output)
        new_passed.append(bool(g.passed))
        new_status.append(g.status)
        details.append(g.detail)
    pairs["new_passed"], pairs["new_status"], pairs["new_detail"] = new_passed, new_status, details
    pairs["same"] = [p == [n] for p, n in zip(pairs["passed"], pairs["new_passed"])]
    print(f"[regrade] regraded {len(pairs)} pairs in {time.time() - t0:.0f} s")
    print(f"[regrade] same verdict: {int(pairs['same'].sum())} of {len(pairs)}")
    print(
        f"[regrade] passed now: {int(pairs['new_passed'].sum())}; committed as passed: "
        f"{int(pairs['passed'].map(lambda p: p == [True]).sum())}"
    )
    for row in pairs[~pairs["same"]].itertuples():
        print(
            f"[regrade] DIFFERS {row.task_id} (runs {', '.join(row.runs)}): committed passed={row.passed} "
            f"{row.grade_status}; now passed={row.new_passed} {row.new_status}: {row.new_detail}"
        )
    if args.out:
        pairs.assign(passed=pairs["passed"].map(str), grade_status=pairs["grade_status"].map(str)).to_parquet(
            args.out, index=False
        )
    return 0 if pairs["same"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
