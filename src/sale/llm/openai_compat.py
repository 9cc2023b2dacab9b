"""OpenAI-compatible HTTP backend (what vLLM, SGLang and llama.cpp's server speak).

Token counts come from the response's `usage`. Entropy comes from `top_logprobs` (vLLM returns at most 20 by
default), estimated by base.entropy_from_top_logprobs: by default the top k's own terms plus a lower bound for the
tail, which equals the renormalised entropy when a server's log-probabilities already sum to 1 over the top k.
Results mark it approximate. Jury ratings come from the log-probabilities of the option tokens
(base.option_scores_from_chat_completions).

Failures: a call is retried, with exponential backoff, only when the server could not be reached or answered 429
or 5xx (`retries` tries in all); any other answer, and a call that runs past `timeout_s`, fail at once. The error
names the agent and the URL, and, for a server this repository started, how that server ended.

What servers support (top_logprobs = log-probabilities per generated token):
  vLLM       top_logprobs <= 20 unless started with --max-logprobs N; option tokens must be among them
  SGLang     top_logprobs as asked (bounded by its own limits); option tokens must be among them
  llama.cpp  any top_logprobs; a number above the vocabulary size returns the whole distribution, so the served
             cpu pool (pool=cpu_server) sets option_fallback_top_logprobs and its jury is exact. `id_slots: N` (the
             server's --parallel; set by itself for a server the pool starts) makes every call name its slot
             (sale.llm.slots), so a juror's ratings of one task share one slot and its cached prefix.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Sequence

import httpx

from sale.llm.base import (
    Generation,
    LLMError,
    Message,
    OptionScores,
    check_entropy_estimator,
    generation_from_chat_completion,
    option_scores_from_chat_completions,
)
from sale.llm.slots import SlotPicker

RETRY_STATUS = {429, 500, 502, 503, 504}
logging.getLogger("httpx").setLevel(logging.WARNING)  # Hydra logs at INFO: one line per request otherwise


class OpenAICompatLLM:
    def __init__(
        self,
        name: str,
        base_url: str,
        model: str,
        top_logprobs: int = 20,
        timeout_s: float = 600.0,
        api_key_env: str = "OPENAI_API_KEY",
        extra_body: dict | None = None,
        entropy_estimator: str = "tail_bound",
        option_top_logprobs: int | None = None,
        option_fallback_top_logprobs: int | None = None,
        retries: int = 5,
        backoff_s: float = 0.5,
        id_slots: int | None = None,
        server=None,
    ):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.top_logprobs = int(top_logprobs)
        self.option_top_logprobs = int(option_top_logprobs or top_logprobs)
        self.option_fallback_top_logprobs = option_fallback_top_logprobs
        self.extra_body = dict(extra_body or {})
        self.entropy_estimator = check_entropy_estimator(name, entropy_estimator)
        self.retries = max(1, int(retries))
        self.backoff_s = float(backoff_s)
        self.server = server  # a sale.llm.local_server.LocalServer this repository started, or None
        self.slots = SlotPicker(id_slots) if id_slots else None  # llama.cpp's id_slot; other servers have none
        key = os.environ.get(api_key_env, "EMPTY")
        # one connection per call in flight: the pool must not be the bottleneck of a server with many slots
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
        self.client = httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {key}"}, limits=limits)

    @property
    def url(self) -> str:
        return self.base_url

    def _chat(self, messages: Sequence[Message], slot: int | None = None, **params) -> dict:
        if self.slots is not None and slot is None:
            with self.slots.take(messages) as slot:
                return self._chat(messages, slot, **params)
        body = {"model": self.model, "messages": list(messages), **params, **self.extra_body}
        if slot is not None:
            body["id_slot"] = int(slot)
        url = f"{self.base_url}/chat/completions"
        problem = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self.client.post(url, json=body)
            except httpx.TimeoutException as e:
                if isinstance(e, httpx.ConnectTimeout):
                    problem = f"{type(e).__name__}: {e}"
                    continue
                raise LLMError(
                    f"{self.name}: {url} did not answer within {self.client.timeout.read} s "
                    f"({type(e).__name__}); raise timeout_s in the pool file if the model is just slow"
                    + self._server_state()
                ) from e
            except httpx.TransportError as e:  # refused, reset, closed mid-answer: worth another try
                problem = f"{type(e).__name__}: {e}"
                continue
            if resp.status_code in RETRY_STATUS:
                problem = f"answered {resp.status_code}: {resp.text[:300]}"
                continue
            if resp.status_code != 200:
                raise LLMError(f"{self.name}: {url} answered {resp.status_code}: {resp.text[:500]}")
            try:
                return resp.json()
            except ValueError as e:
                raise LLMError(
                    f"{self.name}: {url} answered 200 with a body that is not JSON: {resp.text[:300]!r}"
                ) from e
        hint = (
            ""
            if self.server is not None
            else f". Is the server running? e.g. `vllm serve {self.model}` or llama.cpp's `llama-server -m FILE`"
        )
        raise LLMError(
            f"{self.name}: cannot reach {url} after {self.retries} tries ({problem}){hint}" + self._server_state()
        )

    def _server_state(self) -> str:
        return f"\n  {self.server.describe()}" if self.server is not None else ""

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        entropy: bool = False,
    ) -> Generation:
        t0 = time.perf_counter()
        params: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        if entropy:
            params.update(logprobs=True, top_logprobs=self.top_logprobs)
        if stop:
            params["stop"] = list(stop)
        data = self._chat(messages, **params)
        try:
            return generation_from_chat_completion(data, time.perf_counter() - t0, self.entropy_estimator, entropy)
        except LLMError as e:
            raise LLMError(f"{self.name}: {self.base_url}: {e}") from e
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
            raise LLMError(
                f"{self.name}: {self.base_url} returned a chat completion without the expected "
                f"fields ({type(e).__name__}: {e})"
            ) from e

    @property
    def groups_ratings(self) -> bool:
        """Whether score_options_batch keeps a juror's ratings on one slot (a llama.cpp server with id_slots)."""
        return self.slots is not None

    def score_options_batch(
        self, messages_list: Sequence[Sequence[Message]], options: Sequence[str]
    ) -> list[OptionScores]:
        """Several ratings by this agent, in sequence, on one slot where the server has slots (see id_slots)."""
        if self.slots is None:
            return [self.score_options(m, options) for m in messages_list]
        return self.slots.rate_in_sequence(self.score_options, messages_list, options)

    def score_options(
        self, messages: Sequence[Message], options: Sequence[str], slot: int | None = None
    ) -> OptionScores:
        t0 = time.perf_counter()
        try:
            return option_scores_from_chat_completions(
                lambda k: self._chat(messages, slot, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=k),
                options,
                self.option_top_logprobs,
                self.option_fallback_top_logprobs,
                t0,
            )
        except LLMError as e:
            if str(e).startswith(self.name):
                raise
            raise LLMError(f"{self.name}: {self.base_url}: {e}") from e
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
            raise LLMError(
                f"{self.name}: {self.base_url} returned log-probabilities without the expected fields "
                f"({type(e).__name__}: {e})"
            ) from e

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()
