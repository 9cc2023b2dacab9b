"""OpenAI-compatible HTTP backend (what vLLM, SGLang and llama.cpp's server speak).

Token counts come from the response's `usage`. Entropy comes from `top_logprobs` (vLLM returns at most 20 by
default), estimated by base.entropy_from_top_logprobs: by default the top k's own terms plus a lower bound for the
tail, which equals the renormalised entropy when a server's log-probabilities already sum to 1 over the top k.
Results mark it approximate.
"""

from __future__ import annotations

import os
import time
from typing import Sequence

import httpx
import numpy as np

from sale.llm.base import (Generation, LLMError, Message, OptionScores, check_entropy_estimator,
                           generation_from_chat_completion)


class OpenAICompatLLM:
    def __init__(self, name: str, base_url: str, model: str, top_logprobs: int = 20, timeout_s: float = 600.0,
                 api_key_env: str = "OPENAI_API_KEY", extra_body: dict | None = None,
                 entropy_estimator: str = "tail_bound"):
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.top_logprobs = int(top_logprobs)
        self.extra_body = dict(extra_body or {})
        self.entropy_estimator = check_entropy_estimator(name, entropy_estimator)
        key = os.environ.get(api_key_env, "EMPTY")
        self.client = httpx.Client(timeout=timeout_s, headers={"Authorization": f"Bearer {key}"})

    def _chat(self, messages: Sequence[Message], **params) -> dict:
        body = {"model": self.model, "messages": list(messages), "logprobs": True,
                "top_logprobs": self.top_logprobs, **params, **self.extra_body}
        url = f"{self.base_url}/chat/completions"
        try:
            resp = self.client.post(url, json=body)
        except httpx.HTTPError as e:
            raise LLMError(f"{self.name}: cannot reach {url} ({type(e).__name__}: {e}). Is the server running? "
                           f"e.g. `vllm serve {self.model}` or llama.cpp's `llama-server -m FILE`") from e
        if resp.status_code != 200:
            raise LLMError(f"{self.name}: {url} answered {resp.status_code}: {resp.text[:500]}")
        return resp.json()

    def generate(self, messages: Sequence[Message], max_tokens: int = 256, stop: Sequence[str] | None = None,
                 temperature: float = 0.0, seed: int = 0) -> Generation:
        t0 = time.perf_counter()
        params = {"max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        if stop:
            params["stop"] = list(stop)
        data = self._chat(messages, **params)
        return generation_from_chat_completion(data, time.perf_counter() - t0, self.entropy_estimator)

    def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        t0 = time.perf_counter()
        data = self._chat(messages, max_tokens=1, temperature=0.0)
        steps = (data["choices"][0].get("logprobs") or {}).get("content") or []
        alternatives = {}
        for alt in (steps[0].get("top_logprobs") or []) if steps else []:
            token = alt["token"].strip()
            alternatives[token] = max(alternatives.get(token, -np.inf), alt["logprob"])
        raw = np.array([np.exp(alternatives[o]) if o in alternatives else 0.0 for o in options])
        mass = float(raw.sum())
        probs = (raw / mass).tolist() if mass > 0 else [1.0 / len(options)] * len(options)
        usage = data.get("usage") or {}
        return OptionScores(options=list(options), probs=probs, prompt_tokens=int(usage.get("prompt_tokens", 0)),
                            latency_s=time.perf_counter() - t0, approximate=True, option_mass=mass)
