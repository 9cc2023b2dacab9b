"""Agent scaffolds: the coding agent and the deep-search agent. Prompts live in conf/prompts/."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import yaml

from sale import CONF_DIR


@dataclass
class AgentResult:
    output: str  # the submitted code (coding) or answer (search); "" when the agent gave none
    turns: int
    trajectory: list[dict[str, Any]] = field(default_factory=list)  # every message and tool result, in order
    self_check: bool | None = None  # coding: the visible examples passed; search: the agent committed an answer
    malformed: int = 0  # replies that had no code block / no parsable action
    tool_actions: int = 0  # search: valid tool calls that ran (lookup, search, open); coding: 0
    forced: bool = False  # search: the answer came on the last turn, after the scaffold demanded one


@lru_cache(maxsize=None)
def load_prompts(name: str) -> dict[str, str]:
    return yaml.safe_load((CONF_DIR / "prompts" / f"{name}.yaml").read_text())


def run_agent(ledger, agent: str, task, plan: str | None = None, max_turns: int | None = None,
              max_tokens: int = 512, **search_options) -> AgentResult:
    """Run `agent`'s scaffold to completion on `task`, with an optional plan (the winning bid) in its prompt.
    search_options go to the deep-search agent (`agent.search` in conf/config.yaml)."""
    if task.domain == "coding":
        from sale.agents.coder import run_coder

        return run_coder(ledger, agent, task, plan, max_turns=max_turns or 3, max_tokens=max_tokens)
    from sale.agents.searcher import run_searcher

    return run_searcher(ledger, agent, task, plan, max_turns=max_turns or 16, max_tokens=max_tokens,
                        **search_options)
