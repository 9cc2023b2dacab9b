"""Bids: each agent's short strategic plan, its entropy, and how bids are scored (docs/method.md §3, steps 1–4)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from sale.auction.weights import Weights, cost_feature


@dataclass
class Bid:
    agent: str
    plan: str
    tokens: int  # |s|: completion tokens of the plan
    entropy: float  # H(s): mean per-token entropy of the bidder's next-token distribution (nats)
    entropy_approximate: bool = False
    refined: bool = False
    jury: dict[str, float] = field(default_factory=dict)  # juror -> expected rating gamma in [0, 5]
    jury_argmax: dict[str, int] = field(default_factory=dict)  # juror -> its most likely rating
    own_rating: float | None = None  # without self-evaluation: the bidder-juror's imputed rating of this plan
    cost: float = 0.0  # C = w_c * cost_feature(price, |s|)
    value: float = 0.0  # V = w_h * H + sum_j w_j * gamma_j
    score: float = 0.0  # C - V; the lowest score wins

    def to_row(self) -> dict:
        """A flat log row: jury dicts as JSON text, plus one gamma_<juror> column per juror."""
        row = asdict(self)
        row["jury_mean"] = sum(self.jury.values()) / len(self.jury) if self.jury else None
        row["jury"], row["jury_argmax"] = json.dumps(self.jury), json.dumps(self.jury_argmax)
        row.update({f"gamma_{juror}": g for juror, g in self.jury.items()})
        return row

    @classmethod
    def from_row(cls, row: dict) -> "Bid":
        fields = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        for key in ("jury", "jury_argmax"):
            if isinstance(fields.get(key), str):
                fields[key] = json.loads(fields[key])
        return cls(**fields)


WORDS_PER_STEP = 15
TOKENS_PER_STEP = 40  # a step of WORDS_PER_STEP words with its number, in these models' tokens, with headroom


def max_steps(bid_max_tokens: int) -> int:
    """Steps of a plan: as many one-line steps as fit in the cap (128 tokens: 3; 64: 1)."""
    return max(1, bid_max_tokens // TOKENS_PER_STEP)


def max_words(bid_max_tokens: int) -> int:
    return max(10, max_steps(bid_max_tokens) * WORDS_PER_STEP)


def bid_stop(bid_max_tokens: int) -> list[str]:
    """Where a plan ends on its own: before a step past max_steps, before a sub-point (the prompt asks for one line
    a step; small models otherwise nest bullets until the cap), at a code fence, or at a blank line (the prompt
    asks for none; small models otherwise append a paragraph after the list)."""
    n = max_steps(bid_max_tokens) + 1
    return [
        f"\n{n}.",
        f"\n{n})",
        f"\nStep {n}",
        f"\n**{n}.",
        "\n  -",
        "\n   -",
        "\n    -",
        "\n\t-",
        "\n  *",
        "\n   *",
        "\n    *",
        "```",
        "\n\n",
    ]


def bid_messages(task, bid_max_tokens: int, prompts) -> list[dict]:
    """The bid prompt; prompts: the config's `auction.prompts` (conf/prompts/auction.yaml)."""
    p = prompts
    return [
        {"role": "system", "content": p["bid_system"]},
        {
            "role": "user",
            "content": p["bid"].format(
                domain=task.domain,
                description=task.description.strip(),
                tools=p["tools"][task.domain],
                max_steps=max_steps(bid_max_tokens),
                words_per_step=WORDS_PER_STEP,
                max_words=max_words(bid_max_tokens),
            ),
        },
    ]


def generate_bid(ledger, agent: str, task, bid_max_tokens: int, messages: list[dict], refined: bool = False):
    """The generation of a bid (or a refined bid) from `agent`, at most bid_max_tokens long; it stops by itself at
    the end of a numbered plan of max_steps steps (bid_stop). The one call that asks for the entropy: H(s) is a
    bid's value term, and nothing else in the method reads an entropy."""
    phase = "refine" if refined else "bid"
    return ledger.generate(
        agent, phase, messages, max_tokens=bid_max_tokens, stop=bid_stop(bid_max_tokens), entropy=True
    )


def make_bid(ledger, agent: str, task, bid_max_tokens: int, messages: list[dict], refined: bool = False) -> Bid:
    """A bid (or a refined bid) from `agent`: generate_bid's plan, |s| and H(s)."""
    return bid_from_generation(agent, generate_bid(ledger, agent, task, bid_max_tokens, messages, refined), refined)


def bid_from_generation(agent: str, gen, refined: bool = False) -> Bid:
    """A bid from the bidder's generation: the plan, |s| (its completion tokens) and H(s) (mean entropy)."""
    return Bid(
        agent=agent,
        plan=gen.text.strip(),
        tokens=gen.completion_tokens,
        entropy=gen.mean_entropy,
        entropy_approximate=gen.entropy_approximate,
        refined=refined,
    )


def impute_own_ratings(bids: list[Bid], auction_bids: list[Bid], jurors: list[str]) -> None:
    """Without self-evaluation a bidder does not rate its own plan. Its missing rating is imputed, in place, as its
    mean rating of the other agents' plans in this auction so far (`auction_bids`), and stored in bid.own_rating
    (bid.jury keeps only the ratings given). Each juror keeps its own scale and only its preference for its own
    plan is gone. Leaving the rating out and rescaling the jury's weight over the others instead lets a bid escape
    a harsh juror with a large weight: on the cpu pool's fitted weights every auction went to the 135M that way
    (train replay 2.5% pass@1 against 35% imputed and 42.5% with self-evaluation; notebook 06 replays the rules).
    A juror that rated no other plan (a one-bid auction) has nothing to impute from: the rating stays missing."""
    for bid in bids:
        if bid.agent not in jurors or bid.agent in bid.jury:
            continue
        given = [b.jury[bid.agent] for b in auction_bids if b.agent != bid.agent and bid.agent in b.jury]
        bid.own_rating = float(np.mean(given)) if given else None


def score_bid(
    bid: Bid, weights: Weights, price: float, max_price: float, bid_max_tokens: int, use_entropy: bool = True
) -> Bid:
    """Fill in C, V and C - V. The jury term is Weights.jury_value over the ratings given plus, without
    self-evaluation, the bidder's imputed own rating (impute_own_ratings); it is rescaled over the
    jurors who rated, so that a subset of jurors keeps the jury's total weight."""
    bid.cost = weights.w_cost * cost_feature(price, max_price, bid.tokens, bid_max_tokens)
    ratings = bid.jury if bid.own_rating is None else {**bid.jury, bid.agent: bid.own_rating}
    jury_value = weights.jury_value(ratings) or 0.0  # None: no weighted juror rated it, e.g. a one-bid auction
    bid.value = (weights.w_entropy * bid.entropy if use_entropy else 0.0) + jury_value
    bid.score = bid.cost - bid.value
    return bid
