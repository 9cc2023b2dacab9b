"""The shared auction memory and the contrastive pairs it gives a refining agent (docs/method.md §3, step 6).

Memory holds one record per past auction in the current task stream. A refining agent retrieves the k past tasks
most similar to the current one (cosine similarity of sentence embeddings of the descriptions) and sees, for
each, a plan that lost next to the plan that won. The loser shown is the refining agent's own bid whenever it lost
that auction (else the best-scoring loser), so every pair involves the agent's own past bid where one exists.

What counts as "won" is a switch (memory.label):
  auction  the auction's final winner (the paper);
  outcome  the executed plan, only where its execution passed; auctions whose executed plan failed give no pair
           (our extension, beyond the paper).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sale.auction.bids import Bid

LABELS = ("auction", "outcome")


@dataclass
class AuctionRecord:
    task_id: str
    description: str
    embedding: np.ndarray
    bids: list[Bid]
    winner: int  # index into bids
    passed: bool | None = None  # the execution outcome, once known


@dataclass
class Pair:
    task: str
    loser: Bid
    winner: Bid
    why: str


@dataclass
class AuctionMemory:
    k: int = 3
    label: str = "auction"
    records: list[AuctionRecord] = field(default_factory=list)

    def __post_init__(self):
        if self.label not in LABELS:
            raise ValueError(f"memory.label must be one of {LABELS}, got {self.label!r}")

    def add(self, record: AuctionRecord) -> None:
        self.records.append(record)

    def retrieve(self, embedding: np.ndarray, k: int | None = None) -> list[AuctionRecord]:
        if not self.records:
            return []
        sims = np.stack([r.embedding for r in self.records]) @ embedding
        top = np.argsort(-sims, kind="stable")[: (k or self.k)]
        return [self.records[i] for i in top]

    def pairs_for(self, agent: str, embedding: np.ndarray) -> list[Pair]:
        pairs = []
        for record in self.retrieve(embedding):
            if self.label == "outcome" and not record.passed:
                continue
            winner = record.bids[record.winner]
            losers = [b for i, b in enumerate(record.bids) if i != record.winner]
            if not losers:
                continue
            own = [b for b in losers if b.agent == agent]
            loser = min(own, key=lambda b: b.score) if own else min(losers, key=lambda b: b.score)
            pairs.append(Pair(record.description, loser, winner, why(loser, winner, self.label)))
        return pairs


def why(loser: Bid, winner: Bid, label: str) -> str:
    if label == "outcome":
        return "it was executed and solved the task."
    reasons = []
    if winner.jury and loser.jury:
        w, l = np.mean(list(winner.jury.values())), np.mean(list(loser.jury.values()))
        if w > l:
            reasons.append(f"the jury rated it {w:.1f}/5 against {l:.1f}/5")
    if winner.cost < loser.cost:
        reasons.append("it was cheaper to carry out")
    if winner.tokens < loser.tokens:
        reasons.append(f"it was more concise ({winner.tokens} tokens against {loser.tokens})")
    return (", ".join(reasons) or "it had the better overall score") + "."


def format_pairs(pairs: list[Pair], prompts, max_chars: int = 600) -> str:
    """The contrastive pairs shown to a refining bidder; prompts: the config's `auction.prompts`."""
    return "\n".join(
        prompts["pair"].format(
            task=pair.task.strip()[:max_chars],
            loser=pair.loser.plan[:max_chars],
            loser_score=pair.loser.score,
            winner=pair.winner.plan[:max_chars],
            winner_score=pair.winner.score,
            why=pair.why,
        )
        for pair in pairs
    )
