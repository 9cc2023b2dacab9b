"""Does decoding in a batch change what a model writes, and how much faster is it? Greedy texts, entropies and
aggregate tokens per second of the same prompts, one at a time against N at once, on each agent of a pool
(llama.cpp batches the sequences of its parallel slots together). The speed-up is the engine's own ceiling for
run.concurrency on this machine.

    .venv/bin/python scripts/batch_numerics.py                # cpu pool, 8 prompts, 96 tokens, N = 4 (~5 min)

Writes data/bench/batch_numerics.{parquet,md}: per agent, how many of the greedy texts are identical, the largest
difference in mean entropy, where a differing text first departs (in characters), and tokens per second.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from sale import DATA_DIR
from sale.harness.concurrency import parallel_map
from sale.llm import load_pool

PROMPTS = [
    f"Write a Python function that returns the {k}-th prime number, then explain it briefly." for k in range(1, 5)
] + [
    f"Plan in three steps how to find who the {r} of a person is in a family wiki."
    for r in ("grandmother", "father-in-law", "nephew", "great-grandson")
]


def generate_all(pool_name: str, n: int, max_tokens: int) -> tuple[dict[str, list], dict[str, float]]:
    pool = load_pool(pool_name, concurrency=n)
    try:
        out, speed = {}, {}
        for agent in pool.names:
            llm = pool.llm(agent)
            llm.generate([{"role": "user", "content": "Hi"}], max_tokens=2, entropy=True)  # load and warm up
            t0 = time.perf_counter()
            out[agent] = parallel_map(
                lambda p: llm.generate([{"role": "user", "content": p}], max_tokens=max_tokens, entropy=True),
                PROMPTS,
                n,
            )
            speed[agent] = sum(g.completion_tokens for g in out[agent]) / (time.perf_counter() - t0)
        return out, speed
    finally:
        pool.close()


def first_difference(a: str, b: str) -> int | None:
    if a == b:
        return None
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", default="cpu")
    ap.add_argument("--n", type=int, default=4, help="sequences decoded at once")
    ap.add_argument("--max-tokens", type=int, default=96)
    args = ap.parse_args()
    (alone, speed_alone), (batched, speed_batched) = (
        generate_all(args.pool, 1, args.max_tokens),
        generate_all(args.pool, args.n, args.max_tokens),
    )
    rows = []
    for agent in alone:
        for i, (a, b) in enumerate(zip(alone[agent], batched[agent])):
            rows.append(
                {
                    "agent": agent,
                    "prompt": i,
                    "identical": a.text == b.text,
                    "first_difference_char": first_difference(a.text, b.text),
                    "entropy_alone": a.mean_entropy,
                    "entropy_batched": b.mean_entropy,
                    "abs_entropy_diff": abs(a.mean_entropy - b.mean_entropy),
                    "n": args.n,
                    "tok_per_s_alone": speed_alone[agent],
                    "tok_per_s_batched": speed_batched[agent],
                }
            )
    df = pd.DataFrame(rows)
    out = DATA_DIR / "bench" / "batch_numerics"
    df.to_parquet(out.with_suffix(".parquet"), index=False)
    summary = df.groupby("agent", sort=False).agg(
        identical=("identical", "sum"),
        prompts=("identical", "size"),
        max_abs_entropy_diff=("abs_entropy_diff", "max"),
        median_first_difference_char=("first_difference_char", "median"),
        tok_per_s_alone=("tok_per_s_alone", "first"),
        tok_per_s_batched=("tok_per_s_batched", "first"),
    )
    summary["speedup"] = summary["tok_per_s_batched"] / summary["tok_per_s_alone"]
    text = (
        f"# Greedy decoding alone against {args.n} at once (pool {args.pool}, {args.max_tokens} tokens)\n\n"
        f"Command: `.venv/bin/python scripts/batch_numerics.py {' '.join(sys.argv[1:])}`\n\n"
        f"{summary.to_markdown(floatfmt='.4f')}\n"
    )
    out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
