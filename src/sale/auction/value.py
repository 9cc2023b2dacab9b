"""Two value terms beyond the paper (ours), fitted on the train split only (`python -m sale.analysis.regime values`,
docs/regime.md), each saved as a JSON file that the auction option ``auction.value=<file>`` loads:

- calibrated (data/regime/value-calibrated.json): a calibrated jury. P(the bidder solves the task alone) =
  σ(β·x + β₀), with x the jurors' ratings of the plan, its entropy and length (÷ the bid cap), the bidder
  (one-hot) and the task's domain (one-hot): a logistic map from what the auction already measures to the chance
  the plan's agent succeeds.
- prior (data/regime/value-prior.json): an execution-grounded prior. The bidder's mean outcome on its k most
  similar past executions whose task embedding has cosine similarity ≥ a floor: the train split's runs (every agent
  ran every train task), then every execution in this run's auction memory (the winner's, with its outcome). With
  none that similar, its train pass rate in the task's domain. It needs no juror: an auction using it consults none.

Either model's probability P enters a bid as one rating on the jury's 0–5 scale, 5·P, under the juror name
``value`` in bid.jury (so it is logged as gamma_value), and the score weights fitted with the model on the train
split (w_c, w_h, w_value: the MILP of docs/method.md §4 on cross-fitted P) replace auction.weights:
score = w_c·C − w_h·H − w_value·5·P.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from sale.auction.bids import Bid
from sale.auction.weights import Weights

VALUE = "value"  # the juror name the value term is logged and weighted under
KINDS = ("calibrated", "prior")


@dataclass
class CalibratedJury:
    """σ(β·x + β₀) over x = (γ_j for each juror, entropy, tokens / bid_cap, one-hot bidder, one-hot domain)."""

    jurors: list[str]
    agents: list[str]
    domains: list[str]
    bid_cap: int
    coef: list[float]
    intercept: float
    weights: Weights
    provenance: dict = field(default_factory=dict)
    kind: str = "calibrated"

    def features(self, ratings: dict[str, float], entropy: float, tokens: float, agent: str, domain: str) -> np.ndarray:
        """x for one bid; a juror with no rating counts as the scale's middle (2.5)."""
        return np.array(
            [
                *[float(ratings.get(j, 2.5)) for j in self.jurors],
                float(entropy),
                float(tokens) / self.bid_cap,
                *[float(agent == a) for a in self.agents],
                *[float(domain == d) for d in self.domains],
            ]
        )

    def probability_of(self, x: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(np.asarray(x) @ np.asarray(self.coef) + self.intercept)))

    def probability(self, bid: Bid, domain: str, embedding=None, memory=None) -> float:
        ratings = {j: v for j, v in bid.jury.items() if j != VALUE}
        if bid.own_rating is not None:  # without self-evaluation: the imputed own rating (impute_own_ratings)
            ratings[bid.agent] = bid.own_rating
        return float(self.probability_of(self.features(ratings, bid.entropy, bid.tokens, bid.agent, domain)))

    @property
    def needs_jurors(self) -> list[str]:
        return list(self.jurors)


@dataclass
class ExecutionPrior:
    """The bidder's mean outcome on its k most similar past executions (cosine ≥ floor), else its train pass rate
    in the task's domain. `embeddings` [n × d] (unit norm), `outcomes` [n × agents] (NaN: that agent did not run
    it), `domains` per item, `fallback` {domain: {agent: rate}}."""

    agents: list[str]
    k: int
    floor: float
    embeddings: np.ndarray
    outcomes: np.ndarray
    item_tasks: list[str]
    fallback: dict[str, dict[str, float]]
    weights: Weights
    provenance: dict = field(default_factory=dict)
    kind: str = "prior"

    def __post_init__(self):
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
        self.outcomes = np.asarray(self.outcomes, dtype=float)

    def estimate(self, agent: str, embedding: np.ndarray, domain: str, extra=()) -> float:
        """P for `agent` on a task with this embedding; `extra`: more (embedding, agent, outcome) executions, e.g.
        this run's memory."""
        col = self.agents.index(agent)
        known = ~np.isnan(self.outcomes[:, col])
        sims = list(self.embeddings[known] @ embedding)
        outs = list(self.outcomes[known, col])
        for e, a, y in extra:
            if a == agent and y is not None:
                sims.append(float(np.asarray(e) @ embedding))
                outs.append(float(y))
        s, y = np.asarray(sims, dtype=float), np.asarray(outs, dtype=float)
        near = np.flatnonzero(s >= self.floor)
        if len(near):
            top = near[np.argsort(-s[near], kind="stable")[: self.k]]
            return float(y[top].mean())
        rates = self.fallback.get(domain) or self.fallback["all"]
        return float(rates[agent])

    def probability(self, bid: Bid, domain: str, embedding=None, memory=None) -> float:
        if embedding is None:
            raise ValueError("the execution-grounded prior needs the task's embedding")
        return self.estimate(bid.agent, embedding, domain, memory_executions(memory))

    @property
    def needs_jurors(self) -> list[str]:
        return []


def memory_executions(memory) -> list[tuple[np.ndarray, str, bool | None]]:
    """(embedding, executing agent, outcome) of every auction in an AuctionMemory whose outcome is known."""
    if memory is None:
        return []
    return [(r.embedding, r.bids[r.winner].agent, r.passed) for r in memory.records if r.passed is not None]


ValueModel = CalibratedJury | ExecutionPrior


def to_dict(model: ValueModel) -> dict:
    out = {k: v for k, v in model.__dict__.items() if k != "weights"}
    out["weights"] = model.weights.to_dict()
    if isinstance(model, ExecutionPrior):
        out["embeddings"] = model.embeddings.round(6).tolist()
        out["outcomes"] = [[None if np.isnan(v) else v for v in row] for row in model.outcomes]  # JSON has no NaN
    return out


def save(model: ValueModel, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(model)) + "\n")


@lru_cache(maxsize=4)
def load(path: str) -> ValueModel:
    """A value model file (python -m sale.analysis.regime values); the kind is in the file."""
    data = json.loads(Path(path).read_text())
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{path}: not a value model file (kind {kind!r}, expected one of {KINDS})")
    data["weights"] = Weights.from_dict(data["weights"])
    if kind == "calibrated":
        return CalibratedJury(**data)
    data["outcomes"] = np.array([[np.nan if v is None else v for v in row] for row in data["outcomes"]])
    return ExecutionPrior(**data)


def model_for(cfg) -> ValueModel | None:
    """The value model an auction config names (auction.value: a file's path, relative to the repository root or
    absolute), else None."""
    path = cfg.get("value") if hasattr(cfg, "get") else None
    if not path:
        return None
    from sale import REPO_ROOT

    path = Path(path) if Path(path).is_absolute() or Path(path).exists() else REPO_ROOT / path
    return load(str(path))


def rate(bids: list[Bid], model: ValueModel, domain: str, embedding=None, memory=None) -> None:
    """Add the value term to each bid, in place: bid.jury["value"] = 5·P."""
    for bid in bids:
        bid.jury[VALUE] = 5.0 * model.probability(bid, domain, embedding, memory)
