"""The jury of one task at 1 and at 4 slots: wall time, and how much the ratings move.

Each task's three real plans come from the committed SALE run (data/runs/main-sale-cpu, order 0), and every juror of
the cpu pool rates every plan (9 ratings a task), as sale.auction.jury does in an auction. Three ways, each on a
fresh pool with an empty call cache (no prefix left over from another way):

  1 slot              run.concurrency=1: one rating at a time, one llama.cpp slot per juror
  4 slots, spread     run.concurrency=4, each rating its own call, all at once: a juror's three ratings land in
                      three slots and each recomputes the whole task (how the jury ran before slot affinity)
  4 slots, one slot   run.concurrency=4, a juror's ratings in sequence on one slot (sale.llm.slots), jurors and
                      tasks still in parallel: what the harness does now

The models on this CPU take turns (sale.llm.gate.CpuRoom), so at 4 slots the jurors of one task still compute one
after another; the slots pay where several tasks run at once (run.concurrency with several task streams), which
the `tasks_at_once` column measures: the same tasks' juries run side by side.

Ratings: the largest |gamma difference| of each way against 1 slot, and of the committed run (which ran at 4 in
flight) against 1 slot: the engine's batching alone moves the last digits of a log-probability.

    .venv/bin/python scripts/bench_jury_slots.py              # 4 tasks (~5 min on 2 cores)
    .venv/bin/python scripts/bench_jury_slots.py --tasks 12

Writes data/bench/jury_slots.parquet (one row per way x task) and data/bench/jury_slots.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from datetime import datetime, timezone

import pandas as pd

from sale import DATA_DIR
from sale.auction import jury
from sale.auction.bids import Bid
from sale.config import compose
from sale.harness.concurrency import parallel_map
from sale.harness.ledger import Ledger
from sale.llm import load_pool
from sale.tasks import load_tasks

RUN = DATA_DIR / "runs" / "main-sale-cpu"
OUT = DATA_DIR / "bench"
DIGITS = [str(d) for d in range(6)]
WAYS = {"1 slot": (1, True), "4 slots, spread": (4, False), "4 slots, one slot": (4, True)}


def unrated(bid: Bid) -> Bid:
    """The bid as it reaches the jury: its plan, length and entropy, no ratings."""
    return Bid(agent=bid.agent, plan=bid.plan, tokens=bid.tokens, entropy=bid.entropy)


def committed_auctions(n: int) -> list[tuple[str, list[Bid], list[dict]]]:
    """The first n tasks of order 0 whose three initial bids were rated by every juror: (task_id, the bids without
    their ratings, each bid's committed ratings {juror: gamma})."""
    out = []
    for line in open(RUN / "journal.jsonl"):
        rec = json.loads(line)
        _, order, task_id = rec["key"]
        if order != 0:
            continue
        logged = [Bid.from_row(b) for b in rec.get("bids") or [] if not b.get("refined")]
        if len(logged) == 3 and all(len(b.jury) == 3 for b in logged):
            out.append((task_id, [unrated(b) for b in logged], [dict(b.jury) for b in logged]))
        if len(out) == n:
            break
    return out


def run_way(name: str, auctions, tasks_by_id, prompts, tasks_at_once: int) -> list[dict]:
    concurrency, grouped = WAYS[name]
    pool = load_pool("cpu", concurrency=concurrency)
    try:
        ledger = Ledger(pool)
        for agent in pool.names:  # load every juror before the clock starts
            ledger.score_options(agent, "jury", [{"role": "user", "content": "0"}], DIGITS)

        def one(item):
            task_id, bids, _ = item
            task_ledger = ledger.for_task(task_id=task_id)
            if not grouped:
                task_ledger.batches_ratings = lambda agent: False  # type: ignore[method-assign]
            t0 = time.perf_counter()
            jury.rate(task_ledger, pool.names, tasks_by_id[task_id], bids, DIGITS, random.Random(0), prompts=prompts)
            return time.perf_counter() - t0

        rows = []
        for start in range(0, len(auctions), tasks_at_once):
            batch = auctions[start : start + tasks_at_once]
            t0 = time.perf_counter()
            walls = parallel_map(one, batch, concurrency if tasks_at_once > 1 else 1)
            batch_wall = time.perf_counter() - t0
            for (task_id, bids, committed), wall in zip(batch, walls):
                rows.append(
                    {
                        "way": name,
                        "tasks_at_once": tasks_at_once,
                        "task_id": task_id,
                        "jury_wall_s": wall,
                        "batch_wall_s": batch_wall / len(batch),
                        "gammas": json.dumps([b.jury for b in bids]),
                        "committed": json.dumps(committed),
                    }
                )
        return rows
    finally:
        pool.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=4, help="tasks whose jury is timed (default 4)")
    args = ap.parse_args()

    cfg = compose("pool=cpu", "tasks=mixed")
    tasks_by_id = {t.id: t for t in load_tasks(cfg.tasks)}
    prompts = cfg.auction.prompts
    auctions = committed_auctions(args.tasks)
    rows = []
    for tasks_at_once in (1, 4):
        for name in WAYS:
            if tasks_at_once > 1 and WAYS[name][0] == 1:
                continue  # one slot runs one task at a time whatever the harness sends
            # jury.rate fills the bids' ratings in place: each way rates its own copies (and loads a fresh pool,
            # so no way finds another's prompts in its slots)
            fresh = [(t, [unrated(b) for b in bids], committed) for t, bids, committed in auctions]
            print(f"[bench_jury_slots] {name}, {tasks_at_once} task(s) at once ...", flush=True)
            rows += run_way(name, fresh, tasks_by_id, prompts, tasks_at_once)
    df = pd.DataFrame(rows)
    df["machine"] = f"{platform.processor() or platform.machine()}, {platform.node()}"
    df["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")

    reference = {r.task_id: json.loads(r.gammas) for r in df[df.way == "1 slot"].itertuples()}

    def largest_gap(gammas: list[dict], ref: list[dict]) -> float:
        return max(abs(g[j] - r[j]) for gs, rs in zip(gammas, ref) for g, r in [(gs, rs)] for j in g)

    df["max_gamma_gap_vs_1_slot"] = [largest_gap(json.loads(r.gammas), reference[r.task_id]) for r in df.itertuples()]
    df["committed_gap_vs_1_slot"] = [
        largest_gap(json.loads(r.committed), reference[r.task_id]) for r in df.itertuples()
    ]
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_parquet(OUT / "jury_slots.parquet", index=False)

    base = df[df.way == "1 slot"]["jury_wall_s"].mean()
    table = (
        df.groupby(["tasks_at_once", "way"], sort=False)
        .agg(
            tasks=("task_id", "size"),
            jury_s_per_task=("batch_wall_s", "mean"),
            max_gamma_gap_vs_1_slot=("max_gamma_gap_vs_1_slot", "max"),
        )
        .reset_index()
    )
    table["vs 1 slot"] = table["jury_s_per_task"] / base
    committed_gap = df["committed_gap_vs_1_slot"].max()
    md = [
        "# The jury of one task at 1 and 4 slots (scripts/bench_jury_slots.py)",
        "",
        f"{df['machine'].iloc[0]}, {df['measured_at'].iloc[0]}; pool `cpu` (3 jurors x 3 plans = 9 ratings a task), "
        f"{len(reference)} tasks from data/runs/main-sale-cpu, order 0. `jury s per task`: wall time of the "
        "jury divided by the tasks rated together; `vs 1 slot`: the same tasks' jury time against one slot, "
        "measured in this run. `max gamma gap`: the largest difference in a juror's expected rating (0-5 scale) "
        "from the 1-slot ratings.",
        "",
        table.to_markdown(index=False, floatfmt=".3g"),
        "",
        f"The committed run's ratings (made at 4 in flight, one call per rating) differ from the 1-slot ones by at "
        f"most {committed_gap:.3g}: that much the engine's batching moves a rating by itself.",
    ]
    (OUT / "jury_slots.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
