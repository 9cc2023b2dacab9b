"""Do two runs agree, task by task? For the tasks and arms both ran: verdicts, who executed, turns and tokens.

    .venv/bin/python scripts/compare_verdicts.py data/runs/scaling-cpu-test runs/engine-xllamacpp-scaling-test \\
        --out data/bench/engine_change.md

Used to check an engine change (llama-cpp-python -> xllamacpp) against the committed reference runs. Prints a
markdown table per agent and domain (and writes it with --out), then lists every task whose verdict changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def load(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "results.parquet"
    if not path.exists():
        raise SystemExit(f"error: {path} not found; is {run_dir} a finished run directory?")
    return pd.read_parquet(path)


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    keys = ["arm", "order", "task_id"]
    cols = keys + ["agent", "domain", "bin", "passed", "turns", "exec_tokens", "output"]
    return a[cols].merge(b[cols], on=keys, suffixes=("_a", "_b"))


def table(m: pd.DataFrame, name_a: str, name_b: str) -> list[str]:
    lines = [
        f"| agent | domain | tasks | pass@1 {name_a} | pass@1 {name_b} | verdicts differ | passed only in "
        f"{name_a} | passed only in {name_b} | same output text | mean exec tokens {name_a} / {name_b} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (agent, domain), g in m.groupby(["agent_a", "domain_a"]):
        lines.append(
            f"| {agent} | {domain} | {len(g)} | {g.passed_a.mean():.2f} | {g.passed_b.mean():.2f} | "
            f"{(g.passed_a != g.passed_b).sum()} | {(g.passed_a & ~g.passed_b).sum()} | "
            f"{(~g.passed_a & g.passed_b).sum()} | {(g.output_a == g.output_b).sum()} | "
            f"{g.exec_tokens_a.mean():.0f} / {g.exec_tokens_b.mean():.0f} |"
        )
    lines.append(
        f"| all | all | {len(m)} | {m.passed_a.mean():.3f} | {m.passed_b.mean():.3f} | "
        f"{(m.passed_a != m.passed_b).sum()} | {(m.passed_a & ~m.passed_b).sum()} | "
        f"{(~m.passed_a & m.passed_b).sum()} | {(m.output_a == m.output_b).sum()} | "
        f"{m.exec_tokens_a.mean():.0f} / {m.exec_tokens_b.mean():.0f} |"
    )
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--names", nargs=2, default=None, help="column names for the two runs (default: their folders)")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    args = ap.parse_args()
    name_a, name_b = args.names or (args.run_a.name, args.run_b.name)
    m = compare(load(args.run_a), load(args.run_b))
    if m.empty:
        raise SystemExit("error: the two runs share no (arm, order, task)")
    m["passed_a"], m["passed_b"] = m.passed_a.astype(bool), m.passed_b.astype(bool)
    changed = m[m.passed_a != m.passed_b]
    lines = [
        f"Command: `.venv/bin/python scripts/compare_verdicts.py {args.run_a} {args.run_b}`",
        "",
        *table(m, name_a, name_b),
        "",
        f"Tasks whose verdict changed ({len(changed)}):",
        "",
    ]
    lines += [
        f"- {r.task_id} ({r.agent_a}, bin {r.bin_a}): {name_a} {'pass' if r.passed_a else 'fail'}, "
        f"{name_b} {'pass' if r.passed_b else 'fail'}"
        for r in changed.itertuples()
    ] or ["- none"]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
