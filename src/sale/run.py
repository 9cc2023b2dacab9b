"""The Hydra entry point: run a method on a task set with an agent pool, log everything, print a summary.

    python -m sale.run experiment=demo                              # the README's main job (cpu pool)
    python -m sale.run method=single tasks=humaneval tasks.per_bin=2  # every agent alone
    python -m sale.run method=sale run.orders=5 auction.memory.enabled=false
    python -m sale.run --help                                       # every group and option

Rerunning the same command resumes: journalled tasks are skipped (see sale.runlog for the run directory).
run.concurrency=N keeps N tasks (and N calls per agent) in flight (sale.concurrency); results do not depend on N.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sale import CONF_DIR

FINGERPRINT_KEYS = ("pool", "tasks", "method", "auction", "agent", "seed")
AUCTION_METHODS = ("sale",)  # the other methods never read cfg.auction, so it does not tie their run directories


def task_orders(tasks: list, n_orders: int) -> list[list]:
    """Order k is a random permutation of the task stream seeded by k (domains and bins interleave)."""
    orders = []
    for k in range(n_orders):
        seq = list(tasks)
        random.Random(k).shuffle(seq)
        orders.append(seq)
    return orders


def _without_nulls(value):
    """Drop null entries, so that a config key added later with a null default matches a run saved before it."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _engine_hint(saved_pool: dict | None, pool: dict) -> str:
    def engines(p):
        return sorted({str(a.get("backend")) for a in ((p or {}).get("agents") or {}).values()})

    if engines(saved_pool) == engines(pool):
        return ""
    return (f"\n  The run was made by the {'/'.join(engines(saved_pool))} engine and this config uses "
            f"{'/'.join(engines(pool))}: two engines write different text, so their results are never mixed. A pool "
            f"file with the run's backend resumes it (the committed cpu runs: pool=cpu_llamacpp, after `make llamacpp`).")


def check_same_config(run_dir: Path, cfg: DictConfig) -> None:
    """A run directory belongs to one config: resuming it with another would mix results."""
    path = run_dir / "config.yaml"
    keys = [k for k in FINGERPRINT_KEYS if k != "auction" or cfg.method.name in AUCTION_METHODS]
    current = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
               for k in keys}
    if path.exists():
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        changed = [k for k in keys if _without_nulls(saved.get(k)) != _without_nulls(current[k])]
        if changed:
            raise SystemExit(f"error: {run_dir} holds a run with a different config ({', '.join(changed)} differ).\n"
                             f"  Resume it with the same overrides, or choose another run.name=..."
                             + _engine_hint(saved.get("pool"), current["pool"]))
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, path, resolve=True)


def run(cfg: DictConfig) -> Path:
    from tqdm.auto import tqdm

    from sale.concurrency import run_streams
    from sale.embeddings import Embedder
    from sale.ledger import Ledger
    from sale.llm import Pool
    from sale.llm.cache import CallCache
    from sale.methods import build_method
    from sale.runlog import Journal
    from sale.summary import print_summary, summary_figure
    from sale.tasks import load_tasks

    run_dir = Path(cfg.run.dir)
    check_same_config(run_dir, cfg)
    concurrency = int(cfg.run.get("concurrency") or 1)
    if concurrency < 1:
        raise ValueError(f"run.concurrency must be a positive integer, got {cfg.run.concurrency}")
    pool = Pool.from_config(cfg.pool, concurrency=concurrency)
    pool.server_log_dir = run_dir / "servers"
    tasks = load_tasks(cfg.tasks)
    if cfg.run.limit:
        tasks = tasks[: int(cfg.run.limit)]
    embedder = Embedder(cfg.auction.memory.embedder)
    method = build_method(cfg, pool, embedder)
    cache = CallCache(cfg.run.cache) if cfg.run.cache else None
    journal = Journal(run_dir)
    records = journal.records()
    # The config of a run directory is fixed, so an arm can only go away when it is derived from data (random's arm
    # at SALE's measured share): its old results would sit beside the new arm's in every table, so they are dropped.
    stale = sorted({r["key"][0] for r in records} - set(method.arms))
    if stale:
        kept = [r for r in records if r["key"][0] in method.arms]
        journal.keep_only(kept)
        print(f"[sale] dropped {len(records) - len(kept)} journalled tasks of arms this run no longer has: "
              f"{', '.join(stale)}")
        records = kept
    done = {tuple(r["key"]) for r in records}
    n_orders = int(cfg.run.orders) if method.order_dependent else 1  # the other orders would repeat order 0
    if n_orders < int(cfg.run.orders):
        print(f"[sale] {cfg.method.name} does not depend on the task order: running 1 order, not {cfg.run.orders}")
    orders = task_orders(tasks, n_orders)
    run_orders = list(range(n_orders))
    if cfg.run.get("only_order") is not None:
        only = int(cfg.run.only_order)
        if not 0 <= only < n_orders:
            raise ValueError(f"run.only_order={only} is not one of this run's orders 0..{n_orders - 1}")
        run_orders = [only]
    work = [(arm, o, t) for arm in method.arms for o in run_orders for t in orders[o]]
    todo = sum((arm, o, t.id) not in done for arm, o, t in work)
    print(f"[sale] {cfg.method.name} on {len(tasks)} tasks x {len(run_orders)} orders x {len(method.arms)} arms, "
          f"pool {pool.name} ({', '.join(pool.names)}); {len(work) - todo} done, {todo} to run, "
          f"{concurrency} in flight -> {run_dir}")

    root = Ledger(pool, cache, method=cfg.method.name)
    bar = tqdm(total=todo, unit="task", dynamic_ncols=True, file=sys.stdout)
    totals = {"n": 0, "passed": 0.0, "usd": 0.0}
    progress = threading.Lock()

    def run_one(item):
        arm, o, position, task = item
        ledger = root.for_task(arm=arm, order=o, task_id=task.id)
        t0, started_at = time.perf_counter(), time.time()
        result, bids = method.run(arm, o, task, ledger)
        result.update(_accounting(ledger))
        result.update(arm=arm, method=cfg.method.name, order=o, position=position, task_id=task.id,
                      domain=task.domain, bin=task.bin, tau_minutes=task.tau_minutes, split=task.split,
                      description=task.description, wall_s=time.perf_counter() - t0, started_at=started_at,
                      finished_at=time.time())
        for b in bids:
            b.update(arm=arm, order=o)
        return result, ledger.calls, bids

    def on_done(item, out):  # in the task's thread: the journal is thread-safe, the progress bar takes a lock
        arm, o, _, task = item
        result, calls, bids = out
        journal.append((arm, o, task.id), result, calls, bids)
        with progress:
            totals["n"] += 1
            totals["passed"] += result["passed"]
            totals["usd"] += result["cost_usd"]
            # refresh=False: update() redraws at most every 0.1 s, so hundreds of tasks a second cost no terminal I/O
            bar.set_description(f"{arm[:20]} o{o} {task.id[-22:]}", refresh=False)
            bar.set_postfix(pass1=f"{totals['passed'] / totals['n']:.2f}", usd=f"{totals['usd']:.2e}", refresh=False)
            bar.update(1)

    for o in run_orders:
        for arm in method.arms:
            history = [r for r in records if r["key"][0] == arm and r["key"][1] == o]
            history.sort(key=lambda r: r["result"]["position"])
            method.start(arm, o, history)
    # Task-major within each order, so that an interrupted run has every arm on the same tasks so far. A method
    # whose tasks build on each other (SALE) runs each (arm, order) as one stream; otherwise every task is its own.
    items = [(arm, o, position, task) for o in run_orders for position, task in enumerate(orders[o])
             for arm in method.arms if (arm, o, task.id) not in done]
    if method.sequential:
        streams = [[it for it in items if it[:2] == (arm, o)] for o in run_orders for arm in method.arms]
    else:
        streams = [[it] for it in items]
    try:
        run_streams(streams, run_one, on_done, concurrency)
    finally:
        bar.close()
        pool.close()
    frames = journal.export()
    if cache is not None:
        print(f"[sale] call cache: {cache.hits} hits, {cache.misses} new calls ({cfg.run.cache})")
    print_summary(frames["results"], frames["calls"], pool)
    if cfg.run.figure:
        print(f"[sale] figure: {summary_figure(frames['results'], run_dir / 'summary.png')}")
    print(f"[sale] logs: {run_dir}/{{results,calls,bids}}.parquet")
    return run_dir


def _accounting(ledger) -> dict:
    auction_phases = ("bid", "jury", "refine")
    calls = ledger.calls
    def total(key, phases=None):
        return float(sum(c[key] for c in calls if phases is None or c["phase"] in phases))
    return {"tokens": total("tokens"), "cost_usd": total("cost_usd"),
            "exec_tokens": total("tokens", ("execute",)), "exec_cost_usd": total("cost_usd", ("execute",)),
            "auction_tokens": total("tokens", auction_phases), "auction_cost_usd": total("cost_usd", auction_phases),
            "n_calls": len(calls)}


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    from sale.concurrency import Interrupted
    from sale.llm import LLMError

    try:
        run(cfg)
    except Interrupted:
        print("[sale] stopped; every finished task is journalled: rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except (LLMError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
