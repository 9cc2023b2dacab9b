"""A persistent, content-addressed cache of LLM calls.

The key is a hash of the model's identity (its file's sha256 where there is one), the full prompt and every
decoding parameter, so a rerun, another task order or a resumed run never pays twice for an identical call.
Each entry is committed at once (SQLite, WAL), so a killed run loses at most the calls in flight. Threads share
one connection behind a lock; processes sharing the file wait for each other's writes (busy_timeout).
Cost accounting is unaffected: a cached call is still charged its tokens in the logs, as the method would pay.

Shards carry the cache across machines. The file is git-ignored, so a fresh clone (every session, every cluster
node) would otherwise pay again for the calls behind the committed runs: the baselines, the weight fit and the
ablations replay executions and ratings that a scaling or SALE run already made. `python -m sale.llm.cache export
--pool cpu` writes the pool's entries that no shard holds yet as one new parquet shard under data/cache/<pool>/
(append-only: old shards never change), and every run imports the shards it has not seen (`run.cache_shards`).
Entries already in the file win. Each entry records its model key, so a shard holds one pool's calls only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Sequence, cast

from sale import StorageError
from sale.llm.base import LLM, Generation, Message, OptionScores

OPEN_TIMEOUT_S = 60.0  # how long opening waits for other processes that hold the file


class CallCache:
    """Any failure to use the file (corrupt, unreadable, a full disk, a read-only directory) is a StorageError that
    names the file and the fix; opening it checks it can be read and written, so a bad cache stops a run before any
    model loads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout={int(OPEN_TIMEOUT_S * 1000)}")  # other processes may share the file
            self._while_locked(self._prepare)
        except (sqlite3.Error, OSError) as e:
            raise self._error("open", e) from e

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        # The schema is written under the write lock taken up front: this also fails now, not mid-run, if the file
        # cannot be written.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL, model TEXT)")
            self._db.execute("CREATE TABLE IF NOT EXISTS imported_shards (name TEXT PRIMARY KEY)")
            if "model" not in {row[1] for row in self._db.execute("PRAGMA table_info(calls)")}:
                self._db.execute("ALTER TABLE calls ADD COLUMN model TEXT")  # a file from before shards
            self._db.execute("SELECT key FROM calls LIMIT 1").fetchall()
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    @staticmethod
    def _while_locked(step) -> None:
        """SQLite answers "database is locked" at once, without waiting out busy_timeout, when processes open one new
        file together (switching it to WAL needs the file to itself), so the set-up is retried until a deadline."""
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while True:
            try:
                return step()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _error(self, action: str, e: Exception) -> StorageError:
        reason = str(e)
        if "full" in reason or getattr(e, "errno", None) == 28:
            fix = "free some space, or point run.cache=... at another disk (run.cache=null: no cache), and rerun"
        elif "readonly" in reason or "read-only" in reason or "unable to open" in reason:
            fix = "make its directory writable, or point run.cache=... (or SALE_CACHE_DIR) somewhere writable"
        else:
            fix = (
                f"it only saves recomputation: move it away (mv {self.path} {self.path}.bad) or point run.cache=... "
                "at another file, and rerun"
            )
        return StorageError(f"cannot {action} the call cache {self.path}: {reason}.\n  fix: {fix}")

    @staticmethod
    def key(**parts) -> str:
        return hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def get(self, key: str) -> dict | None:
        with self._lock:
            try:
                row = self._db.execute("SELECT value FROM calls WHERE key = ?", (key,)).fetchone()
            except sqlite3.Error as e:
                raise self._error("read", e) from e
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: dict, model: str | None = None) -> None:
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO calls (key, value, model) VALUES (?, ?, ?)", (key, json.dumps(value), model)
                )
            except sqlite3.Error as e:
                raise self._error("write to", e) from e

    def import_shards(self, folder: str | Path) -> int:
        """Add the entries of every shard in `folder` not imported before (entries already here win). Returns how
        many entries were new."""
        import pyarrow.parquet as pq

        added = 0
        for shard in sorted(Path(folder).glob("*.parquet")):
            with self._lock:
                seen = self._db.execute("SELECT 1 FROM imported_shards WHERE name = ?", (shard.name,)).fetchone()
            if seen:
                continue
            try:
                rows = pq.read_table(shard, columns=["key", "value", "model"]).to_pylist()
            except Exception as e:  # a damaged shard only costs recomputation
                print(f"[cache] skipped {shard}: cannot read it ({e})", file=sys.stderr)
                continue
            with self._lock:
                try:
                    before = self._db.total_changes
                    self._db.execute("BEGIN")
                    self._db.executemany(
                        "INSERT OR IGNORE INTO calls (key, value, model) VALUES (?, ?, ?)",
                        [(r["key"], r["value"], r["model"]) for r in rows],
                    )
                    self._db.execute("INSERT INTO imported_shards VALUES (?)", (shard.name,))
                    self._db.execute("COMMIT")
                    added += self._db.total_changes - before - 1
                except sqlite3.Error as e:
                    self._db.execute("ROLLBACK")
                    raise self._error("import a shard into", e) from e
        return added

    def export_shard(
        self, folder: str | Path, models: set[str], include_unlabelled: bool = False
    ) -> tuple[Path | None, int]:
        """Write the entries of `models` that no shard in `folder` holds yet as one new shard; (its path, entries).
        include_unlabelled adds entries written before the cache recorded models (a file that served one pool)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        folder = Path(folder)
        held: set[str] = set()
        for shard in folder.glob("*.parquet"):
            held.update(pq.read_table(shard, columns=["key"]).column("key").to_pylist())
        with self._lock:
            marks = ",".join("?" * len(models))
            unlabelled = " OR model IS NULL" if include_unlabelled else ""
            rows = self._db.execute(
                f"SELECT key, value, model FROM calls WHERE model IN ({marks}){unlabelled} ORDER BY key", sorted(models)
            ).fetchall()
        rows = [r for r in rows if r[0] not in held]
        if not rows:
            return None, 0
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"calls-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.parquet"
        table = pa.table({name: [r[i] for r in rows] for i, name in enumerate(["key", "value", "model"])})
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd", compression_level=19)
        tmp.replace(path)
        return path, len(rows)


def open_cache(cfg) -> CallCache | None:
    """The run's call cache (`run.cache`; None when null), with the committed shards (`run.cache_shards`) it has
    not imported yet."""
    if not cfg.run.cache:
        return None
    cache = CallCache(cfg.run.cache)
    shards = cfg.run.get("cache_shards")
    if shards and Path(shards).is_dir():
        added = cache.import_shards(shards)
        if added:
            print(f"[cache] imported {added} calls from the shards in {shards}")
    return cache


class CachedLLM:
    """Any LLM, with its calls served from a CallCache when an identical call was made before."""

    def __init__(self, llm: LLM, model_key: str, cache: CallCache):
        self.llm = llm
        self.name = llm.name
        self.model_key = model_key
        self.cache = cache

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        entropy: bool = False,
    ) -> Generation:
        # The key leaves `entropy` out: asking for the entropy does not change what the model writes, so the calls
        # cached before the flag existed (all with entropy) keep answering. A hit without the entropy does not answer
        # a call that needs it; a hit with it answers a call that does not, as that call would have logged it.
        key = CallCache.key(
            kind="generate",
            model=self.model_key,
            messages=list(messages),
            max_tokens=max_tokens,
            stop=list(stop or []),
            temperature=temperature,
            seed=seed,
        )
        hit = self.cache.get(key)
        if hit is not None:
            cached = dataclasses.replace(Generation(**hit), cached=True)
            if not entropy:
                return cached.without_entropy()
            if cached.entropy_computed:
                return cached
        gen = self.llm.generate(
            messages, max_tokens=max_tokens, stop=stop, temperature=temperature, seed=seed, entropy=entropy
        )
        self.cache.put(key, dataclasses.asdict(gen), self.model_key)
        return gen

    def score_options_batch(
        self, messages_list: Sequence[Sequence[Message]], options: Sequence[str]
    ) -> list[OptionScores]:
        """Each prompt from the cache where it was scored before; the others as one group (see AgentGate)."""
        keys = [
            CallCache.key(kind="score_options", model=self.model_key, messages=list(m), options=list(options))
            for m in messages_list
        ]
        hits = [self.cache.get(k) for k in keys]
        out = [dataclasses.replace(OptionScores(**hit), cached=True) if hit is not None else None for hit in hits]
        misses = [i for i, s in enumerate(out) if s is None]
        if misses:
            # AgentGate passes the group on to a backend that groups ratings (transformers, llama.cpp), else one by one
            batch = self.llm.score_options_batch  # type: ignore[attr-defined]
            fresh = batch([messages_list[i] for i in misses], options)
            for i, scores in zip(misses, fresh):
                self.cache.put(keys[i], dataclasses.asdict(scores), self.model_key)
                out[i] = scores
        return cast(list[OptionScores], out)

    def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        key = CallCache.key(kind="score_options", model=self.model_key, messages=list(messages), options=list(options))
        hit = self.cache.get(key)
        if hit is not None:
            return dataclasses.replace(OptionScores(**hit), cached=True)
        scores = self.llm.score_options(messages, options)
        self.cache.put(key, dataclasses.asdict(scores), self.model_key)
        return scores


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m sale.llm.cache",
        description="Carry the call cache across machines: export a pool's new entries as a committed shard "
        "(runs import the shards they have not seen, run.cache_shards).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    export = sub.add_parser("export", help="write the pool's entries that no shard holds yet as a new shard")
    export.add_argument("--pool", default="cpu", help="the pool whose agents' calls to export (default: cpu)")
    export.add_argument("--cache", default=None, help="the cache file (default: the config's run.cache)")
    export.add_argument("--to", default=None, help="the shard folder (default: the config's run.cache_shards)")
    export.add_argument(
        "--include-unlabelled",
        action="store_true",
        help="also export entries written before the cache recorded each entry's model; only for a "
        "cache file that served this pool alone",
    )
    args = parser.parse_args(argv)

    from sale.config import compose
    from sale.llm import Pool

    cfg = compose(f"pool={args.pool}")
    pool = Pool.from_config(cfg.pool)
    models = {pool.model_key(name) for name in pool.names}
    cache_path = args.cache or cfg.run.cache
    folder = args.to or cfg.run.cache_shards
    if not Path(cache_path).exists():
        raise SystemExit(f"error: no call cache at {cache_path}; pass --cache PATH")
    path, n = CallCache(cache_path).export_shard(folder, models, args.include_unlabelled)
    if path is None:
        print(f"[cache] nothing new for pool {args.pool}: every entry of its {len(models)} agents is in {folder}")
    else:
        print(f"[cache] wrote {n} calls of pool {args.pool} to {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
