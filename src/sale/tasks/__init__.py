"""Task sets: `load_tasks(cfg)` builds the list of tasks a run works on from a `tasks` config node.

    name: mixed                       # a label
    sources: [humaneval, phantomwiki] # in this order
    split: test                       # train | test | all
    per_bin: null                     # int: a seeded sample of that many tasks per bin per source; null: all
    seed: 0                           # seeds per_bin sampling (fixed, so the task set does not move with the run seed)
    bins: null                        # e.g. [1, 5]: keep only these complexity bins
    take_per_bin: null                # int: then keep the first n of each bin's sample (nested subsets of one
                                      # per_bin sample, so runs on them share cached LLM calls)

The order is deterministic: sources in the given order, then each source's own order (HumanEval order; PhantomWiki
universe by universe in generator order). Shuffling into task orders is the caller's business.
"""

from __future__ import annotations

import warnings
import zlib
from collections import Counter
from typing import cast

import numpy as np

from sale.tasks.base import N_BINS, Task
from sale.tasks.humaneval import load_humaneval
from sale.tasks.phantomwiki import load_phantomwiki

SOURCES = {"humaneval": load_humaneval, "phantomwiki": load_phantomwiki}
SPLITS = ("train", "test", "all")
CONFIG_KEYS = ("name", "sources", "split", "per_bin", "seed", "bins", "take_per_bin")

__all__ = ["SOURCES", "SPLITS", "Task", "load_tasks", "sample_per_bin"]


def _as_dict(cfg) -> dict:
    if hasattr(cfg, "_metadata"):  # an OmegaConf node
        from omegaconf import OmegaConf

        return cast(dict, OmegaConf.to_container(cfg, resolve=True))
    return dict(cfg)


def sample_per_bin(tasks: list[Task], per_bin: int, seed: int, source: str) -> list[Task]:
    """Up to per_bin tasks of each bin, drawn without replacement, kept in their original order.
    Each (source, bin) has its own generator, so restricting the bins does not change the other bins' draws."""
    keep = set()
    for b in sorted({t.bin for t in tasks}):
        members = [i for i, t in enumerate(tasks) if t.bin == b]
        if per_bin > len(members):
            warnings.warn(
                f"{source} bin {b}: per_bin={per_bin} but only {len(members)} tasks; taking all", stacklevel=3
            )
            keep.update(members)
            continue
        rng = np.random.default_rng([seed, b, zlib.crc32(source.encode())])
        keep.update(members[k] for k in rng.choice(len(members), size=per_bin, replace=False))
    return [t for i, t in enumerate(tasks) if i in keep]


def first_per_bin(tasks: list[Task], n: int) -> list[Task]:
    """The first n tasks of each bin, in order."""
    kept, seen = [], Counter[int]()
    for t in tasks:
        if seen[t.bin] < n:
            kept.append(t)
            seen[t.bin] += 1
    return kept


def load_tasks(cfg) -> list[Task]:
    cfg = _as_dict(cfg)
    unknown = sorted(set(cfg) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"tasks config: unknown keys {unknown}; known: {list(CONFIG_KEYS)}")
    sources = cfg.get("sources")
    if isinstance(sources, str):
        sources = [sources]
    if not sources:
        raise ValueError(f"tasks config: `sources` must name at least one of {sorted(SOURCES)}")
    bad = [s for s in sources if s not in SOURCES]
    if bad:
        raise ValueError(f"tasks config: unknown sources {bad}; known: {sorted(SOURCES)}")
    if len(set(sources)) != len(sources):
        raise ValueError(f"tasks config: a source is named twice in {sources}")
    split = cfg.get("split", "test")
    if split not in SPLITS:
        raise ValueError(f"tasks config: split must be one of {SPLITS}, got {split!r}")
    per_bin = cfg.get("per_bin")
    if per_bin is not None and (isinstance(per_bin, bool) or not isinstance(per_bin, int) or per_bin < 1):
        raise ValueError(f"tasks config: per_bin must be a positive integer or null, got {per_bin!r}")
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"tasks config: seed must be an integer, got {seed!r}")
    bins = cfg.get("bins")
    if bins is not None:
        bins = [bins] if isinstance(bins, int) else list(bins)
        if not bins or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= N_BINS for b in bins):
            raise ValueError(f"tasks config: bins must be a non-empty list of integers in 1..{N_BINS}, got {bins!r}")

    take = cfg.get("take_per_bin")
    if take is not None and (isinstance(take, bool) or not isinstance(take, int) or take < 1):
        raise ValueError(f"tasks config: take_per_bin must be a positive integer or null, got {take!r}")

    tasks = []
    for source in sources:
        pool = [t for t in SOURCES[source](split) if bins is None or t.bin in bins]
        if per_bin is not None:
            pool = sample_per_bin(pool, per_bin, seed, source)
        if take is not None:
            pool = first_per_bin(pool, take)
        tasks.extend(pool)
    return tasks
