"""A persistent, content-addressed cache of LLM calls.

The key is a hash of the model's identity (its file's sha256 where there is one), the full prompt and every
decoding parameter, so a rerun, another task order or a resumed run never pays twice for an identical call.
Each entry is committed at once (SQLite, WAL), so a killed run loses at most the calls in flight. Threads share
one connection behind a lock; processes sharing the file wait for each other's writes (busy_timeout).
Cost accounting is unaffected: a cached call is still charged its tokens in the logs, as the method would pay.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Sequence

from sale import StorageError
from sale.llm.base import Generation, LLM, Message, OptionScores


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
            self._db.execute("PRAGMA busy_timeout=60000")  # other processes (cluster jobs) may share the file
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("SELECT key FROM calls LIMIT 1").fetchall()
            self._db.execute("BEGIN IMMEDIATE")  # takes the write lock: fails now, not mid-run, if it cannot write
            self._db.execute("ROLLBACK")
        except (sqlite3.Error, OSError) as e:
            raise self._error("open", e) from e

    def _error(self, action: str, e: Exception) -> StorageError:
        reason = str(e)
        if "full" in reason or getattr(e, "errno", None) == 28:
            fix = "free some space, or point run.cache=... at another disk (run.cache=null: no cache), and rerun"
        elif "readonly" in reason or "read-only" in reason or "unable to open" in reason:
            fix = "make its directory writable, or point run.cache=... (or SALE_CACHE_DIR) somewhere writable"
        else:
            fix = (f"it only saves recomputation: move it away (mv {self.path} {self.path}.bad) or point run.cache=... "
                   "at another file, and rerun")
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

    def put(self, key: str, value: dict) -> None:
        with self._lock:
            try:
                self._db.execute("INSERT OR REPLACE INTO calls VALUES (?, ?)", (key, json.dumps(value)))
            except sqlite3.Error as e:
                raise self._error("write to", e) from e


class CachedLLM:
    """Any LLM, with its calls served from a CallCache when an identical call was made before."""

    def __init__(self, llm: LLM, model_key: str, cache: CallCache):
        self.llm = llm
        self.name = llm.name
        self.model_key = model_key
        self.cache = cache

    def generate(self, messages: Sequence[Message], max_tokens: int = 256, stop: Sequence[str] | None = None,
                 temperature: float = 0.0, seed: int = 0) -> Generation:
        key = CallCache.key(kind="generate", model=self.model_key, messages=list(messages), max_tokens=max_tokens,
                            stop=list(stop or []), temperature=temperature, seed=seed)
        hit = self.cache.get(key)
        if hit is not None:
            return dataclasses.replace(Generation(**hit), cached=True)
        gen = self.llm.generate(messages, max_tokens=max_tokens, stop=stop, temperature=temperature, seed=seed)
        self.cache.put(key, dataclasses.asdict(gen))
        return gen

    def score_options_batch(self, messages_list: Sequence[Sequence[Message]],
                            options: Sequence[str]) -> list[OptionScores]:
        """Each prompt from the cache where it was scored before; the others in one batch (see AgentGate)."""
        keys = [CallCache.key(kind="score_options", model=self.model_key, messages=list(m), options=list(options))
                for m in messages_list]
        out = [self.cache.get(k) for k in keys]
        out = [dataclasses.replace(OptionScores(**hit), cached=True) if hit is not None else None for hit in out]
        misses = [i for i, s in enumerate(out) if s is None]
        if misses:
            fresh = self.llm.score_options_batch([messages_list[i] for i in misses], options)
            for i, scores in zip(misses, fresh):
                self.cache.put(keys[i], dataclasses.asdict(scores))
                out[i] = scores
        return out

    def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        key = CallCache.key(kind="score_options", model=self.model_key, messages=list(messages), options=list(options))
        hit = self.cache.get(key)
        if hit is not None:
            return dataclasses.replace(OptionScores(**hit), cached=True)
        scores = self.llm.score_options(messages, options)
        self.cache.put(key, dataclasses.asdict(scores))
        return scores
