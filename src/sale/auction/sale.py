"""One SALE auction for one task (docs/method.md §3): bids, cost, jury, value, provisional winner, refinement by cheaper
agents from the shared memory, final winner. Execution and the memory update are the caller's (sale.harness.methods)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from sale.auction import value as value_terms
from sale.auction.bids import Bid, bid_messages, impute_own_ratings, make_bid, max_words, score_bid
from sale.auction.jury import rate
from sale.auction.memory import AuctionMemory, format_pairs
from sale.auction.weights import Weights


@dataclass
class AuctionResult:
    bids: list[Bid]  # the original bids in pool order (cheapest first), then any refined bids
    provisional: int  # index into bids
    winner: int  # index into bids

    @property
    def winning_bid(self) -> Bid:
        return self.bids[self.winner]


def argmin_score(bids: list[Bid], candidates: list[int], price_rank: dict[str, int]) -> int:
    """The candidate with the lowest C - V; ties go to the cheaper agent."""
    return min(candidates, key=lambda i: (bids[i].score, price_rank[bids[i].agent]))


def jurors_for(cfg, pool_names: list[str]) -> list[str]:
    if not cfg.jury.enabled:
        return []
    if cfg.jury.jurors in (None, "all"):
        return list(pool_names)
    if cfg.jury.jurors in ("largest", "cheapest"):  # pool-independent names for the juror-subset ablations
        return [pool_names[-1] if cfg.jury.jurors == "largest" else pool_names[0]]
    unknown = [j for j in cfg.jury.jurors if j not in pool_names]
    if unknown:
        raise ValueError(f"auction.jury.jurors names agents not in the pool: {unknown}; pool: {pool_names}")
    return list(cfg.jury.jurors)


def refine_messages(task, bid: Bid, pairs_text: str, bid_max_tokens: int, prompts) -> list[dict]:
    p = prompts
    fields = dict(
        domain=task.domain,
        description=task.description.strip(),
        tools=p["tools"][task.domain],
        plan=bid.plan or "(empty)",
        max_words=max_words(bid_max_tokens),
        pairs=pairs_text,
    )
    template = p["refine"] if pairs_text else p["refine_no_memory"]
    return [{"role": "system", "content": p["bid_system"]}, {"role": "user", "content": template.format(**fields)}]


def run_auction(
    ledger, pool, task, task_embedding: np.ndarray, memory: AuctionMemory, weights: Weights, cfg, rng: random.Random
) -> AuctionResult:
    names = pool.names
    rank = {a: i for i, a in enumerate(names)}
    max_price = pool.largest.price
    cap = int(cfg.bid_max_tokens)
    jurors = jurors_for(cfg, names)
    idle = weights.idle_jurors(jurors)  # weight 0: not consulted, values unchanged (Weights.jury_value)
    value_model = value_terms.model_for(cfg)  # auction.value: ours, beyond the paper (sale.auction.value)
    if value_model is not None:  # its weights replace auction.weights; it consults only the jurors it reads
        weights = value_model.weights
        idle = [j for j in jurors if j not in value_model.needs_jurors]
    scored: list[Bid] = []

    def score_all(bids: list[Bid]) -> None:
        rate(
            ledger,
            jurors,
            task,
            bids,
            list(cfg.jury.options),
            rng,
            prompts=cfg.prompts,
            self_evaluation=cfg.jury.self_evaluation,
            skip=idle,
        )
        scored.extend(bids)
        if not cfg.jury.self_evaluation:
            impute_own_ratings(bids, scored, [j for j in jurors if j not in idle])
        if value_model is not None:
            value_terms.rate(bids, value_model, task.domain, task_embedding, memory)
        for b in bids:
            score_bid(b, weights, pool.spec(b.agent).price, max_price, cap, use_entropy=cfg.entropy.enabled)

    messages = bid_messages(task, cap, cfg.prompts)
    bids = ledger.map(lambda lg, agent: make_bid(lg, agent, task, cap, messages), names)
    score_all(bids)
    provisional = argmin_score(bids, list(range(len(bids))), rank)
    winner = provisional

    cheaper = names[: rank[bids[provisional].agent]]
    if cfg.refinement.enabled and cheaper:
        prompts = []
        for agent in cheaper:
            pairs = memory.pairs_for(agent, task_embedding) if cfg.memory.enabled else []
            prompts.append(
                (agent, refine_messages(task, bids[rank[agent]], format_pairs(pairs, cfg.prompts), cap, cfg.prompts))
            )
        refined = ledger.map(lambda lg, p: make_bid(lg, p[0], task, cap, p[1], refined=True), prompts)
        score_all(refined)
        bids.extend(refined)
        best = argmin_score(bids, list(range(len(names), len(bids))), rank)
        if bids[best].score < bids[provisional].score:
            winner = best
    return AuctionResult(bids=bids, provisional=provisional, winner=winner)
