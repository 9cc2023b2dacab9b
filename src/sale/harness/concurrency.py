"""All of the repository's concurrency, in one place.

Two levels, both bounded by `run.concurrency` (N):
  tasks   `run_streams`: independent streams of tasks run on N worker threads. A stream is one task for a method
          whose tasks do not depend on each other, and a whole task order for SALE (its memory carries from one
          task to the next, so an order stays sequential).
  calls   `parallel_map`: the independent calls inside one task (an auction's bids, then its jury ratings).
And a gate per agent (`AgentGate`): at most N calls in flight to one agent, or 1 for an engine that is not
thread-safe (llama-cpp-python, transformers), so a model never sees more requests than it has slots for. Models
that compute on this machine's CPU also share one `CpuRoom`: one model computes at a time (its N calls batch
together), because two llama.cpp models computing at once on the same cores make each other several times slower
(their threads spin while they wait for a core).

With N = 1 nothing runs on a thread: every call happens in the order it did before concurrency existed.
Results do not depend on N: each task's calls are recorded in a fixed order (Ledger.map merges them by item, not by
completion), and every random draw is made before the calls it orders.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterable, Sequence

_call_pool: ThreadPoolExecutor | None = None
_call_pool_lock = threading.Lock()
CALL_THREADS = 256  # only a bound on threads: the agent gates bound what reaches a model


def _calls() -> ThreadPoolExecutor:
    global _call_pool
    with _call_pool_lock:
        if _call_pool is None:
            _call_pool = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="sale-call")
        return _call_pool


def parallel_map(fn: Callable[[Any], Any], items: Sequence, concurrency: int) -> list:
    """[fn(x) for x in items], run concurrently when concurrency > 1. Results come back in item order; the first
    failure (in item order) is raised once every item has finished, so no call is left running unseen."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    futures = [_calls().submit(fn, x) for x in items]
    wait(futures)
    return [f.result() for f in futures]


class Interrupted(Exception):
    """Ctrl-C during run_streams, raised once the tasks in flight have finished and been handed to on_done."""


def run_streams(
    streams: Iterable[list], run_one: Callable[[Any], Any], on_done: Callable[[Any, Any], None], concurrency: int
) -> None:
    """Run every item of every stream: items of one stream in order, streams concurrently on `concurrency` threads.
    on_done(item, result) is called in the item's thread as soon as it finishes (the runner journals it there), so it
    must be thread-safe. On the first failure no new item starts; the items in flight finish (and are handed to
    on_done), then the failure is raised. Ctrl-C does the same and raises Interrupted; a second Ctrl-C exits at once.
    """
    streams = [list(s) for s in streams if s]
    stop = threading.Event()

    def run_stream(stream: list) -> None:
        for item in stream:
            if stop.is_set():
                return
            try:
                result = run_one(item)
            except BaseException:
                stop.set()
                raise
            on_done(item, result)

    if concurrency <= 1:
        try:
            for stream in streams:
                run_stream(stream)
        except KeyboardInterrupt:
            raise Interrupted() from None
        return

    pool = ThreadPoolExecutor(concurrency, thread_name_prefix="sale-task")
    futures: list[Future] = [pool.submit(run_stream, s) for s in streams]
    interrupted = False
    try:
        wait(futures)  # a failure sets `stop`, so the other streams end after their item in flight
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        print(
            "\n[sale] interrupted: finishing the tasks in flight so that none is lost "
            "(Ctrl-C again to quit at once; a rerun resumes either way)",
            file=sys.stderr,
            flush=True,
        )
        previous = signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        try:
            wait(futures)
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for f in futures:
        error = None if f.cancelled() else f.exception()
        if error is not None:
            raise error
    if interrupted:
        raise Interrupted()
