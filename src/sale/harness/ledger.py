"""Every LLM call goes through a Ledger, which charges it at the price of the agent that processed it.

One accounting rule for every phase (bid, jury, refine, execute, route, verify): prompt and completion tokens
alike, cost = price ($/Mtok) x tokens / 1e6 (docs/method.md §6). The ledger also applies the persistent call cache.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from sale.llm import Pool
from sale.llm.base import Generation, Message, OptionScores
from sale.llm.cache import CachedLLM, CallCache

PHASES = ("bid", "jury", "refine", "execute", "verify", "route")


class Ledger:
    def __init__(self, pool: Pool, cache: CallCache | None = None, **tags: Any):
        self.pool = pool
        self.cache = cache
        self.tags = tags  # copied into every call record, e.g. task_id, method, order
        self.calls: list[dict[str, Any]] = []
        self._llms: dict[str, Any] = {}

    def _llm(self, agent: str):
        if agent not in self._llms:
            llm = self.pool.llm(agent)
            self._llms[agent] = CachedLLM(llm, self.pool.model_key(agent), self.cache) if self.cache else llm
        return self._llms[agent]

    def for_task(self, **tags: Any) -> "Ledger":
        """A fresh ledger sharing the loaded models and the cache, with its own call list."""
        child = Ledger(self.pool, self.cache, **{**self.tags, **tags})
        child._llms = self._llms
        return child

    def map(self, fn: Callable[["Ledger", Any], Any], items: Sequence) -> list:
        """[fn(ledger, x) for x in items], concurrently up to the pool's concurrency (independent calls, e.g. an
        auction's bids). Each item's calls are recorded in item order, whatever order they finished in, so the
        log of a task does not depend on the concurrency."""
        from sale.harness.concurrency import parallel_map

        children = [self.for_task() for _ in items]
        results = parallel_map(lambda pair: fn(*pair), list(zip(children, items)), self.pool.concurrency)
        for child in children:
            for call in child.calls:
                self.calls.append({**call, "call_index": len(self.calls)})
        return results

    def _record(
        self,
        agent: str,
        phase: str,
        kind: str,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        cached: bool,
        mean_entropy: float | None = None,
        entropy_approximate: bool = False,
    ) -> dict:
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; one of {PHASES}")
        price = self.pool.spec(agent).price
        tokens = prompt_tokens + completion_tokens
        row = {
            **self.tags,
            "call_index": len(self.calls),
            "agent": agent,
            "phase": phase,
            "kind": kind,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "tokens": tokens,
            "price_per_mtok": price,
            "cost_usd": price * tokens / 1e6,
            "latency_s": latency_s,
            "ended_at": time.time(),  # with latency_s, when the call ran (phase wall times: scripts/bench_demo.py)
            "cached": cached,
            "mean_entropy": mean_entropy,
            "entropy_approximate": entropy_approximate,
        }
        self.calls.append(row)
        return row

    def generate(self, agent: str, phase: str, messages: Sequence[Message], **kwargs) -> Generation:
        gen = self._llm(agent).generate(messages, **kwargs)
        self._record(
            agent,
            phase,
            "generate",
            gen.prompt_tokens,
            gen.completion_tokens,
            gen.latency_s,
            gen.cached,
            gen.mean_entropy,
            gen.entropy_approximate,
        )
        return gen

    def score_options(
        self, agent: str, phase: str, messages: Sequence[Message], options: Sequence[str]
    ) -> OptionScores:
        scores = self._llm(agent).score_options(messages, options)
        self._record(agent, phase, "score_options", scores.prompt_tokens, 0, scores.latency_s, scores.cached)
        return scores

    def batches_ratings(self, agent: str) -> bool:
        """Whether the agent's backend takes one juror's ratings of a task as one group (score_options_many): in one
        forward pass over their shared prefix (transformers), or in sequence on one llama.cpp slot (sale.llm.slots)."""
        return bool(getattr(self.pool.llm(agent), "groups_ratings", False))

    def score_options_many(
        self, agent: str, phase: str, messages_list: Sequence[Sequence[Message]], options: Sequence[str]
    ) -> list[OptionScores]:
        """score_options for several prompts to one agent, batched where its backend can (batches_ratings).
        Each rating is recorded as its own call, charged its whole prompt."""
        llm = self._llm(agent)
        batch = getattr(llm, "score_options_batch", None)  # AgentGate and CachedLLM have it; a bare LLM may not
        scores = batch(messages_list, options) if batch else [llm.score_options(m, options) for m in messages_list]
        for s in scores:
            self._record(agent, phase, "score_options", s.prompt_tokens, 0, s.latency_s, s.cached)
        return scores

    def total(self, key: str = "cost_usd", phase: str | None = None) -> float:
        return float(sum(c[key] for c in self.calls if phase is None or c["phase"] == phase))
