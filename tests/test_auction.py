"""The auction's rules on a scripted pool: scoring, argmin and ties, who may refine, the replacement rule,
memory retrieval and contrastive pairs. (A scripted backend is used here only to pin the numbers down; the
end-to-end tests run real models.)"""

import json
import random

import numpy as np
import pytest
from omegaconf import OmegaConf

from sale.auction.bids import Bid, score_bid
from sale.auction.memory import AuctionMemory, AuctionRecord
from sale.auction.sale import argmin_score, run_auction
from sale.auction.weights import Weights, cost_feature
from sale.config import compose
from sale.harness.ledger import Ledger
from sale.llm import AgentSpec, Pool
from sale.llm.base import Generation, OptionScores
from sale.tasks.base import Task


class ScriptedLLM:
    """Plans and ratings fixed in advance: plan text by phase, rating by (juror, words in the plan)."""

    def __init__(self, name, plan, refined_plan, ratings, entropy=1.0):
        self.name, self.plan, self.refined_plan, self.ratings, self.entropy = name, plan, refined_plan, ratings, entropy
        self.refine_prompts = []
        self.rated = []  # the plans this juror rated, in order

    def generate(self, messages, max_tokens=256, stop=None, temperature=0.0, seed=0, entropy=False):
        refining = "current plan" in messages[-1]["content"]
        if refining:
            self.refine_prompts.append(messages[-1]["content"])
        text = self.refined_plan if refining else self.plan
        n = len(text.split())
        return Generation(text, 50, n, [self.entropy] * n, 0.01)

    def score_options(self, messages, options):
        content = messages[-1]["content"]
        self.rated.append(content)
        rating = next(r for key, r in self.ratings.items() if key in content)
        probs = [1.0 if o == str(rating) else 0.0 for o in options]
        return OptionScores(list(options), probs, 60, 0.01)


def scripted_pool(llms: dict, prices: dict) -> Pool:
    pool = Pool("scripted", [AgentSpec(n, "llamacpp", prices[n] / 0.0112, prices[n]) for n in llms])
    pool._loaded.update(llms)
    return pool


def auction_cfg(**overrides):
    cfg = compose().auction  # conf/auction/default.yaml with its prompts, as a run composes it
    for k, v in overrides.items():
        OmegaConf.update(cfg, k, v)
    return cfg


TASK = Task("t/1", "coding", "Write add(a, b).", {}, 3.0, 1, "test")


def test_score_is_cost_minus_value():
    w = Weights(w_cost=0.5, w_entropy=0.2, w_jury={"a": 0.2, "b": 0.1})
    bid = Bid("a", "plan", tokens=64, entropy=1.5, jury={"a": 4.0, "b": 2.0})
    score_bid(bid, w, price=0.1, max_price=0.4, bid_max_tokens=128)
    assert bid.cost == pytest.approx(0.5 * (0.1 / 0.4) * (64 / 128))
    assert bid.value == pytest.approx(0.2 * 1.5 + 0.2 * 4 + 0.1 * 2)
    assert bid.score == pytest.approx(bid.cost - bid.value)
    # without its own rating the remaining juror carries the jury's whole weight
    alone = score_bid(Bid("a", "plan", 64, 1.5, jury={"b": 2.0}), w, 0.1, 0.4, 128, use_entropy=False)
    assert alone.value == pytest.approx(0.3 * 2.0)


def test_argmin_ties_go_to_the_cheaper_agent():
    bids = [Bid("big", "", 1, 0, score=-1.0), Bid("small", "", 1, 0, score=-1.0), Bid("mid", "", 1, 0, score=-0.5)]
    rank = {"small": 0, "mid": 1, "big": 2}
    assert argmin_score(bids, [0, 1, 2], rank) == 1
    bids[0].score = -1.1
    assert argmin_score(bids, [0, 1, 2], rank) == 0


def make_pool(refined_rating=5):
    ratings_small = {
        "refined small": refined_rating,
        "refined mid": 1,  # checked first: they contain the others
        "small plan": 1,
        "mid plan": 2,
        "big plan": 5,
    }
    llms = {
        "small": ScriptedLLM("small", "small plan", "refined small plan", ratings_small),
        "mid": ScriptedLLM("mid", "mid plan", "refined mid plan", ratings_small),
        "big": ScriptedLLM("big", "big plan", "refined big plan", ratings_small),
    }
    return scripted_pool(llms, {"small": 0.01, "mid": 0.05, "big": 0.4}), llms


def test_only_cheaper_agents_refine_and_a_better_refined_bid_wins():
    pool, llms = make_pool(refined_rating=5)
    ledger = Ledger(pool)
    memory = AuctionMemory()
    result = run_auction(
        ledger, pool, TASK, np.ones(4) / 2, memory, Weights.default(pool.names), auction_cfg(), random.Random(0)
    )
    assert result.bids[result.provisional].agent == "big"
    refined = [b for b in result.bids if b.refined]
    assert sorted(b.agent for b in refined) == ["mid", "small"]  # both cheaper than the provisional winner
    assert not llms["big"].refine_prompts
    assert result.winning_bid.agent == "small" and result.winning_bid.refined
    n = len(pool.names)
    jury_calls = [c for c in ledger.calls if c["phase"] == "jury"]
    assert len(jury_calls) == n * n + n * len(refined)  # full jury on originals and on refined bids
    assert {c["phase"] for c in ledger.calls} == {"bid", "jury", "refine"}


def test_refined_bid_that_does_not_beat_the_winner_changes_nothing():
    pool, _ = make_pool(refined_rating=2)
    result = run_auction(
        Ledger(pool),
        pool,
        TASK,
        np.ones(4) / 2,
        AuctionMemory(),
        Weights.default(pool.names),
        auction_cfg(),
        random.Random(0),
    )
    assert result.winner == result.provisional and result.winning_bid.agent == "big"


def test_cheapest_winner_means_no_refinement():
    ratings = {"small plan": 5, "mid plan": 1, "big plan": 1}
    llms = {n: ScriptedLLM(n, f"{n} plan", "x", ratings) for n in ("small", "mid", "big")}
    pool = scripted_pool(llms, {"small": 0.01, "mid": 0.05, "big": 0.4})
    ledger = Ledger(pool)
    result = run_auction(
        ledger,
        pool,
        TASK,
        np.ones(4) / 2,
        AuctionMemory(),
        Weights.default(pool.names),
        auction_cfg(),
        random.Random(0),
    )
    assert result.winning_bid.agent == "small" and not any(b.refined for b in result.bids)
    assert all(c["phase"] != "refine" for c in ledger.calls)


def test_ablation_switches_remove_their_calls():
    pool, _ = make_pool()
    ledger = Ledger(pool)
    run_auction(
        ledger,
        pool,
        TASK,
        np.ones(4) / 2,
        AuctionMemory(),
        Weights.default(pool.names),
        auction_cfg(**{"jury.enabled": False, "refinement.enabled": False}),
        random.Random(0),
    )
    assert {c["phase"] for c in ledger.calls} == {"bid"}
    ledger = Ledger(pool)
    run_auction(
        ledger,
        pool,
        TASK,
        np.ones(4) / 2,
        AuctionMemory(),
        Weights.default(pool.names),
        auction_cfg(**{"jury.self_evaluation": False, "refinement.enabled": False}),
        random.Random(0),
    )
    assert len([c for c in ledger.calls if c["phase"] == "jury"]) == 3 * 2
    ledger = Ledger(pool)
    run_auction(
        ledger,
        pool,
        TASK,
        np.ones(4) / 2,
        AuctionMemory(),
        Weights.default(pool.names),
        auction_cfg(**{"jury.jurors": ["big"], "refinement.enabled": False}),
        random.Random(0),
    )
    assert {c["agent"] for c in ledger.calls if c["phase"] == "jury"} == {"big"}
    with pytest.raises(ValueError, match="not in the pool"):
        run_auction(
            Ledger(pool),
            pool,
            TASK,
            np.ones(4) / 2,
            AuctionMemory(),
            Weights.default(pool.names),
            auction_cfg(**{"jury.jurors": ["gpt-9"]}),
            random.Random(0),
        )


def test_a_zero_weight_juror_is_not_consulted_and_values_are_unchanged(monkeypatch):
    weights = Weights(0.3, 0.1, {"small": 0.0, "mid": 0.25, "big": 0.35})

    def auction():
        pool, llms = make_pool(refined_rating=5)
        ledger = Ledger(pool)
        result = run_auction(
            ledger, pool, TASK, np.ones(4) / 2, AuctionMemory(), weights, auction_cfg(), random.Random(0)
        )
        return result, [c for c in ledger.calls if c["phase"] == "jury"], ledger.calls, llms

    lean, lean_jury, lean_calls, lean_llms = auction()
    with monkeypatch.context() as m:  # the same auction with every juror consulted, as before
        m.setattr(Weights, "idle_jurors", lambda self, jurors: [])
        full, full_jury, full_calls, full_llms = auction()
    assert {c["agent"] for c in full_jury} == {"small", "mid", "big"}
    assert {c["agent"] for c in lean_jury} == {"mid", "big"}  # no call to the juror with weight 0
    refined = sum(b.refined for b in lean.bids)
    assert refined and len(lean_jury) == 2 * (3 + refined)
    # the other jurors' calls are the same calls, in the same order (the zero-weight juror's shuffle is still drawn)
    assert [c["agent"] for c in lean_jury] == [c["agent"] for c in full_jury if c["agent"] != "small"]
    assert lean_llms["small"].rated == [] and len(full_llms["small"].rated) == 3 + refined
    for juror in ("mid", "big"):
        assert lean_llms[juror].rated == full_llms[juror].rated
    # every value and score is unchanged, and so is every decision
    assert [(b.agent, b.refined) for b in lean.bids] == [(b.agent, b.refined) for b in full.bids]
    for a, b in zip(lean.bids, full.bids):
        assert "small" in b.jury and "small" not in a.jury
        assert a.value == pytest.approx(b.value) and a.score == pytest.approx(b.score)
        assert weights.jury_value(a.jury) == pytest.approx(b.value - 0.1 * b.entropy)
    assert (lean.provisional, lean.winner) == (full.provisional, full.winner)
    saved = sum(c["cost_usd"] for c in full_jury if c["agent"] == "small")
    assert saved > 0 and sum(c["cost_usd"] for c in lean_calls) == pytest.approx(
        sum(c["cost_usd"] for c in full_calls) - saved
    )


def test_without_self_evaluation_a_bidders_own_rating_is_its_mean_rating_of_the_other_plans():
    """The largest agent as the only juror cannot rate its own plan: its rating of it is imputed as its mean rating
    of the other plans (it used to be 0, the worst rating, silently)."""
    weights = Weights(0.3, 0.0, {"small": 0.2, "mid": 0.2, "big": 0.2})
    pool, _ = make_pool()
    cfg = auction_cfg(**{"jury.jurors": "largest", "jury.self_evaluation": False, "refinement.enabled": False})
    result = run_auction(Ledger(pool), pool, TASK, np.ones(4) / 2, AuctionMemory(), weights, cfg, random.Random(0))
    small, mid, big = result.bids
    assert big.jury == {} and small.jury == {"big": 1.0} and mid.jury == {"big": 2.0}
    assert big.own_rating == pytest.approx(1.5) and small.own_rating is None and mid.own_rating is None
    # the one juror carries the jury's whole weight 0.6
    assert small.value == pytest.approx(0.6 * 1) and mid.value == pytest.approx(0.6 * 2)
    assert big.value == pytest.approx(0.6 * 1.5) and big.score == pytest.approx(big.cost - big.value)
    assert weights.jury_value({}) is None and weights.jury_value({"big": 5.0}) == pytest.approx(3.0)
    assert Weights(0.5, 0.5, {"a": 0.0}).jury_value({"a": 5.0}) is None


def test_without_self_evaluation_each_bid_is_valued_on_the_whole_jury_with_its_own_rating_imputed():
    """Every agent on the jury, none rating its own plan: each bid's value is the full jury's sum, the bidder's own
    rating imputed from its ratings of the others, so no bid escapes a heavy juror's scale (rescaling the weight
    over the other jurors let the 135M's bid, whose juror rates every plan low, win every auction)."""
    weights = Weights(0.0, 0.0, {"small": 0.6, "mid": 0.2, "big": 0.2})
    pool, _ = make_pool()
    on = run_auction(
        Ledger(pool),
        pool,
        TASK,
        np.ones(4) / 2,
        AuctionMemory(),
        weights,
        auction_cfg(**{"refinement.enabled": False}),
        random.Random(0),
    )
    off = run_auction(
        Ledger(pool),
        pool,
        TASK,
        np.ones(4) / 2,
        AuctionMemory(),
        weights,
        auction_cfg(**{"jury.self_evaluation": False, "refinement.enabled": False}),
        random.Random(0),
    )
    for with_self, without in zip(on.bids, off.bids):
        assert without.agent not in without.jury and without.own_rating is not None
        others = [b.jury[without.agent] for b in off.bids if b.agent != without.agent]
        assert without.own_rating == pytest.approx(sum(others) / len(others))
        expected = sum(weights.w_jury[j] * g for j, g in {**without.jury, without.agent: without.own_rating}.items())
        assert without.value == pytest.approx(expected)
        # the ratings given are the same as with self-evaluation
        assert without.jury == {j: g for j, g in with_self.jury.items() if j != without.agent}


def record(task_id, emb, bids, winner, passed=True):
    return AuctionRecord(task_id, f"task {task_id}", np.asarray(emb, dtype=float), bids, winner, passed)


def test_memory_retrieves_the_most_similar_tasks():
    memory = AuctionMemory(k=2)
    for i, emb in enumerate([[1, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0, 0, 1]]):
        memory.add(record(f"t{i}", np.array(emb) / np.linalg.norm(emb), [Bid("a", "p", 1, 0)], 0))
    got = memory.retrieve(np.array([1.0, 0, 0]))
    assert [r.task_id for r in got] == ["t0", "t2"]


def test_pairs_involve_the_refining_agents_own_bid():
    bids = [
        Bid("small", "small lost", 1, 0, score=0.5),
        Bid("mid", "mid lost", 1, 0, score=0.1),
        Bid("big", "big won", 1, 0, score=-1.0),
    ]
    memory = AuctionMemory(k=3)
    memory.add(record("t0", [1, 0], bids, winner=2))
    (pair,) = memory.pairs_for("small", np.array([1.0, 0]))
    assert pair.loser.agent == "small" and pair.winner.plan == "big won"
    (pair,) = memory.pairs_for("big", np.array([1.0, 0]))  # big won that auction: best loser vs its own win
    assert pair.loser.agent == "mid" and pair.winner.agent == "big"


def test_outcome_label_uses_only_passed_executions():
    bids = [Bid("small", "s", 1, 0, score=0.5), Bid("big", "b", 1, 0, score=-1.0)]
    memory = AuctionMemory(k=3, label="outcome")
    memory.add(record("failed", [1, 0], bids, winner=1, passed=False))
    memory.add(record("passed", [1, 0], bids, winner=1, passed=True))
    pairs = memory.pairs_for("small", np.array([1.0, 0]))
    assert len(pairs) == 1 and "solved" in pairs[0].why
    with pytest.raises(ValueError, match="memory.label"):
        AuctionMemory(label="vibes")


def test_refinement_prompt_carries_the_contrastive_pairs():
    pool, llms = make_pool()
    memory = AuctionMemory(k=3)
    memory.add(
        record(
            "past",
            np.ones(4) / 2,
            [Bid("small", "OLD SMALL PLAN", 5, 1.0, score=0.3), Bid("big", "OLD BIG PLAN", 5, 1.0, score=-2.0)],
            winner=1,
        )
    )
    run_auction(
        Ledger(pool), pool, TASK, np.ones(4) / 2, memory, Weights.default(pool.names), auction_cfg(), random.Random(0)
    )
    prompt = llms["small"].refine_prompts[0]
    assert "OLD SMALL PLAN" in prompt and "OLD BIG PLAN" in prompt and "lost" in prompt
    _, llms = make_pool()
    pool2 = scripted_pool(llms, {"small": 0.01, "mid": 0.05, "big": 0.4})
    run_auction(
        Ledger(pool2),
        pool2,
        TASK,
        np.ones(4) / 2,
        memory,
        Weights.default(pool2.names),
        auction_cfg(**{"memory.enabled": False}),
        random.Random(0),
    )
    assert "OLD SMALL PLAN" not in llms["small"].refine_prompts[0]


def test_cost_feature_is_price_and_length_normalised():
    assert cost_feature(0.36, 0.36, 128, 128) == pytest.approx(1.0)
    assert cost_feature(0.09, 0.36, 64, 128) == pytest.approx(0.125)


def test_a_bid_survives_its_log_row():
    bid = Bid(
        "small",
        "a plan",
        12,
        0.7,
        refined=True,
        jury={"small": 3.2, "big": 4.1},
        jury_argmax={"small": 3},
        cost=0.1,
        value=2.0,
        score=-1.9,
    )
    row = bid.to_row()
    assert row["gamma_big"] == 4.1 and row["jury_mean"] == pytest.approx(3.65)
    assert Bid.from_row(json.loads(json.dumps(row))) == bid


def test_juror_subsets_by_name_or_by_role():
    from sale.auction.sale import jurors_for

    names = ["small", "mid", "large"]
    assert jurors_for(auction_cfg(), names) == names
    assert jurors_for(auction_cfg(**{"jury.jurors": "largest"}), names) == ["large"]
    assert jurors_for(auction_cfg(**{"jury.jurors": "cheapest"}), names) == ["small"]
    assert jurors_for(auction_cfg(**{"jury.jurors": ["mid"]}), names) == ["mid"]
    assert jurors_for(auction_cfg(**{"jury.enabled": False}), names) == []
    with pytest.raises(ValueError, match="not in the pool"):
        jurors_for(auction_cfg(**{"jury.jurors": ["gpt-9"]}), names)


@pytest.mark.models
def test_sale_end_to_end_on_the_real_cpu_pool_on_two_tasks(tmp_path, cpu_pool):
    """Two easy tasks (one per domain) through the whole auction on the three real llama.cpp models."""
    import pandas as pd

    from sale.run import run

    cfg = compose(
        *[
            "pool=cpu",
            "method=sale",
            "tasks=mixed",
            "tasks.per_bin=1",
            "tasks.bins=[1]",
            f"run.dir={tmp_path / 'run'}",
            f"run.cache={tmp_path / 'calls.sqlite'}",
            "run.figure=false",
        ]
    )
    run_dir = run(cfg)
    results = pd.read_parquet(run_dir / "results.parquet")
    bids = pd.read_parquet(run_dir / "bids.parquet")
    calls = pd.read_parquet(run_dir / "calls.parquet")
    assert sorted(results["domain"]) == ["coding", "search"]
    assert results["agent"].isin(cpu_pool.names).all()
    originals = bids[~bids["refined"]]
    assert len(originals) == 2 * 3 and (originals["tokens"] > 0).all() and originals["plan"].str.len().gt(0).all()
    for juror in cpu_pool.names:  # every juror rated every bid, on the 0-5 scale
        assert bids[f"gamma_{juror}"].between(0, 5).all()
    assert (originals["entropy"] > 0).all()
    assert bids.groupby("task_id")["final_winner"].sum().eq(1).all()
    assert set(calls["phase"]) >= {"bid", "jury", "execute"}
    assert (calls.loc[calls["phase"] == "jury", "completion_tokens"] == 0).all()  # one forward pass, no decoding
    assert results["cost_usd"].sum() == pytest.approx(calls["cost_usd"].sum())
