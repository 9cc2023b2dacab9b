"""The Hydra entry point: run a method on a task set with an agent pool, log everything, print a summary.

    python -m sale.run experiment=demo                              # the README's main job (cpu pool)
    python -m sale.run method=single tasks=humaneval tasks.per_bin=2  # every agent alone
    python -m sale.run method=sale run.orders=5 auction.memory.enabled=false
    python -m sale.run --help                                       # every group and option

Rerunning the same command resumes: journalled tasks are skipped (see sale.runlog for the run directory).
run.concurrency=N keeps N tasks (and N calls per agent) in flight (sale.concurrency); results do not depend on N.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from sale import CONF_DIR
from sale.runlog import relative_to_data_dir

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


def check_same_config(run_dir: Path, cfg: DictConfig, save: bool = True) -> None:
    """A run directory belongs to one config: resuming it with another would mix results. save=False only
    compares (a new run's config is saved once the rest of its set-up has passed, so a bad value leaves no trace)."""
    path = run_dir / "config.yaml"
    keys = [k for k in FINGERPRINT_KEYS if k != "auction" or cfg.method.name in AUCTION_METHODS]
    current = {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
               for k in keys}
    if path.exists():
        saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        def comparable(k, value, data_dir):
            return _without_nulls(_without_guards(k, relative_to_data_dir(value, data_dir)))

        changed = [k for k in keys if comparable(k, saved.get(k), saved.get("data_dir", "data"))
                   != comparable(k, current[k], cfg.get("data_dir", "data"))]
        if changed:
            raise SystemExit(f"error: {run_dir} holds a run with a different config ({', '.join(changed)} differ).\n"
                             f"  Resume it with the same overrides, or choose another run.name=..."
                             + _engine_hint(saved.get("pool"), current["pool"]))
    elif save:
        from sale.runlog import storage_error

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
        raise ValueError(f"run.concurrency must be a positive integer (tasks in flight), got {value!r}; "
                         "e.g. run.concurrency=1 (the default) or run.concurrency=4")
    return value


def used_agents(method, pool) -> list[str]:
    """The agents a method can call: a single agent's arms, else the whole pool."""
    arms = list(getattr(method, "arms", []))
    return arms if arms and set(arms) <= set(pool.names) else pool.names


def verify_models(pool, agents: list[str]) -> None:
    """Check the model file of every agent that will run (sha256, or a built tiny model) before any loads: a
    truncated, corrupt or wrong file is an AssetError with the fix now, not after the first models have run."""
    from sale.assets import verified_asset

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


def preflight(argv: list[str]) -> str | None:
    """What must be refused before Hydra starts (it creates the run directory and writes its logs there first):
    an override of a key the config does not have, and a run directory that cannot be written. Returns the error, or
    None. Plain single runs only: with Hydra flags (-m, --config-dir, ...) Hydra checks alone."""
    from hydra import compose, initialize_config_dir

    if any(a.startswith("-") for a in argv):
        return None
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose("config", overrides=list(argv))
        run_dir = Path(str(cfg.run.dir))
    except Exception:
        return check_override_keys(argv)  # None for any other problem: Hydra reports it
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        why = "a read-only file system" if _read_only_fs(existing) else "no write permission"
        return (f"error: the run directory {run_dir} cannot be written ({existing}: {why}).\n"
                f"  fix: make it writable, or copy the run somewhere writable and point run.dir=... there")
    return None


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_override_keys(argv: list[str]) -> str | None:
    """The error for an override of a key the config does not have (a typo such as auction.jury.enabld=false),
    naming the closest keys; None when every key exists. Hydra refuses such an override too, but advises appending
    it (+key=...), which is never what a typo needs. Plain single runs only: with Hydra flags (-m, --config-dir, ...)
    Hydra checks alone."""
    import difflib

    from hydra import compose, initialize_config_dir
    from omegaconf import DictConfig

    if any(a.startswith("-") for a in argv):
        return None
    plain = [a for a in argv if "=" in a and not a.startswith(("+", "~"))]
    dotted = [a for a in plain if "." in a.split("=", 1)[0] and not a.startswith("hydra")]
    if not dotted:
        return None
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose("config", overrides=[a for a in plain if a not in dotted])
    except Exception:
        return None  # a bad group choice or value: Hydra says which
    for override in dotted:
        key = override.split("=", 1)[0]
        node, path = cfg, []
        for part in key.split("."):
            if not isinstance(node, DictConfig):
                break
            if part not in node.keys():
                known = [str(k) for k in node.keys()]
                where = ".".join(path) or "the config"
                close = difflib.get_close_matches(part, known, n=3, cutoff=0.6)
                guess = (f"did you mean {' or '.join('.'.join(path + [c]) for c in close)}?" if close
                         else f"{where} has no such key")
                return (f"error: {key} is not a config key (from the override {override}).\n"
                        f"  {guess} Keys of {where}: {', '.join(known)}.\n"
                        f"  To add a new key on purpose, write +{override}")
            node = node._get_node(part)
            path.append(part)
    return None


def run(cfg: DictConfig) -> Path:
    from tqdm.auto import tqdm

    from sale.concurrency import run_streams
    from sale.embeddings import Embedder
    from sale.ledger import Ledger
    from sale.llm import Pool
    from sale.llm.cache import open_cache
    from sale.methods import build_method
    from sale.runlog import Journal
    from sale.summary import print_summary, summary_figure
    from sale.tasks import load_tasks

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
    embedder = Embedder(cfg.auction.memory.embedder)
    method = build_method(cfg, pool, embedder)
    verify_models(pool, used_agents(method, pool))
    journal = Journal(run_dir)
    cache = open_cache(cfg)
    check_same_config(run_dir, cfg)
    records, unreadable, duplicates = journal.check()
    if unreadable:
        print(f"[sale] journal lines {unreadable} are not whole records (a damaged file): moved to "
              f"{run_dir / 'journal.unreadable.jsonl'}; their tasks run again", file=sys.stderr)
    if duplicates:
        print(f"[sale] {duplicates} tasks were journalled twice (the same run started twice at once?): "
              "each kept once", file=sys.stderr)
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
    _stop_on_sigterm()
    try:
        run_streams(streams, run_one, on_done, concurrency)
    finally:
        _default_sigterm()
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
    from sale import StorageError
    from sale.concurrency import Interrupted
    from sale.llm import LLMError

    try:
        run(cfg)
    except Interrupted:
        print("[sale] stopped; every finished task is journalled: rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except (LLMError, ValueError, FileNotFoundError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    problem = preflight(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(1)
    main()
