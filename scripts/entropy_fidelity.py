"""How far the default engine's entropies and jury ratings are from the full-vocabulary ones.

xllamacpp (llama.cpp's server) returns the top-k log-probabilities of each generated token, not the whole
distribution, so a bid's entropy H(s) is estimated from them (sale.llm.base.entropy_from_top_logprobs). The
reference is the committed logs: every bid and jury rating there was computed by llama-cpp-python over the full
vocabulary of the same GGUF files. This script regenerates those bids greedily with xllamacpp, keeps the
top-200 log-probabilities of every token, and compares, on the bids whose text came out identical:
  each estimator (renormalised over the top k, or the top k plus a tail bound) at k = 20, 50, 100, 200,
  against the committed full-vocabulary mean entropy (signed and absolute error, rank correlation);
and, for the jury, every juror's expected rating of the committed plan under both engines.

    .venv/bin/python scripts/entropy_fidelity.py --tasks 20     # 10 coding + 10 deep-search tasks, 3 bids each

The bids are the first task order of data/runs/main-sale-cpu/bids.parquet (unrefined bids), the only committed
bids whose plan text is logged. No estimator was tuned on them: the default (tail_bound) was chosen beforehand
because it is a lower bound whose top-k terms are exact; this script only measures. Writes
data/bench/entropy_fidelity.parquet (one row per bid) and data/bench/entropy_fidelity.md.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr
from tqdm import tqdm

from sale import DATA_DIR
from sale.auction.bids import bid_messages
from sale.auction.jury import jury_messages
from sale.config import compose
from sale.llm import load_pool
from sale.llm.base import ENTROPY_ESTIMATORS, entropy_from_top_logprobs
from sale.tasks.humaneval import load_humaneval
from sale.tasks.phantomwiki import load_phantomwiki

KS = (20, 50, 100, 200)
K_REFERENCE = 5000  # the reference: the top 5000 bracket the full-vocabulary entropy to within the width reported
OUT = DATA_DIR / "bench"
BID_MAX_TOKENS = 128
OPTIONS = ["0", "1", "2", "3", "4", "5"]
PROMPTS = compose().auction.prompts  # the bid and jury prompts of the default config
VOCAB = {"smollm2-135m": 49152, "qwen2.5-coder-0.5b": 151936, "qwen2.5-coder-1.5b": 151936}  # GGUF n_vocab


def committed_bids() -> pd.DataFrame:
    b = pd.read_parquet(DATA_DIR / "runs" / "main-sale-cpu" / "bids.parquet")
    return b[(b.order == 0) & ~b.refined]


def pick_tasks(bids: pd.DataFrame, n: int) -> list[str]:
    """n tasks, half per domain, spread over the bins (the first of each bin, then the next, ...)."""
    ids = bids.drop_duplicates("task_id")[["task_id"]].copy()
    ids["domain"] = np.where(ids.task_id.str.startswith("humaneval"), "coding", "search")
    picked = []
    for _, group in ids.groupby("domain"):
        picked += list(group.task_id.iloc[: n // 2])
    return picked


def entropy_bracket(logprobs: list[float], vocab: int) -> tuple[float, float]:
    """Lower and upper bounds on the full-vocabulary entropy from the top-k log-probabilities: the tail mass r
    sits either at the smallest listed probability (lower) or spread evenly over the vocab - k others (upper)."""
    lp = np.asarray(logprobs, dtype=np.float64)
    p = np.exp(lp)
    head, tail = float(-(p * lp).sum()), max(0.0, 1.0 - float(p.sum()))
    upper = head + (tail * np.log((vocab - len(lp)) / tail) if tail > 0 else 0.0)
    return head + tail * float(-lp.min()), float(upper)


def mean_estimates(steps: list[dict], vocab: int) -> dict:
    lo, hi = (
        zip(*(entropy_bracket([a["logprob"] for a in s["top_logprobs"]], vocab) for s in steps))
        if steps
        else ([0.0], [0.0])
    )
    out = {"H_ref_lo": float(np.mean(lo)), "H_ref_hi": float(np.mean(hi))}
    for k in KS:
        for est in ENTROPY_ESTIMATORS:
            h = [entropy_from_top_logprobs([a["logprob"] for a in s["top_logprobs"][:k]], est) for s in steps]
            out[f"H_{est}_k{k}"] = float(np.mean(h)) if h else 0.0
    out["top200_mass"] = float(np.mean([np.exp([a["logprob"] for a in s["top_logprobs"][:200]]).sum() for s in steps]))
    return out


def run(n_tasks: int, jury_tasks: int) -> pd.DataFrame:
    pool = load_pool("cpu")
    tasks = {t.id: t for t in load_humaneval("all") + load_phantomwiki("all")}
    bids = committed_bids()
    ids = pick_tasks(bids, n_tasks)
    rows = []
    for i, task_id in enumerate(tqdm(ids, desc="tasks", file=sys.stderr)):
        task = tasks[task_id]
        for _, ref in bids[bids.task_id == task_id].iterrows():
            llm = pool.llm(ref.agent)
            out = llm.chat(
                bid_messages(task, BID_MAX_TOKENS, PROMPTS),
                max_tokens=BID_MAX_TOKENS,
                temperature=0.0,
                seed=0,
                logprobs=True,
                top_logprobs=K_REFERENCE,
            )
            steps = out["choices"][0]["logprobs"]["content"]
            plan = (out["choices"][0]["message"]["content"] or "").strip()
            row = {
                "task_id": task_id,
                "domain": task.domain,
                "bin": task.bin,
                "agent": ref.agent,
                "tokens": len(steps),
                "ref_tokens": int(ref.tokens),
                "H_full_ref": float(ref.entropy),
                "same_plan": ref.plan == plan,
                **mean_estimates(steps, VOCAB[ref.agent]),
            }
            if i < jury_tasks:
                for juror in pool.names:
                    s = pool.llm(juror).score_options(jury_messages(task, ref.plan, PROMPTS), OPTIONS)
                    row[f"gamma_new_{juror}"] = s.expected_value()
                    row[f"gamma_ref_{juror}"] = float(ref[f"gamma_{juror}"])
                    row[f"option_mass_{juror}"] = s.option_mass
            rows.append(row)
    return pd.DataFrame(rows)


def error_table(d: pd.DataFrame, reference: str) -> list[str]:
    lines = [
        "| estimator | k | mean error (nats) | mean abs error | max abs error | rel. abs error | Spearman ρ |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for est in ENTROPY_ESTIMATORS:
        for k in KS:
            err = d[f"H_{est}_k{k}"] - d[reference]
            rho = spearmanr(d[f"H_{est}_k{k}"], d[reference]).statistic if len(d) > 2 else float("nan")
            rel = (err.abs() / d[reference].clip(lower=1e-9)).mean()
            lines.append(
                f"| {est} | {k} | {err.mean():+.4f} | {err.abs().mean():.4f} | {err.abs().max():.4f} "
                f"| {rel:.1%} | {rho:.3f} |"
            )
    return lines + [""]


def summarise(d: pd.DataFrame) -> list[str]:
    same = d[d.same_plan]
    width = d.H_ref_hi - d.H_ref_lo
    lines = [
        f"{d.task_id.nunique()} tasks ("
        f"{', '.join(f'{n} {dom}' for dom, n in d.groupby('domain').task_id.nunique().items())}), "
        f"{len(d)} bids; mean entropy of a bid {d.H_ref_lo.mean():.3f} nats. Mean probability mass of the "
        "top 200: " + ", ".join(f"{a} {g.top200_mass.mean():.3f}" for a, g in d.groupby("agent")) + ".",
        "",
        f"**Truncation alone** (same engine, same tokens): each estimator against the top-{K_REFERENCE} bracket "
        f"of the full-vocabulary entropy, whose lower end is the reference (bracket width: mean {width.mean():.4f}, "
        f"max {width.max():.4f} nats).",
        "",
        *error_table(d, "H_ref_lo"),
        f"**Across engines**: against the committed full-vocabulary entropy of llama-cpp-python, on the "
        f"{len(same)} of {len(d)} bids that xllamacpp regenerated with the same text (greedy decoding on two "
        "llama.cpp builds drifts apart within 128 tokens on the others).",
        "",
    ]
    lines += error_table(same, "H_full_ref") if len(same) else ["(none)", ""]
    if len(same):
        diff = same.H_ref_lo - same.H_full_ref
        lines += [
            f"The two engines' own full-vocabulary entropies (top-{K_REFERENCE} reference against committed) "
            f"differ by {diff.abs().mean():.4f} nats on average (max {diff.abs().max():.4f}).",
            "",
        ]
    juries = [c.removeprefix("gamma_new_") for c in d.columns if c.startswith("gamma_new_")]
    if juries:
        lines += [
            "**Jury**: every juror's expected rating of the committed plan, xllamacpp (option digits read from the "
            "top 1000, or from the whole distribution when one is not among them) against the committed "
            "full-vocabulary rating.",
            "",
            "| juror | plans rated | Pearson r | mean abs diff | max abs diff | min option mass |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for j in juries:
            r = d.dropna(subset=[f"gamma_new_{j}"])
            diff = (r[f"gamma_new_{j}"] - r[f"gamma_ref_{j}"]).abs()
            lines.append(
                f"| {j} | {len(r)} | {pearsonr(r[f'gamma_new_{j}'], r[f'gamma_ref_{j}']).statistic:.4f} "
                f"| {diff.mean():.4f} | {diff.max():.4f} | {r[f'option_mass_{j}'].min():.3f} |"
            )
        lines.append("")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=20, help="tasks to regenerate, half per domain (3 bids each)")
    ap.add_argument("--jury-tasks", type=int, default=20, help="of those, how many also get every juror's rating")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    df = run(args.tasks, args.jury_tasks)
    df.to_parquet(OUT / "entropy_fidelity.parquet", index=False)
    lines = [
        "# Entropy and jury fidelity of the default engine (xllamacpp, top-k log-probabilities)",
        "",
        "Reference: the committed full-vocabulary values (llama-cpp-python 0.3.36 on the same GGUF files). "
        f"Command: `.venv/bin/python scripts/entropy_fidelity.py --tasks {args.tasks} --jury-tasks {args.jury_tasks}`. "
        "Entropy rows use only the bids regenerated identically; jury rows rate the committed plan text.",
        "",
        *summarise(df),
    ]
    (OUT / "entropy_fidelity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
