"""Deep-search runs, per agent and bin: pass@1, turns, valid tool actions, forced answers, and passes reached by
following the chain.

    .venv/bin/python scripts/search_report.py data/runs/scaling-cpu-train [more run dirs] [--md out.md]

A pass "follows the chain" when the answer was not forced on the last turn and every gold answer had appeared in
an observation of the trace before it (a name in a lookup, search or article; a count as "(n)" in a lookup).
A pass on a forced last-turn answer still counts in pass@1; the table shows how many there were.

A second table says how each agent fails. A "loop" is a failure whose trace has a repeated action (the scaffold
answers "You already did ..."); it is "at the last step" when the question left at the first repeat has at most one
relation ("How many nephews does A, B have?", "the mother of A"), else "earlier".
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pandas as pd

from sale.tasks import load_tasks
from sale.tasks.graders import normalize_answer


def observations(trajectory: list[dict]) -> str:
    return "\n".join(s.get("content", "") for s in trajectory if s.get("role") == "tool" and s.get("tool") != "answer")


def grounded(gold: list[str], trajectory: list[dict]) -> bool:
    seen = observations(trajectory)
    counts = set(re.findall(r"\((\d+)\)", seen))
    folded = normalize_answer(seen)
    return all((g in counts) if g.isdigit() else normalize_answer(g) in folded for g in gold)


def failure_kind(trajectory: list[dict], forced: bool) -> str:
    repeat = next(
        (
            s["content"]
            for s in trajectory
            if s.get("role") == "user" and s.get("content", "").startswith("Observation: You already did")
        ),
        None,
    )
    if repeat is None:
        return "forced, no loop" if forced else "wrong answer"
    left = repeat.rsplit("Question left:", 1)[-1]
    return "loop at last step" if len(re.findall(r"\bof\b", left)) <= 1 else "loop earlier"


def load(run_dir: Path) -> pd.DataFrame:
    """A run's search rows (from the journal while the run is unfinished: sale.harness.runlog.load_logs)."""
    from sale.harness.runlog import load_logs

    df = load_logs(run_dir)["results"]
    df = df[df["domain"] == "search"].copy()
    gold = {
        t.id: list(t.payload["answers"]) for t in load_tasks({"name": "s", "sources": ["phantomwiki"], "split": "all"})
    }
    rows = []
    for _, r in df.iterrows():
        traj = json.loads(r["trajectory"])
        forced = (
            bool(r["forced"])
            if "forced" in r and pd.notna(r["forced"])
            else any(s.get("forced") for s in traj if s.get("tool") == "answer")
        )
        tool_actions = (
            r["tool_actions"]
            if "tool_actions" in r and pd.notna(r["tool_actions"])
            else sum(1 for s in traj if s.get("role") == "tool" and s.get("tool") != "answer")
        )
        rows.append(
            {
                "run": run_dir.name,
                "arm": r["arm"],
                "agent": r["agent"],
                "bin": int(r["bin"]),
                "task_id": r["task_id"],
                "passed": bool(r["passed"]),
                "turns": int(r["turns"]),
                "tool_actions": int(tool_actions),
                "malformed": int(r["malformed"]),
                "forced": forced,
                "answered": bool(r["self_check"]),
                "failure": None if r["passed"] else failure_kind(traj, forced),
                "chain": bool(r["passed"]) and not forced and grounded(gold[r["task_id"]], traj),
            }
        )
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby(["agent", "bin"])
    out = pd.DataFrame(
        {
            "n": g.size(),
            "pass@1": g["passed"].mean(),
            "passes": g["passed"].sum(),
            "chain passes": g["chain"].sum(),
            "forced": g["forced"].sum(),
            "forced passes": g.apply(lambda x: int((x["passed"] & x["forced"]).sum())),
            "no answer": g.apply(lambda x: int((~x["answered"]).sum())),
            "turns": g["turns"].mean(),
            "tool actions": g["tool_actions"].mean(),
            "malformed": g["malformed"].mean(),
        }
    )
    tot = df.groupby("agent")
    all_rows = pd.DataFrame(
        {
            "n": tot.size(),
            "pass@1": tot["passed"].mean(),
            "passes": tot["passed"].sum(),
            "chain passes": tot["chain"].sum(),
            "forced": tot["forced"].sum(),
            "forced passes": tot.apply(lambda x: int((x["passed"] & x["forced"]).sum())),
            "no answer": tot.apply(lambda x: int((~x["answered"]).sum())),
            "turns": tot["turns"].mean(),
            "tool actions": tot["tool_actions"].mean(),
            "malformed": tot["malformed"].mean(),
        }
    )
    all_rows["bin"] = "all"
    out = (
        pd.concat([out.reset_index(), all_rows.reset_index()])
        .set_index(["agent", "bin"])
        .sort_index(key=lambda s: s.astype(str))
    )
    return out.round(2)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    failed = df[~df["passed"]]
    out = pd.crosstab(failed["agent"], failed["failure"])
    out.insert(0, "failures", out.sum(axis=1))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--md", type=Path, help="also write the table as markdown")
    args = ap.parse_args(argv)
    df = pd.concat([load(r) for r in args.runs])
    t, f = table(df), failures(df)
    with pd.option_context("display.width", 250, "display.max_rows", 200, "display.max_columns", 20):
        print(t)
        print("\nHow each agent fails:")
        print(f)
    if args.md:
        args.md.write_text(t.to_markdown() + "\n\nHow each agent fails:\n\n" + f.to_markdown() + "\n")


if __name__ == "__main__":
    main()
