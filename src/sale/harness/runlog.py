"""Run directories: a crash-safe journal, and the parquet logs written from it.

    runs/<name>/
      config.yaml        the resolved config of the run, prompts included (a rerun with another config is refused)
      journal.jsonl      append-only; one line per finished (arm, order, task): its result, calls and bids
      results.parquet    one row per (arm, order, task): who executed, passed, tokens, $, turns, trajectory, and
                         the code that made it (commit; dirty: src/ or conf/ differed from that commit)
      calls.parquet      one row per LLM call: phase, agent, prompt/completion tokens, $, latency, and the
                         mean entropy where the call computed it (bids; empty for every other call)
      bids.parquet       SALE only: one row per bid: C, H, each juror's gamma, V, score, winner flags
      .hydra/, run.log   Hydra's own record of the command line and its log (not committed: they hold this
                         machine's paths, and every rerun rewrites them)

A killed run loses at most the tasks in flight: rerunning the same command skips every journalled task.
A damaged journal loses no finished task either: a half-written last line (a kill, a power cut) is cut off, a line
that is not a whole record (disk corruption, a stray edit) is moved to journal.unreadable.jsonl and its task is run
again, and a task journalled twice (the same command started twice at once) counts once. A write that fails (a
full disk, a read-only directory) stops the run with a StorageError naming the file and the fix.
Concurrent writers are safe: threads of one run (run.concurrency) and processes sharing a run directory (SALE's
orders as separate cluster jobs, run.only_order) append whole lines under a file lock, and each export writes its
own temporary file before replacing the parquet.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from sale import REPO_ROOT, StorageError, __version__

LOGS = ("results", "calls", "bids")
UNREADABLE = "journal.unreadable.jsonl"


DATA_DIR_PREFIX = "${data_dir}/"


def code_version() -> dict:
    """What code runs: the checkout's commit and whether src/ or conf/ differ from it (dirty), journalled with every
    task. Outside a git checkout (an installed package): the package version and dirty None."""

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", "src", "conf"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": f"sale=={__version__}", "dirty": None}
    return {"commit": commit, "dirty": dirty}


def relative_to_data_dir(value, data_dir: str):
    """Input paths under data_dir (the routers' train run, the weights file) written relative to it, as
    "${data_dir}/...": a set of runs staged under another data_dir (SALE_DATA_DIR=...) and moved in with
    its inputs stays the same run."""
    if isinstance(value, dict):
        return {k: relative_to_data_dir(v, data_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [relative_to_data_dir(v, data_dir) for v in value]
    root = data_dir.rstrip("/") + "/"
    if isinstance(value, str) and value.startswith(root):
        return DATA_DIR_PREFIX + value[len(root) :]
    return value


def storage_error(path, action: str, error: OSError) -> StorageError:
    """A StorageError that names the file, the OS's reason and the fix."""
    import errno

    reason = error.strerror or str(error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space (or point run.dir / run.cache elsewhere) and rerun the same command: it resumes"
    elif error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "make it writable, or copy the run directory somewhere writable and point run.dir=... there"
    else:
        fix = "fix the file system, then rerun the same command: it resumes"
    return StorageError(f"cannot {action} {path}: {reason}.\n  fix: {fix}")


class Journal:
    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "journal.jsonl"
        self._thread_lock = threading.Lock()
        self._unsynced = threading.Event()
        self._sync_thread: threading.Thread | None = None
        self._sync_error: OSError | None = None
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with self._locked():
                self._repair()
        except OSError as e:
            raise storage_error(self.path, "open the journal", e) from e

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
        os.truncate(self.path, data.rfind(b"\n") + 1)  # in place: no moment when the journal is gone

    def records(self) -> list[dict]:
        """Every journalled task once: lines that are not whole records are skipped, a repeated key keeps its
        first record."""
        if not self.path.exists():
            return []
        with self._locked():
            data = self.path.read_bytes()
        return parse_records(data)[0]

    def check(self) -> tuple[list[dict], list[int], int]:
        """records(), after setting the journal straight: lines that are not whole records are moved to
        journal.unreadable.jsonl (their tasks then run again) and repeated keys are dropped, in one atomic rewrite
        under the lock. Returns (records, line numbers set aside, duplicates dropped)."""
        if not self.path.exists():
            return [], [], 0
        try:
            with self._locked():
                data = self.path.read_bytes()
                records, bad, duplicates = parse_records(data)
                if bad or duplicates:
                    lines = data.split(b"\n")
                    with open(self.run_dir / UNREADABLE, "ab") as f:
                        f.write(b"".join(lines[i - 1] + b"\n" for i in bad))
                    tmp = self.path.with_suffix(f".jsonl.{os.getpid()}.tmp")
                    _write_durably(tmp, "w", records)
                    tmp.replace(self.path)
        except OSError as e:
            raise storage_error(self.path, "repair the journal", e) from e
        return records, bad, duplicates

    def done(self) -> set[tuple]:
        return {tuple(r["key"]) for r in self.records()}

    def append(self, key: tuple, result: dict, calls: list[dict], bids: list[dict] | None = None) -> None:
        record = {"key": list(key), "result": result, "calls": calls, "bids": bids or []}
        line = _encode([record])
        try:
            with self._locked():
                self._repair()  # another process may have been killed mid-line
                with open(self.path, "a") as f:
                    f.write(line)
        except OSError as e:  # what reached the file is a partial line: the next append or run cuts it off
            raise storage_error(self.path, "append to the journal", e) from e
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
            try:
                self.sync()
            except StorageError:
                pass  # kept in _sync_error: export() raises it

    def sync(self) -> None:
        """Put every line appended so far on disk."""
        if not self.path.exists():
            return
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            self._sync_error = e
            raise storage_error(self.path, "sync the journal to disk", e) from e

    def keep_only(self, records: list[dict]) -> None:
        """Rewrite the journal (atomically) to hold just these records, e.g. those of `records()` still wanted."""
        with self._locked():
            tmp = self.path.with_suffix(f".jsonl.{os.getpid()}.tmp")
            _write_durably(tmp, "w", records)
            tmp.replace(self.path)

    def export(self) -> dict[str, pd.DataFrame]:
        """Write results/calls/bids parquet from the journal (atomically) and return them."""
        self.sync()
        if self._sync_error is not None:
            raise storage_error(self.path, "sync the journal to disk", self._sync_error)
        frames = frames_from_records(self.records())
        for name, df in frames.items():
            path = self.run_dir / f"{name}.parquet"
            tmp = path.with_suffix(f".parquet.{os.getpid()}.tmp")
            try:
                if df.empty:
                    path.unlink(missing_ok=True)
                    continue
                df.to_parquet(tmp, index=False)
                tmp.replace(path)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise storage_error(path, "write", e) from e
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
    return parse_records(path.read_bytes())[0]


def parse_records(data: bytes) -> tuple[list[dict], list[int], int]:
    """The whole records of a journal's bytes, each key once (its first record). Also returns the line numbers
    (1-based) that are not whole records, and how many repeated keys were dropped. A last line without its newline
    (cut mid-write) is neither: the next append cuts it off."""
    lines = data.split(b"\n")
    if lines and lines[-1]:
        lines = lines[:-1]  # unterminated: half-written
    records, bad, seen, duplicates = [], [], set(), 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = tuple(record["key"])
            if not (
                len(key) == 3
                and isinstance(record["result"], dict)
                and isinstance(record["calls"], list)
                and isinstance(record.get("bids", []), list)
            ):
                raise ValueError("not a journal record")
        except (ValueError, KeyError, TypeError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            bad.append(number)
            continue
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        records.append(record)
    return records, bad, duplicates


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
    records = read_journal(run_dir)
    try:
        frames = {
            name: (
                pd.read_parquet(run_dir / f"{name}.parquet")
                if (run_dir / f"{name}.parquet").exists()
                else pd.DataFrame()
            )
            for name in LOGS
        }
    except Exception:  # a corrupt parquet (pyarrow raises its own types): the journal holds the same rows
        if not records:
            raise
        return frames_from_records(records)
    if records:
        missing = [name for name in LOGS if not (run_dir / f"{name}.parquet").exists()]
        if len(frames["results"]) < len(records) or missing:
            from_journal = frames_from_records(records)
            if len(frames["results"]) < len(records) or any(not from_journal[name].empty for name in missing):
                return from_journal
    return frames
