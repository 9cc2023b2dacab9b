"""Agent scaffolds: the coding agent and the deep-search agent. Their prompts are config (conf/prompts/, composed
into `agent.prompts` and saved with every run) and are passed in by the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class AgentResult:
    output: str  # the submitted code (coding) or answer (search); "" when the agent gave none
    turns: int
    trajectory: list[dict[str, Any]] = field(default_factory=list)  # every message and tool result, in order
    self_check: bool | None = None  # coding: the visible examples passed; search: the agent committed an answer
    malformed: int = 0  # replies that had no code block / no parsable action
    tool_actions: int = 0  # search: valid tool calls that ran (lookup, search, open); coding: 0
    forced: bool = False  # search: the answer came on the last turn, after the scaffold demanded one


def run_agent(
    ledger,
    agent: str,
    task,
    plan: str | None = None,
    *,
    prompts,
    max_turns: int | None = None,
    max_tokens: int = 512,
    **search_options,
) -> AgentResult:
    """Run `agent`'s scaffold to completion on `task`, with an optional plan (the winning bid) in its prompt.
    prompts: the config's `agent.prompts` (one set per scaffold: coder, searcher). search_options go to the
    deep-search agent (`agent.search` in conf/config.yaml)."""
    if task.domain == "coding":
        from sale.agents.coder import run_coder

        return run_coder(ledger, agent, task, plan, prompts["coder"], max_turns=max_turns or 3, max_tokens=max_tokens)
    from sale.agents.searcher import run_searcher

    return run_searcher(
        ledger,
        agent,
        task,
        plan,
        prompts["searcher"],
        max_turns=max_turns or 16,
        max_tokens=max_tokens,
        **search_options,
    )
