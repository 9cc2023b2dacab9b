"""The jury: every juror rates every plan 0–5 from one forward pass (docs/method.md §3, step 3).

gamma_j(s) is the expected rating under juror j's next-token distribution over "0".."5" after the rating prompt;
the most likely rating is logged too. Plans reach jurors without the bidder's name, in a shuffled order. Each
juror rates all plans of a task as one group where its backend can (Ledger.batches_ratings), so the shared prompt
prefix (the task) is computed once: in one forward pass (transformers) or in sequence on one llama.cpp slot.
"""

from __future__ import annotations

import random

from sale.auction.bids import Bid
from sale.llm.base import OptionScores


def jury_messages(task, plan: str, prompts) -> list[dict]:
    """The rating prompt; prompts: the config's `auction.prompts` (conf/prompts/auction.yaml)."""
    p = prompts
    return [
        {"role": "system", "content": p["jury_system"]},
        {
            "role": "user",
            "content": p["jury"].format(
                domain=task.domain, description=task.description.strip(), plan=plan or "(empty plan)"
            ),
        },
    ]


def rate(
    ledger,
    jurors: list[str],
    task,
    bids: list[Bid],
    options: list[str],
    rng: random.Random,
    *,
    prompts,
    self_evaluation: bool = True,
    skip=(),
) -> dict[tuple[str, int], OptionScores]:
    """Fill bid.jury and bid.jury_argmax for every bid, in place; return each rating's distribution over the
    options, keyed (juror, bid index). The rating calls run concurrently (Ledger.map), grouped per juror where its
    backend can; the shuffles are drawn first, so the random stream and the call log are those of a sequential jury."""
    ratings = []  # (juror, bid index), each juror's plans in its shuffled order
    for juror in jurors:
        order = list(range(len(bids)))
        rng.shuffle(order)
        if juror in skip:  # not consulted (weight 0): no call, but its shuffle is drawn, so the others' are unchanged
            continue
        ratings += [(juror, i) for i in order if self_evaluation or bids[i].agent != juror]
    # A juror whose backend groups ratings rates all its plans as one group (one pass, or one llama.cpp slot); the
    # others rate one plan per call. Groups and calls run concurrently; the log keeps the order of `ratings`.
    groups: list[list[tuple[str, int]]] = []
    for r in ratings:
        if groups and groups[-1][0][0] == r[0] and ledger.batches_ratings(r[0]):
            groups[-1].append(r)
        else:
            groups.append([r])
    per_group = ledger.map(
        lambda lg, g: lg.score_options_many(
            g[0][0], "jury", [jury_messages(task, bids[i].plan, prompts) for _, i in g], options
        ),
        groups,
    )
    scores = [s for group in per_group for s in group]
    for (juror, i), s in zip(ratings, scores):
        bids[i].jury[juror] = s.expected_value()
        bids[i].jury_argmax[juror] = int(s.argmax())
    return dict(zip(ratings, scores))
