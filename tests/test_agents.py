"""The agent scaffolds: code extraction, visible examples, ReAct parsing, malformed output, real models."""

import json

import pytest

from sale.agents import run_agent
from sale.agents.coder import docstring_examples, extract_code, run_examples
from sale.agents.searcher import parse_action
from sale.config import compose
from sale.harness.ledger import Ledger
from sale.harness.methods import grade
from sale.llm import AgentSpec, Pool
from sale.llm.base import Generation
from sale.tasks import load_tasks

PROMPTS = compose().agent.prompts  # the agents' prompts, as a run composes them


class ScriptedChat:
    """Replies from a fixed list, in turn (plumbing only: the real-model tests below run real models)."""

    def __init__(self, replies):
        self.name, self.replies, self.prompts = "scripted", list(replies), []

    def generate(self, messages, max_tokens=256, stop=None, temperature=0.0, seed=0, entropy=False):
        self.prompts.append(messages[-1]["content"])
        text = self.replies.pop(0)
        return Generation(text, 100, len(text.split()), [0.5] * len(text.split()), 0.01)


def scripted_ledger(replies):
    pool = Pool("scripted", [AgentSpec("bot", "llamacpp", 1.0, 0.0112)])
    llm = ScriptedChat(replies)
    pool._loaded["bot"] = llm
    return Ledger(pool), llm


def task(source, task_id):
    tasks = load_tasks({"name": "t", "sources": [source], "split": "all"})
    return next(t for t in tasks if t.id == task_id)


ADD = task("humaneval", "humaneval/HumanEval-53")  # add(x, y), with >>> examples


def test_extract_code_prefers_the_block_defining_the_entry_point():
    reply = "Helper:\n```python\nx = 1\n```\nAnswer:\n```python\ndef add(x, y):\n    return x + y\n```\n"
    assert extract_code(reply, "add").startswith("def add")
    assert extract_code("def add(x, y):\n    return x + y", "add").startswith("def add")
    assert extract_code("I cannot do that.", "add") is None
    assert "return" in extract_code("```python\ndef add(x, y):\n    return x + y", "add")  # unclosed fence


def test_docstring_examples_are_the_visible_tests():
    assert docstring_examples(ADD.payload["prompt"]) == [("add(2, 3)", "5"), ("add(5, 7)", "12")]
    prose = 'def f(x):\n    """Double it.\n    f(2) == 4\n    f(3) ➞ 6\n    """\n'
    assert docstring_examples(prose, "f") == [("f(2)", "4"), ("f(3)", "6")]
    ok, report = run_examples("def add(x, y):\n    return x + y", ADD.payload["prompt"])
    assert ok and "2 examples passed" in report
    ok, report = run_examples("def add(x, y):\n    return x - y", ADD.payload["prompt"])
    assert not ok and "add(2, 3) returned -1, expected 5" in report
    ok, report = run_examples("def add(x, y):\n    while True: pass", ADD.payload["prompt"], timeout_s=1)
    assert not ok and "timeout" in report


def test_coder_revises_after_failing_examples_and_survives_malformed_replies():
    ledger, llm = scripted_ledger(
        [
            "no code here",
            "```python\ndef add(x, y):\n    return x - y\n```",
            "```python\ndef add(x, y):\n    return x + y\n```",
        ]
    )
    result = run_agent(ledger, "bot", ADD, plan="Return the sum.", prompts=PROMPTS, max_turns=3)
    assert result.malformed == 1 and result.turns == 3 and result.self_check
    assert "Follow this plan:\nReturn the sum." in json.loads(json.dumps(result.trajectory))[1]["content"]
    assert "returned -1, expected 5" in llm.prompts[2]
    assert grade(ADD, result.output).passed
    assert len(ledger.calls) == 3 and {c["phase"] for c in ledger.calls} == {"execute"}


def test_coder_with_hostile_code_is_graded_a_failure():
    ledger, _ = scripted_ledger(["```python\nimport os\ndef add(x, y):\n    os.kill(os.getppid(), 9)\n```"] * 2)
    result = run_agent(ledger, "bot", ADD, prompts=PROMPTS, max_turns=2)
    assert not result.self_check and not grade(ADD, result.output).passed


def test_parse_action():
    assert parse_action("Thought: look\nAction: search[Alice Smith]") == ("search", "Alice Smith")
    assert parse_action("Action: ANSWER[ Bob, Carol ]") == ("answer", "Bob, Carol")
    assert parse_action("Action: lookup[mother of Ann Lee]") == ("lookup", "mother of Ann Lee")
    assert parse_action("Thought: next\nlookup(mother of Ann Lee)") == ("lookup", "mother of Ann Lee")  # loose form
    assert parse_action("I think the answer is Bob.") is None
    assert parse_action("The answer (2) is near. We open (the door).") is None  # prose, not an action


QUESTION = task("phantomwiki", "phantomwiki/test/q0000")


def test_searcher_loop_uses_tools_and_recovers_from_bad_actions():
    person = QUESTION.payload["question"]
    gold = ", ".join(QUESTION.payload["answers"])
    ledger, llm = scripted_ledger(
        [
            "Hmm.",
            f"Thought: search\nAction: search[{person}]",
            "Thought: read\nAction: open[Nobody At All]",
            f"Action: answer[{gold}]",
        ]
    )
    result = run_agent(ledger, "bot", QUESTION, prompts=PROMPTS, max_turns=6)
    assert result.malformed == 1 and result.turns == 4 and result.output == gold
    tools = [s.get("tool") for s in result.trajectory if s["role"] == "tool"]
    assert tools == ["search", "open", "answer"]
    assert "No article titled" in llm.prompts[3]
    assert grade(QUESTION, result.output).passed


CHAIN = task("phantomwiki", "phantomwiki/train/q0130")  # the sister of the husband of Jeannie Mcclain


def test_searcher_follows_a_chain_with_lookups_and_the_progress_note():
    ledger, llm = scripted_ledger(
        [
            "Thought: first\nAction: lookup[husband of Jeannie Mcclain]",
            "Thought: again\nAction: lookup[husband of Jeannie Mcclain]",
            "Thought: next\nAction: lookup[sister of Orlando Mcclain]",
            "Thought: done\nAction: answer[Allyson Riedel]",
        ]
    )
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, max_turns=16)
    assert result.output == "Allyson Riedel" and grade(CHAIN, result.output).passed
    assert result.turns == 4 and result.tool_actions == 2 and result.malformed == 1 and not result.forced
    assert "The husband of Jeannie Mcclain: Orlando Mcclain (1)." in llm.prompts[1]
    assert "Question left: Who is the sister of Orlando Mcclain?" in llm.prompts[1]
    assert "You already did" in llm.prompts[2] and "Question left: Who is the sister of Orlando" in llm.prompts[2]
    assert "Question left: nothing: answer with the names" in llm.prompts[3]


def test_searcher_without_the_progress_note():
    ledger, llm = scripted_ledger(["Action: lookup[husband of Jeannie Mcclain]", "Action: answer[Orlando Mcclain]"])
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, progress=False)
    assert "Question left" not in llm.prompts[1] and not grade(CHAIN, result.output).passed


def test_a_tool_that_raises_costs_one_turn_not_the_run(monkeypatch):
    from sale.tools.relations import FamilyGraph

    def broken_query(self, text):
        raise RuntimeError("boom")

    monkeypatch.setattr(FamilyGraph, "query", broken_query)
    ledger, llm = scripted_ledger(["Action: lookup[husband of Jeannie Mcclain]", "Action: answer[Orlando Mcclain]"])
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, max_turns=4)
    assert result.output == "Orlando Mcclain" and result.turns == 2
    failed = [s for s in result.trajectory if s.get("tool") == "lookup"]
    assert failed[0]["error"] is True and "RuntimeError: boom" in failed[0]["content"]
    assert "lookup[...] failed on this input (RuntimeError: boom)" in llm.prompts[1]


def test_a_forced_last_turn_answer_is_recorded():
    ledger, _ = scripted_ledger(["Action: lookup[husband of Jeannie Mcclain]", "Action: answer[Orlando Mcclain]"])
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, max_turns=2)
    assert result.forced and result.output == "Orlando Mcclain" and result.tool_actions == 1
    answer = [s for s in result.trajectory if s.get("tool") == "answer"]
    assert answer[0]["forced"] is True


def test_a_long_trace_is_trimmed_oldest_observation_first_and_keeps_the_question():
    people = [
        "Jeannie Mcclain",
        "Orlando Mcclain",
        "Allyson Riedel",
        "Therese Kirschner",
        "Walter Hope",
        "Leopoldo Riedel",
        "Deja Luck",
        "Kurt Parkinson",
    ]
    ledger, _ = scripted_ledger([f"Action: open[{p}]" for p in people] + ["Action: answer[x]"])
    llm = ledger.pool._loaded["bot"]
    seen = []
    original = llm.generate

    def measuring(messages, **kw):
        seen.append([dict(m) for m in messages])
        return original(messages, **kw)

    llm.generate = measuring
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, max_turns=16, context_chars=4000)
    assert result.tool_actions == len(people) and result.output == "x"
    last = seen[-1]
    assert last[1]["content"].startswith("Question: Who is the sister")  # the question is never trimmed
    observations = [m["content"] for m in last if m["content"].startswith("Observation:")]
    assert len(observations) == len(people)
    assert "(shortened)" in observations[0] and "The hobby of" not in observations[0]
    assert all("(shortened)" not in o for o in observations[-2:])  # the latest two stay whole
    assert sum(len(m["content"]) for m in last) < sum(len(m["content"]) for m in result.trajectory)
    opened = [m for m in result.trajectory if m.get("tool") == "open"]
    assert all("The hobby of" in m["content"] for m in opened)  # the logged trajectory keeps them whole


def test_a_searcher_stuck_on_unusable_replies_must_answer_early():
    ledger, llm = scripted_ledger(
        ["Hmm."] * 2 + ["Action: lookup[husband of Jeannie Mcclain]"] * 3 + ["Action: answer[Orlando Mcclain]"]
    )
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, max_turns=16)
    # 2 malformed, 1 lookup (resets the count), 2 repeats, then 4 more would be needed: not stuck yet
    assert result.turns == 6 and not result.forced and result.malformed == 4
    ledger, llm = scripted_ledger(["Hmm."] * 4 + ["Action: answer[Orlando Mcclain]"])
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, max_turns=16)
    assert result.turns == 5 and result.forced and "last turn" in llm.prompts[-1]
    ledger, llm = scripted_ledger(["Hmm."] * 5)
    result = run_agent(ledger, "bot", CHAIN, prompts=PROMPTS, max_turns=16)
    assert result.turns == 5 and result.output == "" and not result.forced


def test_searcher_is_told_on_its_last_turn():
    ledger, llm = scripted_ledger(["Action: search[x]", "Action: search[y]"])
    result = run_agent(ledger, "bot", QUESTION, prompts=PROMPTS, max_turns=2)
    assert result.output == "" and not result.self_check and "last turn" in llm.prompts[-1]
    assert not grade(QUESTION, result.output).passed


@pytest.mark.models
def test_real_coder_solves_an_easy_task(cpu_pool):
    ledger = Ledger(cpu_pool)
    result = run_agent(ledger, "qwen2.5-coder-1.5b", ADD, prompts=PROMPTS)
    assert grade(ADD, result.output).passed, result.output
    assert ledger.calls[0]["prompt_tokens"] > 50 and ledger.calls[0]["mean_entropy"] is None  # executions: no entropy


@pytest.mark.models
def test_real_searcher_runs_the_react_loop(cpu_pool):
    ledger = Ledger(cpu_pool)
    result = run_agent(ledger, "qwen2.5-coder-1.5b", QUESTION, prompts=PROMPTS)
    tools = [s.get("tool") for s in result.trajectory if s["role"] == "tool"]
    assert "search" in tools or "open" in tools or "answer" in tools, result.trajectory
    assert 1 <= result.turns <= 16 and len(ledger.calls) == result.turns
