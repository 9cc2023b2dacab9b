"""The transformers path checked on real weights: agreement with llama.cpp, and what KV reuse and batching buy.

    agreement(agent)        pool cpu_hf (transformers, float32 from the dequantised GGUF) against pool cpu
                            (llama.cpp on the same GGUF file), on the same ~20 short prompts: greedy texts,
                            per-token entropies where the two texts still agree, and jury expected ratings
    jury_batch_speedup()    3 plans rated in one batched pass against one at a time
    kv_reuse_speedup()      the 6th turn of a conversation, with the previous turn's cache against from scratch

Used by tests/test_transformers_path.py (a few prompts) and scripts/bench_backends.py --transformers-path (all of
them, every agent; data/bench/transformers.{parquet,md}).
"""

from __future__ import annotations

import time

import numpy as np

PROMPTS = [
    "Write a Python function that returns the sum of a list of numbers.",
    "Write a Python function is_palindrome(s) that ignores case.",
    "What is 17 times 3? Answer with the number only.",
    "Name three prime numbers greater than 10.",
    "Write a Python one-liner that reverses a string s.",
    "Explain in one sentence what a hash map is.",
    "Write a Python function that counts the vowels in a string.",
    "Give a plan in three numbered steps to find someone's grandmother in an encyclopedia.",
    "What does the Python expression len('hello') return?",
    "Write a Python function fib(n) that returns the n-th Fibonacci number.",
    "Say hello in French.",
    "Write a Python function that removes duplicates from a list while keeping order.",
    "Which is larger, 2**10 or 10**3?",
    "Write a SQL query that counts the rows of a table named users.",
    "Write a Python function that checks whether a number is even.",
    "List the days of the week that start with T.",
    "Write a Python function that returns the maximum of three numbers.",
    "In one sentence, why do we write unit tests?",
    "Write a Python function that flattens a list of lists.",
    "Who wrote a biography if the biography is about a fictional person? Answer briefly.",
]

JURY_PLANS = [
    "1. Sort the list. 2. Return the middle element, or the mean of the two middle ones.",
    "Print hello world.",
    "1. Loop over the list keeping a running total. 2. Return it.",
    "Use recursion on the first element and the rest of the list.",
    "",
]


def load(pool_name: str, agent: str, **overrides):
    from sale.llm import AgentSpec, load_backend, load_pool

    pool = load_pool(pool_name)
    spec = pool.spec(agent)
    return load_backend(
        AgentSpec(spec.name, spec.backend, spec.params_b, spec.price, {**spec.options, **overrides}),
        pool_name=pool_name,
    )


def _msgs(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def jury_prompts(n: int) -> list[list[dict]]:
    from sale.auction.jury import jury_messages
    from sale.config import compose
    from sale.tasks import Task

    prompts = compose().auction.prompts

    tasks = [
        Task("check/sum", "coding", "Write a function that returns the sum of a list."),
        Task("check/median", "coding", "Write a function that returns the median of a list."),
    ]
    out = [jury_messages(t, p, prompts) for t in tasks for p in JURY_PLANS]
    return out[:n]


def agreement(agent: str, n_prompts: int = 20, max_tokens: int = 32, n_jury: int = 10) -> tuple[list[dict], dict]:
    """Per-prompt records and a summary: identical share, first divergent token, entropy gaps, jury correlation."""
    hf, cpp = load("cpu_hf", agent), load("cpu", agent)
    records = []
    try:
        for prompt in PROMPTS[:n_prompts]:
            a = hf.generate(_msgs(prompt), max_tokens=max_tokens, entropy=True)  # the entropies are compared
            b = cpp.generate(_msgs(prompt), max_tokens=max_tokens, entropy=True)
            same = 0  # tokens that agree from the start
            while same < min(len(a.tokens), len(b.tokens)) and a.tokens[same] == b.tokens[same]:
                same += 1
            gaps = np.abs(np.array(a.entropies[:same]) - np.array(b.entropies[:same])) if same else np.array([])
            records.append(
                {
                    "agent": agent,
                    "prompt": prompt,
                    "identical": a.text == b.text,
                    "first_divergence": None if a.text == b.text else same,
                    "transformers": a.text,
                    "llamacpp": b.text,
                    "entropy_mean_abs_gap": float(gaps.mean()) if len(gaps) else None,
                    "entropy_max_abs_gap": float(gaps.max()) if len(gaps) else None,
                }
            )
        options = [str(d) for d in range(6)]
        jury = jury_prompts(n_jury)
        ra = [s.expected_value() for s in hf.score_options_batch(jury, options)]
        rb = [cpp.score_options(m, options).expected_value() for m in jury]
    finally:
        for llm in (hf, cpp):
            close = getattr(llm, "close", None)
            if close:
                close()
    divergent = [r["first_divergence"] for r in records if r["first_divergence"] is not None]
    gaps = [r["entropy_mean_abs_gap"] for r in records if r["entropy_mean_abs_gap"] is not None]
    summary = {
        "agent": agent,
        "prompts": len(records),
        "identical_share": float(np.mean([r["identical"] for r in records])),
        "first_divergence_median": float(np.median(divergent)) if divergent else None,
        "entropy_mean_abs_gap": float(np.mean(gaps)) if gaps else None,
        "entropy_max_abs_gap": float(
            max(r["entropy_max_abs_gap"] for r in records if r["entropy_max_abs_gap"] is not None)
        )
        if gaps
        else None,
        "jury_pearson": float(np.corrcoef(ra, rb)[0, 1]),
        "jury_mean_abs_gap": float(np.mean(np.abs(np.array(ra) - np.array(rb)))),
    }
    return records, summary


def jury_batch_speedup(llm, n_plans: int = 3, reps: int = 3) -> dict:
    """Seconds to rate n_plans plans of one task one at a time (no kept cache) and batched (shared prefix once)."""
    prompts = jury_prompts(len(JURY_PLANS))[:n_plans]
    options = [str(d) for d in range(6)]
    single, batched = [], []
    for _ in range(reps):
        llm.kv_reuse = False
        llm.clear_cache()
        t0 = time.perf_counter()
        one = [llm.score_options(m, options) for m in prompts]
        single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        many = llm.score_options_batch(prompts, options)
        batched.append(time.perf_counter() - t0)
    llm.kv_reuse = True
    gap = max(abs(a.expected_value() - b.expected_value()) for a, b in zip(one, many))
    from sale.llm.transformers_backend import shared_prefix_len

    ids = [llm.prompt_ids(m) for m in prompts]
    tokens = [len(i) for i in ids]
    shared = shared_prefix_len(ids)
    return {
        "single_s": float(np.median(single)),
        "batched_s": float(np.median(batched)),
        "speedup": float(np.median(single) / np.median(batched)),
        "max_abs_gap": gap,
        "shared_token_share": shared * len(prompts) / sum(tokens),
    }


def conversation(turns: int) -> list[list[dict]]:
    """The prompts of a ReAct-like conversation, turn by turn, with fixed replies (so both runs see the same)."""
    msgs = [
        {"role": "system", "content": "You answer questions by searching an encyclopedia, one action a turn."},
        {"role": "user", "content": "Question: Who is the grandmother of Ann Lee?"},
    ]
    out = []
    for t in range(turns):
        out.append([dict(m) for m in msgs])
        msgs += [
            {"role": "assistant", "content": f"Thought: I need the next relation.\nAction: open[Person {t}]"},
            {
                "role": "user",
                "content": f"Observation: Person {t} is a teacher born in {1950 + t}. Their "
                f"mother is Person {t + 1}, their friends are Person {t + 7} and "
                f"Person {t + 9}, and they like chess, piano and gardening.",
            },
        ]
    return out


def kv_reuse_speedup(llm, turn: int = 6, max_tokens: int = 8, reps: int = 3) -> dict:
    """The turn-th prompt of a conversation: prefill from scratch against reuse of the previous turn's cache."""
    prompts = conversation(turn)
    scratch, reused, texts = [], [], []
    for _ in range(reps):
        llm.kv_reuse = False
        llm.clear_cache()
        t0 = time.perf_counter()
        a = llm.generate(prompts[-1], max_tokens=max_tokens)
        scratch.append(time.perf_counter() - t0)
        llm.kv_reuse = True
        llm.clear_cache()
        llm.generate(prompts[-2], max_tokens=max_tokens)  # the previous turn leaves its cache
        t0 = time.perf_counter()
        b = llm.generate(prompts[-1], max_tokens=max_tokens)
        reused.append(time.perf_counter() - t0)
        texts.append(a.text == b.text)
    return {
        "scratch_s": float(np.median(scratch)),
        "reused_s": float(np.median(reused)),
        "speedup": float(np.median(scratch) / np.median(reused)),
        "identical": all(texts),
        "prompt_tokens": a.prompt_tokens,
    }


def decode_tok_s(llm, max_tokens: int = 48) -> float:
    llm.clear_cache()
    gen = llm.generate(
        _msgs("Write a long Python module with many small functions and docstrings."), max_tokens=max_tokens
    )
    return gen.completion_tokens / gen.latency_s
