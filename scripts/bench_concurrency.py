"""Concurrency benchmark: tasks per hour at N tasks in flight, against concurrency 1 of the same target.

Every point is a real `python -m sale.run` in a fresh subprocess and a fresh run directory, with no call cache;
throughput is read from the run's own log, in the steady state: the tasks finished after the first one, over the
time from the first task's end to the last's. The start-up (loading models, starting servers) and one-off warm-ups
(a PhantomWiki universe's search index, built by the first task) are left out. Each stub point is run 3 times
and the median kept.

  target=stub        the harness alone: pool=stub (sale.llm.stub_server, a STUB that answers every call after a
                     fixed delay, 0.2 s) on PhantomWiki tasks, one call each. Speed-up against N shows whether the
                     harness could keep a GPU server's N slots busy; the overhead per call is what a call costs
                     beyond the stub's delay at N = 1 (runner, ledger, HTTP client, JSON, grading, journal with fsync).
  target=cpu_server  real models: pool=cpu_server (one llama.cpp server per agent, N slots each), method=single with
                     the two smaller agents on a fixed PhantomWiki sample (each task a multi-turn search episode).

    .venv/bin/python scripts/bench_concurrency.py                           # both (~20 min on 2 cores)
    .venv/bin/python scripts/bench_concurrency.py --targets stub --stub-levels 1 8 64

Writes data/bench/concurrency.parquet (target, concurrency, tasks, calls, elapsed_s, tasks_per_hour, speedup,
efficiency = speedup / N, overhead_ms_per_call, machine) and data/bench/concurrency.md. The machine may be shared:
compare the ratios, measured in one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from sale import DATA_DIR, REPO_ROOT

STUB_DELAY_S = 0.2
RAW_BODY = {
    "model": "m",
    "messages": [{"role": "user", "content": "x" * 2000}],
    "max_tokens": 192,
    "logprobs": True,
    "top_logprobs": 1,
}  # the request of the raw-client measurements
TARGETS = {
    "stub": ["pool=stub", f"pool.agents.stub.serve.delay_s={STUB_DELAY_S}", "tasks=phantomwiki", "method=single"],
    "cpu_server": [
        "pool=cpu_server",
        "tasks=phantomwiki",
        "tasks.per_bin=2",
        "method=single",
        "method.agents=[smollm2-135m,qwen2.5-coder-0.5b]",
    ],
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def raw_http_ms(n: int = 300) -> float:
    """A plain httpx client's round trip to a zero-delay stub: the share of the overhead that is HTTP itself."""
    import httpx

    from sale.llm.local_server import LocalServer

    server = LocalServer("raw-http", None, engine="stub", delay_s=0.0).start()
    try:
        with httpx.Client() as client:
            for i in range(n + 20):
                if i == 20:
                    t0 = time.perf_counter()
                client.post(server.base_url + "/chat/completions", json=RAW_BODY).raise_for_status()
        return (time.perf_counter() - t0) / n * 1000
    finally:
        server.stop()


def raw_client_calls_per_s(levels: list[int], seconds: float = 4.0) -> dict[int, float]:
    """What a plain httpx client (N threads, no harness) gets from the same stub: the ceiling of this machine."""
    import threading

    import httpx

    from sale.llm.local_server import LocalServer

    server = LocalServer("raw-client", None, engine="stub", delay_s=STUB_DELAY_S).start()
    out = {}
    try:
        for n in levels:
            done, stop = [0], threading.Event()
            client = httpx.Client(limits=httpx.Limits(max_connections=None, max_keepalive_connections=256))

            def worker():
                while not stop.is_set():
                    client.post(server.base_url + "/chat/completions", json=RAW_BODY).raise_for_status()
                    done[0] += 1

            threads = [threading.Thread(target=worker) for _ in range(n)]
            for t in threads:
                t.start()
            time.sleep(1.0)  # warm up: connections open
            start, count = time.perf_counter(), done[0]
            time.sleep(seconds)
            out[n] = (done[0] - count) / (time.perf_counter() - start)
            stop.set()
            for t in threads:
                t.join()
            client.close()
    finally:
        server.stop()
    return out


def run_point(target: str, n: int, extra: list[str], workdir: Path) -> dict:
    run_dir = workdir / f"{target}-{n}"
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "sale.run",
        *TARGETS[target],
        *extra,
        f"run.concurrency={n}",
        f"run.dir={run_dir}",
        "run.cache=null",
        "run.figure=false",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"{target} at {n} in flight failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    results = pd.read_parquet(run_dir / "results.parquet")
    calls = pd.read_parquet(run_dir / "calls.parquet")
    # Steady state: from the first task's end to the last's, so one-off warm-ups (a universe's search index, the
    # servers' first prompts) are left out.
    first_done = float(results["finished_at"].min())
    elapsed = float(results["finished_at"].max() - first_done)
    after = results["started_at"] >= first_done - 1e-9
    steady_calls = calls["task_id"].isin(results.loc[results["finished_at"] > first_done, "task_id"]).sum()
    n_done = int((results["finished_at"] > first_done).sum())
    row = {
        "target": target,
        "concurrency": n,
        "tasks": len(results),
        "calls": len(calls),
        "elapsed_s": elapsed,
        "tasks_per_hour": n_done / elapsed * 3600,
        "calls_per_s": steady_calls / elapsed,
        "tasks_started_after_first_done": int(after.sum()),
        "mean_call_latency_s": float(calls["latency_s"].mean()),
        "pass1": float(results["passed"].mean()),
        "wall_with_startup_s": time.perf_counter() - t0,
    }
    if target == "stub":
        row["overhead_ms_per_call"] = (n / row["calls_per_s"] - STUB_DELAY_S) * 1000
        row["http_overhead_ms_per_call"] = (row["mean_call_latency_s"] - STUB_DELAY_S) * 1000
    print(
        f"  {target:10s} N={n:3d}: {len(results)} tasks, {len(calls)} calls in {elapsed:7.1f} s -> "
        f"{row['tasks_per_hour']:9.0f} tasks/h",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="+", default=["stub", "cpu_server"], choices=sorted(TARGETS))
    ap.add_argument("--stub-levels", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64])
    ap.add_argument("--server-levels", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--stub-tasks", type=int, default=256, help="PhantomWiki tasks per stub point")
    ap.add_argument(
        "--stub-repeats",
        type=int,
        default=3,
        help="runs per stub point; the median is kept (a point at 64 lasts about a second, so one "
        "scheduling hiccup on a shared machine would decide it)",
    )
    ap.add_argument("--out", default=str(DATA_DIR / "bench" / "concurrency"))
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="sale-bench-concurrency-") as tmp:
        for target in args.targets:
            levels = args.stub_levels if target == "stub" else args.server_levels
            extra = [f"run.limit={args.stub_tasks}", "tasks.per_bin=null"] if target == "stub" else []
            print(f"[bench] {target}: {levels} in flight", flush=True)
            for n in levels:
                repeats = args.stub_repeats if target == "stub" else 1
                runs = [run_point(target, n, extra, Path(tmp) / f"r{i}") for i in range(repeats)]
                median = sorted(runs, key=lambda r: r["tasks_per_hour"])[len(runs) // 2]
                rows.append(
                    {
                        **median,
                        "repeats": repeats,
                        "tasks_per_hour_all": ", ".join(f"{r['tasks_per_hour']:.0f}" for r in runs),
                    }
                )
    df = pd.DataFrame(rows)
    if "stub" in args.targets:
        stub = df["target"] == "stub"
        df.loc[stub, "raw_http_ms"] = raw_http_ms()
        raw = raw_client_calls_per_s(args.stub_levels)
        df.loc[stub, "raw_client_calls_per_s"] = df.loc[stub, "concurrency"].map(raw)
        df.loc[stub, "harness_vs_raw_client"] = df.loc[stub, "calls_per_s"] / df.loc[stub, "raw_client_calls_per_s"]
    base = df[df["concurrency"] == 1].set_index("target")["tasks_per_hour"]
    df["speedup"] = df["tasks_per_hour"] / df["target"].map(base)
    df["efficiency"] = df["speedup"] / df["concurrency"]
    df["machine"] = f"{cpu_name()}, {os.cpu_count()} cores"
    df["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.with_suffix(".parquet").exists():  # keep the other targets' rows from an earlier run
        earlier = pd.read_parquet(out.with_suffix(".parquet"))
        df = pd.concat([earlier[~earlier["target"].isin(args.targets)], df], ignore_index=True)
    df.to_parquet(out.with_suffix(".parquet"), index=False)
    cols = ["target", "concurrency", "tasks", "calls", "elapsed_s", "tasks_per_hour", "speedup", "efficiency"]
    cols += [
        c
        for c in (
            "overhead_ms_per_call",
            "http_overhead_ms_per_call",
            "raw_http_ms",
            "raw_client_calls_per_s",
            "harness_vs_raw_client",
        )
        if c in df
    ]
    table = df[cols].to_markdown(index=False, floatfmt=".2f")
    text = (
        f"# Concurrency benchmark\n\n{df['machine'].iloc[0]}, {df['date'].iloc[0]}. Command: "
        f"`.venv/bin/python scripts/bench_concurrency.py [--targets ...]` (one target at a time keeps the other's "
        f"rows).\n\n"
        f"speedup: tasks per hour against N = 1 of the same target; efficiency = speedup / N. stub: a stub "
        f"server answering after {STUB_DELAY_S} s (not a model); overhead_ms_per_call: the run's time per call "
        f"beyond the stub's delay (runner, ledger, grading, journal, HTTP); http_overhead: the call's latency "
        f"beyond the delay as our client saw it; raw_http_ms: a plain httpx client's round trip to a zero-delay "
        f"stub (HTTP alone); raw_client_calls_per_s: N threads of a plain httpx client against the same 0.2 s stub "
        f"(no harness), the ceiling of this machine; harness_vs_raw_client: the run's calls per second against "
        f"it.\n\n{table}\n"
    )
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
