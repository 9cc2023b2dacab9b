"""Run directories: a crash-safe journal, and the parquet logs written from it.

    runs/<name>/
      config.yaml        the resolved config of the run (a rerun with another config is refused)
      journal.jsonl      append-only; one line per finished (arm, order, task): its result, calls and bids
      results.parquet    one row per (arm, order, task): who executed, passed, tokens, $, turns, trajectory
      calls.parquet      one row per LLM call: phase, agent, prompt/completion tokens, $, latency, entropy
      bids.parquet       SALE only: one row per bid: C, H, each juror's gamma, V, score, winner flags
      .hydra/            Hydra's own record of the command line

A killed run loses at most the tasks in flight: rerunning the same command skips every journalled task.
Concurrent writers are safe: threads of one run (run.concurrency) and processes sharing a run directory (SALE's
orders as separate cluster jobs, run.only_order) append whole lines under a file lock, and each export writes its
own temporary file before replacing the parquet.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

LOGS = ("results", "calls", "bids")


class Journal:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "journal.jsonl"
        self._thread_lock = threading.Lock()
        self._unsynced = threading.Event()
        self._sync_thread: threading.Thread | None = None
        with self._locked():
            self._repair()

    @contextmanager
    def _locked(self):
        """Exclusive access to the journal, across this process's threads and other processes."""
        with self._thread_lock, open(self.run_dir / ".journal.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _repair(self) -> None:
        """Drop a half-written last line left by a kill, so the next append starts on a clean line. Reads only the
        last byte unless there is something to repair."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
        data = self.path.read_bytes()
        self.path.write_bytes(data[: data.rfind(b"\n") + 1])

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self._locked():
            text = self.path.read_text()
        out = []
        for line in text.splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def done(self) -> set[tuple]:
        return {tuple(r["key"]) for r in self.records()}

    def append(self, key: tuple, result: dict, calls: list[dict], bids: list[dict] | None = None) -> None:
        record = {"key": list(key), "result": result, "calls": calls, "bids": bids or []}
        line = _encode([record])
        with self._locked():
            self._repair()  # another process may have been killed mid-line
            with open(self.path, "a") as f:
                f.write(line)
        # The line is now whole in the file: a killed process cannot lose it. The fsync, which guards against a
        # crash of the machine itself, runs on a background thread that syncs whatever has been appended since its
        # last sync (group commit), so a task's thread never waits for the disk; export() syncs at the end.
        if self._sync_thread is None:
            self._sync_thread = threading.Thread(target=self._sync_loop, name="sale-journal-fsync", daemon=True)
            self._sync_thread.start()
        self._unsynced.set()

    def _sync_loop(self) -> None:
        while True:
            self._unsynced.wait()
            self._unsynced.clear()
            self.sync()

    def sync(self) -> None:
        """Put every line appended so far on disk."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def keep_only(self, records: list[dict]) -> None:
        """Rewrite the journal (atomically) to hold just these records, e.g. those of `records()` still wanted."""
        with self._locked():
            tmp = self.path.with_suffix(f".jsonl.{os.getpid()}.tmp")
            _write_durably(tmp, "w", records)
            tmp.replace(self.path)

    def export(self) -> dict[str, pd.DataFrame]:
        """Write results/calls/bids parquet from the journal (atomically) and return them."""
        self.sync()
        frames = frames_from_records(self.records())
        for name, df in frames.items():
            path = self.run_dir / f"{name}.parquet"
            if df.empty:
                path.unlink(missing_ok=True)
                continue
            tmp = path.with_suffix(f".parquet.{os.getpid()}.tmp")
            df.to_parquet(tmp, index=False)
            tmp.replace(path)
        return frames


def frames_from_records(records: list[dict]) -> dict[str, pd.DataFrame]:
    return {
        "results": pd.DataFrame([r["result"] for r in records]),
        "calls": pd.DataFrame([c for r in records for c in r["calls"]]),
        "bids": pd.DataFrame([b for r in records for b in r["bids"]]),
    }


def read_journal(run_dir: str | Path) -> list[dict]:
    """The journal's complete lines, read-only (a half-written last line is skipped, not repaired)."""
    path = Path(run_dir) / "journal.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _encode(records: list[dict]) -> str:
    return "".join(json.dumps(r, default=_jsonable) + "\n" for r in records)


def _write_durably(path: Path, mode: str, records: list[dict]) -> None:
    """Write journal records, one JSON line each, and fsync them before returning."""
    with open(path, mode) as f:
        f.write(_encode(records))
        f.flush()
        os.fsync(f.fileno())


def _jsonable(obj):
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def load_logs(run_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The logs of a run directory (empty frames for the ones it does not have). An unfinished or interrupted run
    has no up-to-date parquet yet: when the journal holds more tasks than results.parquet, it is read instead."""
    run_dir = Path(run_dir)
    results_path = run_dir / "results.parquet"
    records = read_journal(run_dir)
    if records and (not results_path.exists() or len(pd.read_parquet(results_path, columns=["task_id"])) < len(records)):
        return frames_from_records(records)
    return {name: (pd.read_parquet(run_dir / f"{name}.parquet") if (run_dir / f"{name}.parquet").exists()
                   else pd.DataFrame()) for name in LOGS}
