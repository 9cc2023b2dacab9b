"""Bids that end on their own, and whether executing with one's own plan helps or hurts.

    .venv/bin/python scripts/plan_effect.py --out data/bench/plans \
        tasks.split=train tasks.per_bin=4 tasks.take_per_bin=2
    .venv/bin/python scripts/plan_effect.py --bids-only --out /tmp/bids tasks.split=train ...   # bids alone

For every task of the sample and every agent of the pool: the agent's bid (the auction's own prompt, cap and
stop: sale.auction.bids.make_bid), then, unless --bids-only, the agent's execution of the task twice, with its own
bid as the plan (what a SALE winner does) and with no plan (the scaling run's call, shared through the call cache).

Writes <out>/bids.parquet (one row per bid: tokens, hit the cap, plan), <out>/executions.parquet (one row per
task, agent and arm), and <out>/report.md: the share of bids at the cap per agent and domain, and pass@1 with and
without the plan per agent and domain, paired on the same tasks (both, plan only, no-plan only, neither).
The arguments after the options are Hydra overrides of conf/config.yaml (pool, tasks, auction, agent).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import pandas as pd

from sale.config import compose

# The form example the bid prompt showed until 2026-12-03, "for a different task". The 0.5B and the 135M copied it
# word for word in 100 and 99 of 100 test bids (data/bench/bids-test at commit 68286c5), so their plans said
# nothing about the task; the prompt now describes the form in words only. The check stays, to show it is gone.
OLD_FORM_EXAMPLE = {
    "coding": "1. Read the docstring examples to pin down the output for empty input.\n"
    "2. Build the result in one pass over the string, keeping a counter.\n"
    "3. Run the examples; watch for an off-by-one at the end.",
    "search": "1. Find the person whose occupation is given, with lookup.\n"
    "2. Look up their sister, then the husband of each sister.\n"
    "3. Answer with all the names; beware of people with two sisters.",
}


def copies(plan: str, example: str) -> bool:
    """The plan repeats a line of the old form example word for word (small models copied it)."""
    lines = {" ".join(line.split()).lower() for line in example.splitlines() if line.strip()}
    return any(" ".join(line.split()).lower() in lines for line in plan.splitlines())


def bid_table(bids: pd.DataFrame) -> pd.DataFrame:
    g = bids.groupby(["agent", "domain"])

    def cols(x):
        return {
            "bids": len(x),
            "at cap": x["at_cap"].mean(),
            "mean tokens": x["tokens"].mean(),
            "numbered": x["numbered"].mean(),
            "copies the old form example": x["copies_example"].mean(),
        }

    t = pd.DataFrame([{"agent": a, "domain": d, **cols(x)} for (a, d), x in g])
    all_ = pd.DataFrame([{"agent": a, "domain": "both", **cols(x)} for a, x in bids.groupby("agent")])
    total = pd.DataFrame([{"agent": "all", "domain": "both", **cols(bids)}])
    return pd.concat([t, all_, total]).round(3)


def plan_table(ex: pd.DataFrame) -> pd.DataFrame:
    wide = ex.pivot_table(index=["agent", "domain", "task_id"], columns="arm", values="passed").reset_index()
    rows = []
    for (agent, domain), g in list(wide.groupby(["agent", "domain"])) + [
        ((a, "both"), g) for a, g in wide.groupby("agent")
    ]:
        p, n = g["plan"].astype(bool), g["no plan"].astype(bool)
        rows.append(
            {
                "agent": agent,
                "domain": domain,
                "tasks": len(g),
                "pass@1 no plan": n.mean(),
                "pass@1 with plan": p.mean(),
                "delta": p.mean() - n.mean(),
                "both": int((p & n).sum()),
                "plan only": int((p & ~n).sum()),
                "no-plan only": int((~p & n).sum()),
                "neither": int((~p & ~n).sum()),
            }
        )
    return pd.DataFrame(rows).round(3)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--bids-only", action="store_true")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)

    from tqdm.auto import tqdm

    from sale.auction.bids import bid_messages, make_bid
    from sale.harness.ledger import Ledger
    from sale.harness.methods import execute
    from sale.llm import Pool
    from sale.llm.cache import open_cache
    from sale.tasks import load_tasks

    cfg = compose(*args.overrides)
    pool = Pool.from_config(cfg.pool)
    cache = open_cache(cfg)
    tasks = load_tasks(cfg.tasks)
    cap = int(cfg.auction.bid_max_tokens)
    args.out.mkdir(parents=True, exist_ok=True)
    root = Ledger(pool, cache, method="plan_effect")
    bids, execs = [], []
    for task in tqdm(tasks, desc="tasks", unit="task", dynamic_ncols=True, file=sys.stdout):
        for agent in pool.names:
            ledger = root.for_task(task_id=task.id)
            bid = make_bid(ledger, agent, task, cap, bid_messages(task, cap, cfg.auction.prompts))
            bids.append(
                {
                    "task_id": task.id,
                    "domain": task.domain,
                    "bin": task.bin,
                    "agent": agent,
                    "tokens": bid.tokens,
                    "at_cap": bid.tokens >= cap,
                    "plan": bid.plan,
                    "numbered": bool(re.search(r"^\W*(?:step\s*)?1[.):]", bid.plan, re.I | re.M)),
                    "copies_example": copies(bid.plan, OLD_FORM_EXAMPLE[task.domain]),
                }
            )
            if args.bids_only:
                continue
            for arm, plan in (("no plan", None), ("plan", bid.plan or None)):
                res = execute(ledger, agent, task, plan, cfg.agent)
                execs.append(
                    {
                        "task_id": task.id,
                        "domain": task.domain,
                        "bin": task.bin,
                        "agent": agent,
                        "arm": arm,
                        "passed": res["passed"],
                        "turns": res["turns"],
                        "forced": res["forced"],
                        "tool_actions": res["tool_actions"],
                        "output": res["output"],
                        "trajectory": res["trajectory"],
                    }
                )
        pd.DataFrame(bids).to_parquet(args.out / "bids.parquet")  # after every task: a killed run keeps its rows
        if execs:
            pd.DataFrame(execs).to_parquet(args.out / "executions.parquet")
    bids_df = pd.DataFrame(bids)
    text = [
        f"# Bids and plans ({len(tasks)} tasks, split {cfg.tasks.split}, pool {pool.name}, cap {cap})\n",
        f"Command: `.venv/bin/python scripts/plan_effect.py {' '.join(sys.argv[1:] if argv is None else argv)}`\n",
        "## Bids at the cap\n",
        bid_table(bids_df).to_markdown(index=False),
        "",
    ]
    if execs:
        text += [
            "## Executing with one's own plan vs without (paired on the same tasks)\n",
            plan_table(pd.DataFrame(execs)).to_markdown(index=False),
            "",
        ]
    (args.out / "report.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
