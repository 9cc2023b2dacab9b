"""Bids end on their own: a numbered plan of at most max_steps one-line steps, stopped before a further step, a
sub-point or code, within the cap B."""

import pytest

from sale.auction.bids import bid_messages, bid_stop, make_bid, max_steps, max_words
from sale.config import compose
from sale.harness.ledger import Ledger
from sale.llm import AgentSpec, Pool
from sale.llm.base import Generation
from sale.tasks.base import Task

PROMPTS = compose().auction.prompts

TASK = Task("t/1", "coding", "Write add(a, b).", {}, 3.0, 1, "test")
SEARCH = Task("t/2", "search", "Who is the mother of Ann Lee?", {}, 5.0, 1, "test")


class Rambler:
    """Writes five numbered steps with sub-points and code, then stops where a real engine would: at the first
    stop string (excluded), else at max_tokens words."""

    TEXT = (
        "1. Read the examples.\n2. Write the loop.\n   - keep a running sum\n3. Run the examples.\n"
        "4. Check edge cases.\n5. Submit.\n```python\ndef add(a, b): return a + b\n```"
    )

    def __init__(self, text=None):
        self.name, self.stops, self.text = "rambler", [], text or self.TEXT

    def generate(self, messages, max_tokens=256, stop=None, temperature=0.0, seed=0, entropy=False):
        self.stops.append(list(stop or []))
        text = self.text
        cut = min([text.find(s) for s in stop or [] if s in text] or [len(text)])
        words = text[:cut].split(" ")[:max_tokens]
        text = " ".join(words)
        return Generation(text, 40, len(words), [0.5] * len(words), 0.01)


def ledger_with(llm):
    pool = Pool("scripted", [AgentSpec("bot", "llamacpp", 1.0, 0.0112)])
    pool._loaded["bot"] = llm
    return Ledger(pool)


def test_the_plan_has_as_many_steps_as_fit_the_cap():
    assert max_steps(128) == 3 and max_steps(64) == 1 and max_steps(256) == 6
    assert max_words(128) == 45
    stops = bid_stop(128)
    assert "\n4." in stops and "```" in stops and "\n   -" in stops and "\n3." not in stops


def test_the_bid_prompt_asks_for_a_short_numbered_plan():
    text = bid_messages(TASK, 128, PROMPTS)[1]["content"]
    assert "numbered list of at most 3 steps" in text and "no sub-points" in text and "Write add(a, b)." in text
    assert (
        "lookup[" in bid_messages(SEARCH, 128, PROMPTS)[1]["content"]
    )  # the search agent's tools, as it will have them


def test_a_bid_stops_before_a_sub_point_a_step_past_the_limit_or_code():
    llm = Rambler()
    bid = make_bid(ledger_with(llm), "bot", TASK, 128, bid_messages(TASK, 128, PROMPTS))
    assert bid.plan == "1. Read the examples.\n2. Write the loop."  # cut before the sub-point
    assert llm.stops[0] == bid_stop(128) and bid.tokens < 128
    assert (
        make_bid(
            ledger_with(Rambler("1. a\n2. b\n3. c\n4. d\n```x```")), "bot", TASK, 128, bid_messages(TASK, 128, PROMPTS)
        ).plan
        == "1. a\n2. b\n3. c"
    )


@pytest.mark.models
def test_a_real_bid_ends_before_the_cap(cpu_pool):
    bid = make_bid(Ledger(cpu_pool), "qwen2.5-coder-1.5b", TASK, 128, bid_messages(TASK, 128, PROMPTS))
    assert bid.plan.startswith("1.") and bid.tokens < 128, bid.plan
