"""The harness's run loop: a method on a task set with an agent pool, every finished task journalled, resumed where
it stopped. A run directory belongs to one config (check_same_config) and records what made each task
(sale.harness.runlog). The command line around it is sale.run."""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from omegaconf import DictConfig, OmegaConf

from sale.harness.runlog import code_version, relative_to_data_dir

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
    return (
        f"\n  The run was made by the {'/'.join(engines(saved_pool))} engine and this config uses "
        f"{'/'.join(engines(pool))}: two engines write different text, so their results are never mixed. A pool "
        f"file with the run's backend resumes it (the committed cpu runs: pool=cpu_llamacpp, after `make llamacpp`)."
    )


# Keys that only allow or refuse a run, never change what it computes: they do not tie a run directory.
GUARD_KEYS = (("auction", "weights", "any_bid_cap"),)


def _without_guards(section: str, value):
    if not isinstance(value, dict):
        return value
    value = json.loads(json.dumps(value))
    for first, *path in GUARD_KEYS:
        if first == section:
            node = value
            for key in path[:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(path[-1], None)
    return value


def _without_prompts(value):
    if not isinstance(value, dict):
        return value
    return {k: v for k, v in value.items() if k != "prompts"}


def changed_prompts(saved: dict, current: dict, keys) -> list[str]:
    """The prompts (agent.prompts.<scaffold>.<name>, auction.prompts.<name>) that differ between two configs."""
    out = []
    for section in ("agent", "auction"):
        if section not in keys:
            continue
        old = (saved.get(section) or {}).get("prompts") or {}
        new = (current.get(section) or {}).get("prompts") or {}
        for name in sorted(set(old) | set(new)):
            if old.get(name) == new.get(name):
                continue
            if isinstance(old.get(name), dict) and isinstance(new.get(name), dict):
                out += [
                    f"{section}.prompts.{name}.{k}"
                    for k in sorted(set(old[name]) | set(new[name]))
                    if old[name].get(k) != new[name].get(k)
                ]
            else:
                out.append(f"{section}.prompts.{name}")
    return out


def check_same_config(run_dir: Path, cfg: DictConfig, save: bool = True) -> None:
    """A run directory belongs to one config: resuming it with another would mix results. save=False only
    compares (a new run's config is saved once the rest of its set-up has passed, so a bad value leaves no trace)."""
    path = run_dir / "config.yaml"
    keys = [k for k in FINGERPRINT_KEYS if k != "auction" or cfg.method.name in AUCTION_METHODS]
    current = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k] for k in keys}
    if path.exists():
        saved = cast(dict, OmegaConf.to_container(OmegaConf.load(path), resolve=True))

        def comparable(k, value, data_dir):
            return _without_nulls(_without_guards(k, relative_to_data_dir(value, data_dir)))

        def differs(k, view=lambda value: value) -> bool:
            """Whether section k of the saved and the current config differ, both seen through `view`."""
            return comparable(k, view(saved.get(k)), saved.get("data_dir", "data")) != comparable(
                k, view(current[k]), cfg.get("data_dir", "data")
            )

        changed = [k for k in keys if differs(k)]
        prompts = changed_prompts(saved, current, keys)
        if prompts and not any(differs(k, _without_prompts) for k in changed):
            raise SystemExit(
                f"error: {run_dir} was made with other prompts ({', '.join(prompts)} changed): choose "
                f"a new run.name=... for the new prompts, or restore them to resume"
            )
        if changed:
            raise SystemExit(
                f"error: {run_dir} holds a run with a different config ({', '.join(changed)} differ).\n"
                f"  Resume it with the same overrides, or choose another run.name=..."
                + _engine_hint(saved.get("pool"), cast(dict, current["pool"]))
            )
    elif save:
        from sale.harness.runlog import storage_error

        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".yaml.{os.getpid()}.tmp")
            OmegaConf.save(cfg, tmp, resolve=True)
            tmp.replace(path)
        except OSError as e:
            raise storage_error(run_dir, "write the run directory", e) from e


def _concurrency(cfg: DictConfig) -> int:
    value = cfg.run.get("concurrency")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"run.concurrency must be a positive integer (tasks in flight), got {value!r}; "
            "e.g. run.concurrency=1 (the default) or run.concurrency=4"
        )
    return value


def used_agents(method, pool) -> list[str]:
    """The agents a method can call: a single agent's arms, else the whole pool."""
    arms = list(getattr(method, "arms", []))
    return arms if arms and set(arms) <= set(pool.names) else pool.names


def verify_models(pool, agents: list[str]) -> None:
    """Check the model file of every agent that will run (sha256, or a built tiny model) before any loads: a
    truncated, corrupt or wrong file is an AssetError with the fix now, not after the first models have run."""
    from sale.llm.assets import verified_asset

    for name in agents:
        options = pool.spec(name).options
        for where in (options, options.get("serve") or {}):
            if where.get("asset"):
                verified_asset(where["asset"], pool.name)


def _stop_on_sigterm() -> None:
    """SIGTERM (kill, a cluster's time limit or pre-emption) stops a run as Ctrl-C does: no new task starts, the
    tasks in flight finish and are journalled, the servers stop; a rerun resumes."""
    import signal

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


def _default_sigterm() -> None:
    import signal

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@dataclass
class RunOutcome:
    run_dir: Path
    frames: dict  # results, calls, bids: the run's parquet logs
    pool: object  # sale.llm.Pool, closed
    cache: object  # sale.llm.cache.CallCache or None


def execute(cfg: DictConfig) -> RunOutcome:
    """Run every task of `cfg` not yet journalled in its run directory; the logs, the pool and the call cache."""
    from tqdm.auto import tqdm

    from sale.harness.concurrency import run_streams
    from sale.harness.ledger import Ledger
    from sale.harness.methods import build_method
    from sale.harness.runlog import Journal
    from sale.llm import Pool
    from sale.llm.cache import open_cache
    from sale.llm.embeddings import Embedder
    from sale.tasks import load_tasks
    from sale.tasks.sandbox import isolation_mode

    # Set-up, in an order that finds every bad input before any model loads: the run directory's config, the
    # values, the method (weights, train runs), the model files, the journal and the call cache. A new run's
    # config.yaml is written only then, so a bad value never ties the run directory to itself.
    run_dir = Path(cfg.run.dir)
    check_same_config(run_dir, cfg, save=False)
    concurrency = _concurrency(cfg)
    pool = Pool.from_config(cfg.pool, concurrency=concurrency, gpus=cfg.run.get("gpus"))
    pool.server_log_dir = run_dir / "servers"
    tasks = load_tasks(cfg.tasks)
    if cfg.run.limit:
        tasks = tasks[: int(cfg.run.limit)]
    if any(t.domain == "coding" for t in tasks):
        isolation_mode()  # picks the sandbox's mode now; without namespaces it warns, once, that code can read files
    embedder = Embedder(cfg.auction.memory.embedder)
    method = build_method(cfg, pool, embedder)
    verify_models(pool, used_agents(method, pool))
    journal = Journal(run_dir)
    cache = open_cache(cfg)
    check_same_config(run_dir, cfg)
    records, unreadable, duplicates = journal.check()
    if unreadable:
        print(
            f"[sale] journal lines {unreadable} are not whole records (a damaged file): moved to "
            f"{run_dir / 'journal.unreadable.jsonl'}; their tasks run again",
            file=sys.stderr,
        )
    if duplicates:
        print(
            f"[sale] {duplicates} tasks were journalled twice (the same run started twice at once?): each kept once",
            file=sys.stderr,
        )
    # The config of a run directory is fixed, so an arm can only go away when it is derived from data (random's arm
    # at SALE's measured share): its old results would sit beside the new arm's in every table, so they are dropped.
    stale = sorted({r["key"][0] for r in records} - set(method.arms))
    if stale:
        kept = [r for r in records if r["key"][0] in method.arms]
        journal.keep_only(kept)
        print(
            f"[sale] dropped {len(records) - len(kept)} journalled tasks of arms this run no longer has: "
            f"{', '.join(stale)}"
        )
        records = kept
    version = code_version()
    if records:
        first = min(records, key=lambda r: r["result"].get("started_at", 0))["result"]
        if first.get("commit") != version["commit"]:
            made_by = str(first["commit"])[:12] if first.get("commit") else "a commit not recorded (before provenance)"
            print(
                f"[sale] warning: this run's first task was made by {made_by}; this code is "
                f"{version['commit'][:12]}{' (dirty)' if version['dirty'] else ''}. Results holds the commit of "
                "each task.",
                file=sys.stderr,
            )
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
    print(
        f"[sale] {cfg.method.name} on {len(tasks)} tasks x {len(run_orders)} orders x {len(method.arms)} arms, "
        f"pool {pool.name} ({', '.join(pool.names)}); {len(work) - todo} done, {todo} to run, "
        f"{concurrency} in flight -> {run_dir}"
    )

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
        result.update(
            arm=arm,
            method=cfg.method.name,
            order=o,
            position=position,
            task_id=task.id,
            domain=task.domain,
            bin=task.bin,
            tau_minutes=task.tau_minutes,
            split=task.split,
            description=task.description,
            wall_s=time.perf_counter() - t0,
            started_at=started_at,
            finished_at=time.time(),
            commit=version["commit"],
            dirty=version["dirty"],
        )
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
    items = [
        (arm, o, position, task)
        for o in run_orders
        for position, task in enumerate(orders[o])
        for arm in method.arms
        if (arm, o, task.id) not in done
    ]
    if method.sequential:
        streams = [[it for it in items if it[:2] == (arm, o)] for o in run_orders for arm in method.arms]
    else:
        streams = [[it] for it in items]
    _stop_on_sigterm()
    try:
        run_streams(streams, run_one, on_done, concurrency)
    finally:
        _default_sigterm()
        bar.close()
        pool.close()
    return RunOutcome(run_dir, journal.export(), pool, cache)


def _accounting(ledger) -> dict:
    auction_phases = ("bid", "jury", "refine")
    calls = ledger.calls

    def total(key, phases=None):
        return float(sum(c[key] for c in calls if phases is None or c["phase"] in phases))

    return {
        "tokens": total("tokens"),
        "cost_usd": total("cost_usd"),
        "exec_tokens": total("tokens", ("execute",)),
        "exec_cost_usd": total("cost_usd", ("execute",)),
        "auction_tokens": total("tokens", auction_phases),
        "auction_cost_usd": total("cost_usd", auction_phases),
        "n_calls": len(calls),
    }
