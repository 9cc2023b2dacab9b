"""Backend speed benchmark: what each agent of a pool costs in time and memory, and what our interface adds.

For each agent (each in a fresh subprocess, so peak memory is its own) it measures
  load time; prompt processing tok/s (a fixed ~300-token prompt scored from a fresh context, which is also the
  cold score_options latency); warm score_options latency (llama.cpp reuses the cached prompt); greedy decode
  tok/s with a prompt that asks for long text (actual tokens generated are reported); peak RSS.
On a llama.cpp backend it also times the raw engine on the same prompt, same max_tokens, temperature 0, interleaved
with our generate, and reports ours/raw tokens/s and whether the two greedy texts are identical:
  xllamacpp (the default): raw = Server.handle_chat_completions with no log-probabilities; a bid-like call of ours
    (generate(entropy=True)) asks for the top 200 log-probabilities of every token and estimates its entropy from
    them; an execution-like call (generate(), no entropy) asks for none;
  llamacpp (optional, `make llamacpp`): raw = Llama.create_completion; a bid-like call computes the
    full-vocabulary entropy of every token in a logits processor, an execution-like one does not.
The machine may be shared: compare ratios within one run.

    .venv/bin/python scripts/bench_backends.py                          # cpu pool, xllamacpp (~5 min, 2 cores)
    .venv/bin/python scripts/bench_backends.py --server                 # + the embedded HTTP server, OpenAICompatLLM
    .venv/bin/python scripts/bench_backends.py --pool cpu cpu_llamacpp  # + llama-cpp-python, where it is built
    .venv/bin/python scripts/bench_backends.py --backends xllamacpp transformers   # + transformers on a GGUF file
    .venv/bin/python scripts/bench_backends.py --pool tiny              # transformers path on tiny random models
    .venv/bin/python scripts/bench_backends.py --transformers-path      # cpu_hf: agreement with llama.cpp, batched
                                                                        # jury, KV reuse, decode (~30 min, 2 cores)

Writes data/bench/backends.parquet (one row per agent x backend x measurement, with machine info) and
data/bench/backends.md, and prints the table. --transformers-path writes data/bench/transformers.{parquet,md}
(columns metric, value, agent) and data/bench/transformers_agreement.parquet (one row per prompt) instead, each
agent's rows as soon as it is measured (a later run with --agents replaces only those agents' rows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from statistics import median

from sale import DATA_DIR, REPO_ROOT
from sale.llm import AgentSpec, Pool, load_backend, load_pool

# A fixed ~300-token prompt (a jury-style question whose answer is one digit), and one that makes a model write.
LONG_PROMPT = (
    "You are reviewing a plan that another assistant wrote for a programming task. The task asks for a Python "
    "function that reads a list of transactions, each a dictionary with the keys 'account', 'amount' and "
    "'timestamp', and returns, for every account, the running balance after each transaction in time order. "
    "Amounts may be negative. Transactions can arrive out of order, and two transactions of the same account can "
    "share a timestamp, in which case they must keep the order in which they appear in the input. The function "
    "must not modify its input, must handle an empty list, and should run in O(n log n) time for n transactions. "
    "The plan says: first, copy the list and sort it by timestamp with a stable sort so that ties keep their "
    "input order; second, walk through the sorted list keeping a dictionary from account to its current "
    "balance, starting every new account at zero; third, after adding each amount, append the new balance to a "
    "list kept for that account; fourth, return the dictionary of lists. The plan also proposes three tests: an "
    "empty input, a single account with transactions given in reverse time order, and two accounts whose "
    "transactions interleave and share timestamps. It notes that floating point amounts may accumulate rounding "
    "error and suggests using decimal.Decimal when exact cents matter. Rate how likely this plan is to lead to a "
    "correct solution on a scale from 1 (certainly wrong) to 5 (certainly right). Answer with a single digit."
)
OPTIONS = ["1", "2", "3", "4", "5"]
ESSAY_PROMPT = (
    "Write a long, detailed essay of at least 1500 words on the history of the printing press, from "
    "woodblock printing in China to the rotary press, with many sections and examples."
)


LLAMA_CPP = ("xllamacpp", "llamacpp")


def job_spec(pool: Pool, agent: str, backend: str, threads: int | None = None) -> AgentSpec:
    spec = pool.spec(agent)
    if backend == spec.backend:
        return (
            replace(spec, options={**spec.options, "n_threads": threads}) if threads and backend in LLAMA_CPP else spec
        )
    # transformers on the agent's GGUF file: load_backend dequantises it (fp32 on the CPU)
    return AgentSpec(
        spec.name,
        backend,
        spec.params_b,
        spec.price,
        {"asset": spec.options["asset"], "dtype": "float32", "device": "cpu"},
    )


# ------------------------------------------------------------------------------- one agent, in a child process


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def raw_engine(llm, msgs: list[dict], n_new: int):
    """The engine's own call for the same greedy generation, without our entropy bookkeeping: (tokens, text)."""
    if getattr(llm, "engine", "") == "xllamacpp":
        out = llm.server.handle_chat_completions({"messages": msgs, "max_tokens": n_new, "temperature": 0.0, "seed": 0})
        return out["usage"]["completion_tokens"], out["choices"][0]["message"]["content"]
    out = llm.llm.create_completion(prompt=llm.prompt_tokens(msgs), max_tokens=n_new, temperature=0.0)
    return out["usage"]["completion_tokens"], out["choices"][0]["text"]


def cold_score_options(llm, msgs: list[dict]) -> tuple[int, float]:
    """score_options from a fresh context (no cached prefix): (prompt tokens, seconds)."""
    if getattr(llm, "engine", "") == "xllamacpp":
        t0 = time.perf_counter()
        out = llm.chat(
            msgs, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=llm.option_top_logprobs, cache_prompt=False
        )
        return out["usage"]["prompt_tokens"], time.perf_counter() - t0
    if hasattr(llm, "llm") and hasattr(llm.llm, "reset"):
        llm.llm.reset()  # llama-cpp-python: drop the cached prefix
    s = llm.score_options(msgs, OPTIONS)
    return s.prompt_tokens, s.latency_s


def bench_agent(llm, reps: int, n_new: int, raw: bool) -> dict:
    m = {}
    long_msgs = [{"role": "user", "content": LONG_PROMPT}]
    llm.score_options(long_msgs, OPTIONS)  # warm-up: thread pools, buffers
    cold, warm = [], []
    for _ in range(reps):
        n_prompt, dt = cold_score_options(llm, long_msgs)
        cold.append(dt)
        warm.append(llm.score_options(long_msgs, OPTIONS).latency_s)
    m["prompt_tokens"] = [n_prompt]
    m["pp_tok_s"] = [n_prompt / t for t in cold]
    m["score_options_cold_s"], m["score_options_warm_s"] = cold, warm

    msgs = [{"role": "user", "content": ESSAY_PROMPT}]
    llm.generate(msgs, max_tokens=8)  # warm-up; afterwards every side reuses the cached prompt alike
    # ours: an execution-like call (no entropy asked for); bid: a bid-like call (the entropy of every token)
    timings: dict[str, list] = {"ours": [], "bid": [], "raw": []}
    texts = set()
    sides = ["ours", "bid"] + (["raw"] if raw else [])
    for i in range(reps):
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:  # rotate the order against drift
            if side == "raw":
                (n, text), dt = timed(lambda: raw_engine(llm, msgs, n_new))
            else:  # the whole call, template included
                g, dt = timed(lambda: llm.generate(msgs, max_tokens=n_new, entropy=side == "bid"))
                n, text = g.completion_tokens, g.text
            timings[side].append((n, dt))
            texts.add(text)
    ours, bid, theirs = timings["ours"], timings["bid"], timings["raw"]
    m["decode_tokens"] = [n for n, _ in ours]
    m["decode_tok_s"] = [n / dt for n, dt in ours]
    m["bid_decode_tok_s"] = [n / dt for n, dt in bid]
    if raw:
        import numpy as np

        from sale.llm.base import entropy_from_logits, entropy_from_top_logprobs

        m["raw_decode_tokens"] = [n for n, _ in theirs]
        m["raw_decode_tok_s"] = [n / dt for n, dt in theirs]
        m["overhead_ratio"] = [median(m["decode_tok_s"]) / median(m["raw_decode_tok_s"])]
        m["bid_overhead_ratio"] = [median(m["bid_decode_tok_s"]) / median(m["raw_decode_tok_s"])]
        m["texts_equal"] = [float(len(texts) == 1)]  # greedy: every call of both sides wrote the same text
        if getattr(llm, "engine", "") == "xllamacpp":
            top = np.sort(np.random.default_rng(0).normal(size=llm.top_logprobs))[::-1] - 8.0
            m["entropy_ms"] = [
                timed(lambda: entropy_from_top_logprobs(top, llm.entropy_estimator))[1] * 1e3 for _ in range(30)
            ]
        else:
            logits = np.random.default_rng(0).normal(size=llm.llm.n_vocab()).astype(np.float32)
            m["entropy_ms"] = [timed(lambda: entropy_from_logits(logits))[1] * 1e3 for _ in range(30)]
    return m


def child(args) -> None:
    spec = job_spec(load_pool(args.pool), args.agent, args.backend, args.threads)
    llm, load_s = timed(lambda: load_backend(spec, pool_name=args.pool))
    m = {"load_s": [load_s], **bench_agent(llm, args.reps, args.decode_tokens, raw=args.backend in LLAMA_CPP)}
    m["peak_rss_mb"] = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]  # KiB on Linux
    Path(args.child).write_text(json.dumps(m))


# ----------------------------------------------------------------------------- the OpenAI-compatible server path


def bench_server(pool: Pool, agent: str, reps: int, n_new: int, threads: int) -> dict:
    """llama.cpp's own HTTP server (embedded in xllamacpp) on 127.0.0.1, through OpenAICompatLLM: the path that
    vLLM and SGLang servers take."""
    import httpx

    from sale.llm.assets import verified_asset
    from sale.llm.openai_compat import OpenAICompatLLM
    from sale.llm.xllamacpp_backend import XLlamaCppLLM

    t0 = time.perf_counter()
    server = XLlamaCppLLM(
        agent, verified_asset(pool.spec(agent).options["asset"], pool.name), n_ctx=4096, n_threads=threads
    )
    while httpx.get(f"{server.url}/models", timeout=5).status_code != 200:
        time.sleep(0.2)
    m = {"load_s": [time.perf_counter() - t0]}
    llm = OpenAICompatLLM(agent, server.url, agent)
    long_msgs = [{"role": "user", "content": LONG_PROMPT}]
    s = llm.score_options(long_msgs, OPTIONS)  # the first call sees a fresh context
    m["prompt_tokens"], m["score_options_cold_s"] = [s.prompt_tokens], [s.latency_s]
    m["pp_tok_s"] = [s.prompt_tokens / s.latency_s]
    m["score_options_warm_s"] = [llm.score_options(long_msgs, OPTIONS).latency_s for _ in range(reps)]
    msgs = [{"role": "user", "content": ESSAY_PROMPT}]
    llm.generate(msgs, max_tokens=8)
    gens = [timed(lambda: llm.generate(msgs, max_tokens=n_new)) for _ in range(reps)]
    m["decode_tokens"] = [g.completion_tokens for g, _ in gens]
    m["decode_tok_s"] = [g.completion_tokens / dt for g, dt in gens]
    server.close()
    return m


# ----------------------------------------------------------------------------------------------------- report

UNITS = {
    "load_s": "s",
    "prompt_tokens": "tokens",
    "pp_tok_s": "tok/s",
    "score_options_cold_s": "s",
    "score_options_warm_s": "s",
    "decode_tokens": "tokens",
    "decode_tok_s": "tok/s",
    "raw_decode_tokens": "tokens",
    "raw_decode_tok_s": "tok/s",
    "overhead_ratio": "ratio",
    "bid_decode_tok_s": "tok/s",
    "bid_overhead_ratio": "ratio",
    "texts_equal": "bool",
    "entropy_ms": "ms/token",
    "peak_rss_mb": "MiB",
}
COLUMNS = [
    ("load_s", "load s", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MiB", "{:.0f}"),
    ("prompt_tokens", "prompt tok", "{:.0f}"),
    ("pp_tok_s", "prompt tok/s", "{:.0f}"),
    ("score_options_cold_s", "score_options cold s", "{:.3f}"),
    ("score_options_warm_s", "score_options warm s", "{:.3f}"),
    ("decode_tokens", "new tok", "{:.0f}"),
    ("decode_tok_s", "execution-like tok/s", "{:.1f}"),
    ("bid_decode_tok_s", "bid-like tok/s", "{:.1f}"),
    ("raw_decode_tok_s", "raw engine tok/s", "{:.1f}"),
    ("overhead_ratio", "execution-like / raw", "{:.3f}"),
    ("bid_overhead_ratio", "bid-like / raw", "{:.3f}"),
    ("texts_equal", "same text", "{:.0f}"),
    ("entropy_ms", "entropy ms/tok", "{:.2f}"),
]


def engine_versions() -> str:
    from sale.llm import engine_id

    return ", ".join(engine_id(b) for b in ("xllamacpp", "llamacpp", "transformers") if "==" in engine_id(b))


def machine_info() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return {
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "loadavg_1m": os.getloadavg()[0],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "engines": engine_versions(),
        "git_commit": commit.stdout.strip(),
    }


def markdown(results: list[tuple[str, str, str, dict]], info: dict, command: str, threads: int | None) -> str:
    head = [c[1] for c in COLUMNS]
    lines = [
        f"Backend benchmark, {info['timestamp']}: {info['cpu_count']} x {info['cpu_model']}, load average "
        f"{info['loadavg_1m']:.2f} at start, Python {info['python']}, {info['engines']}, "
        f"commit {info['git_commit']}, llama.cpp threads {threads or 'per pool config (default: one per core)'}.",
        f"Command: `{command}`. Medians over repetitions; "
        "our generate's tok/s over the raw engine's on the same greedy call, the three interleaved: execution-like "
        "= generate() as an execution calls it (no entropy), bid-like = generate(entropy=True) as a bid calls it "
        "(the entropy of every token; xllamacpp asks for the top-200 log-probabilities of each); raw = "
        "xllamacpp's handle_chat_completions without log-probabilities, or llama-cpp-python's create_completion.",
        "",
        "| pool | agent | backend | " + " | ".join(head) + " |",
        "|---|---|---|" + "---:|" * len(head),
    ]
    for pool_name, agent, backend, m in results:
        cells = [fmt.format(median(m[key])) if key in m else "" for key, _, fmt in COLUMNS]
        lines.append(f"| {pool_name} | {agent} | {backend} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def transformers_path(args) -> None:
    """Agreement with llama.cpp, batched jury, KV reuse and decode speed of each cpu_hf agent, in one run."""
    import pandas as pd

    from sale.harness import transformers_check as tc

    info, command = machine_info(), " ".join([".venv/bin/python", *sys.argv])
    pool = load_pool("cpu_hf")
    agents = [a.name for a in pool.agents if not args.agents or a.name in args.agents]
    args.out.mkdir(parents=True, exist_ok=True)
    out, out_prompts = args.out / "transformers.parquet", args.out / "transformers_agreement.parquet"
    for agent in agents:  # each agent's rows replace its earlier ones as soon as they are measured
        print(
            f"[bench] cpu_hf / {agent}: agreement with llama.cpp on {args.prompts} prompts ...",
            file=sys.stderr,
            flush=True,
        )
        records, summary = tc.agreement(agent, n_prompts=args.prompts)
        rows = [{"agent": agent, "metric": k, "value": v} for k, v in summary.items() if k not in ("agent",)]
        llm = tc.load("cpu_hf", agent)
        print(f"[bench] cpu_hf / {agent}: speed ...", file=sys.stderr, flush=True)
        jury = tc.jury_batch_speedup(llm, n_plans=3, reps=args.reps)
        kv1 = tc.kv_reuse_speedup(llm, turn=6, max_tokens=1, reps=args.reps)
        kv32 = tc.kv_reuse_speedup(llm, turn=6, max_tokens=32, reps=args.reps)
        rows += [
            {"agent": agent, "metric": "jury_batched_speedup", "value": jury["speedup"]},
            {"agent": agent, "metric": "jury_batched_max_abs_gap", "value": jury["max_abs_gap"]},
            {"agent": agent, "metric": "jury_shared_token_share", "value": jury["shared_token_share"]},
            {"agent": agent, "metric": "kv_reuse_speedup_turn6", "value": kv1["speedup"]},
            {"agent": agent, "metric": "kv_reuse_speedup_turn6_32_tokens", "value": kv32["speedup"]},
            {"agent": agent, "metric": "kv_reuse_identical", "value": float(kv1["identical"] and kv32["identical"])},
            {"agent": agent, "metric": "turn6_prompt_tokens", "value": kv1["prompt_tokens"]},
            {"agent": agent, "metric": "decode_tok_s", "value": tc.decode_tok_s(llm)},
        ]
        llm.close()
        new = pd.DataFrame(rows)
        new["value"] = new["value"].astype(float)
        new["command"], new["cpu_model"], new["loadavg_1m"] = command, info["cpu_model"], os.getloadavg()[0]
        new["timestamp"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        old = pd.read_parquet(out) if out.exists() else new.iloc[:0]
        pd.concat([old[old.agent != agent], new]).to_parquet(out, index=False)
        old = pd.read_parquet(out_prompts) if out_prompts.exists() else pd.DataFrame({"agent": []})
        pd.concat([old[old.agent != agent], pd.DataFrame(records)]).to_parquet(out_prompts, index=False)
    df = pd.read_parquet(out)
    agents = [a.name for a in pool.agents if a.name in set(df.agent)]
    wide = df.pivot(index="metric", columns="agent", values="value")[agents]
    commands = "; ".join(f"`{c}`" for c in dict.fromkeys(df["command"]))
    table = (
        f"# The transformers path on real weights (pool cpu_hf, float32 on the CPU)\n\n{commands}; "
        f"{info['cpu_model']}, {info['cpu_count']} cores; load average when each agent finished: "
        + ", ".join(f"{a} {df[df.agent == a].loadavg_1m.iloc[0]:.1f}" for a in agents)
        + f". Agreement is against llama.cpp (pool cpu) on the same GGUF file; speed-ups are medians of "
        f"{args.reps} within one run.\n\n" + wide.to_markdown(floatfmt=".3g") + "\n"
    )
    (args.out / "transformers.md").write_text(table)
    print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pool",
        nargs="+",
        default=["cpu"],
        help="pool configs under conf/pool/, measured in one run (default: cpu; e.g. cpu cpu_llamacpp)",
    )
    ap.add_argument("--agents", nargs="+", help="only these agents (default: all of the pool)")
    ap.add_argument(
        "--backends",
        nargs="+",
        choices=["xllamacpp", "llamacpp", "transformers"],
        help="backends to run (default: each agent's own). Adding transformers on a llama.cpp pool runs "
        "it on the smallest agent's GGUF file only (dequantised to fp32; slow)",
    )
    ap.add_argument(
        "--server",
        action="store_true",
        help="also time the OpenAI-compatible path: llama.cpp's server (xllamacpp) on 127.0.0.1 with "
        "the smallest llama.cpp agent's file, through OpenAICompatLLM",
    )
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions of each measurement (default: 3)")
    ap.add_argument("--decode-tokens", type=int, default=128, help="new tokens per decode call (default: 128)")
    ap.add_argument("--threads", type=int, help="llama.cpp threads (default: the pool config's, else one per core)")
    ap.add_argument("--out", type=Path, default=DATA_DIR / "bench", help="output folder (default: data/bench)")
    ap.add_argument(
        "--transformers-path",
        action="store_true",
        help="measure the transformers path on pool cpu_hf instead (sale.harness.transformers_check)",
    )
    ap.add_argument("--prompts", type=int, default=20, help="agreement prompts per agent (--transformers-path)")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: measure one agent, write JSON here
    ap.add_argument("--agent", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.pool = args.pool[0]
        return child(args)
    if args.transformers_path:
        return transformers_path(args)

    pools = {name: load_pool(name) for name in args.pool}
    jobs = []  # (pool file, agent, backend)
    for name, pool in pools.items():
        agents = [a for a in pool.agents if not args.agents or a.name in args.agents]
        backends = args.backends or sorted({a.backend for a in agents})
        jobs += [(name, a.name, a.backend) for a in agents if a.backend in backends]
        gguf = [a for a in agents if a.backend in LLAMA_CPP]
        if "transformers" in backends and gguf:
            jobs.append((name, gguf[0].name, "transformers"))
    info, command = machine_info(), " ".join([".venv/bin/python", *sys.argv])
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for pool_name, agent, backend in jobs:
        print(f"[bench] {pool_name} / {agent} / {backend} ...", file=sys.stderr, flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    f.name,
                    "--pool",
                    pool_name,
                    "--agent",
                    agent,
                    "--backend",
                    backend,
                    "--reps",
                    str(args.reps),
                    "--decode-tokens",
                    str(args.decode_tokens),
                    *(["--threads", str(args.threads)] if args.threads else []),
                ],
                check=True,
            )
            results.append((pool_name, agent, backend, json.loads(Path(f.name).read_text())))
    first = next(iter(pools))
    gguf = [a for a in pools[first].agents if a.backend in LLAMA_CPP]
    if args.server and gguf:
        print(f"[bench] {gguf[0].name} / llama.cpp server over HTTP ...", file=sys.stderr, flush=True)
        results.append(
            (
                first,
                gguf[0].name,
                "openai (llama.cpp server)",
                bench_server(pools[first], gguf[0].name, args.reps, args.decode_tokens, args.threads or os.cpu_count()),
            )
        )

    import pandas as pd

    params = {a.name: a.params_b for pool in pools.values() for a in pool.agents}
    rows = [
        {
            "pool": pool_name,
            "agent": agent,
            "backend": backend,
            "params_b": params[agent],
            "measurement": key,
            "value": float(median(vals)),
            "unit": UNITS[key],
            "samples": [float(v) for v in vals],
            "reps": args.reps,
            "decode_max_tokens": args.decode_tokens,
            "threads": args.threads or 0,
            "command": command,
            **info,
        }
        for pool_name, agent, backend, m in results
        for key, vals in m.items()
    ]
    pd.DataFrame(rows).to_parquet(args.out / "backends.parquet", index=False)
    table = markdown(results, info, command, args.threads)
    (args.out / "backends.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
