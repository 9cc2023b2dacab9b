"""llama.cpp through xllamacpp: the default engine of the cpu pool, a prebuilt wheel that compiles nothing.

xllamacpp embeds llama.cpp's own server (continuous batching over parallel slots, prompt caching) and answers
in-process through `Server.handle_chat_completions`, so the GGUF file's own chat template renders the prompt.
The wheel is built for x86-64 with AVX2 and carries no AVX-512 or AMX kernels, so it runs on AMD EPYC and on
Intel hosts whose VM does not enable AMX alike (the crash a natively built llama-cpp-python hit there).

The server returns the top-k log-probabilities of every generated token over the full softmax, not the whole
distribution, so entropies here are estimates (`entropy_approximate=True` in the logs; the estimator and its
measured error are in base.entropy_from_top_logprobs and data/bench/entropy_fidelity.md). Jury options are exact:
they are read from the top `option_top_logprobs` of one token, and in the rare case that an option is not among
them, from the whole distribution (one slower call).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Sequence

from sale.llm.base import (Generation, LLMError, Message, OptionScores, check_entropy_estimator,
                           generation_from_chat_completion)

WHOLE_VOCABULARY = 1 << 20  # more log-probabilities than any vocabulary has: llama.cpp then returns them all


class XLlamaCppLLM:
    engine = "xllamacpp"

    def __init__(self, name: str, model_path: str | Path, n_ctx: int = 8192, n_threads: int | None = None,
                 n_batch: int = 512, n_parallel: int = 1, top_logprobs: int = 200, option_top_logprobs: int = 1000,
                 entropy_estimator: str = "tail_bound", seed: int = 0):
        import xllamacpp

        self.name = name
        self.model_path = Path(model_path)
        self.top_logprobs = int(top_logprobs)
        self.option_top_logprobs = int(option_top_logprobs)
        self.entropy_estimator = check_entropy_estimator(name, entropy_estimator)
        threads = n_threads or os.cpu_count() or 1
        params = xllamacpp.CommonParams()
        params.model.path = str(model_path)
        # each slot gets its own n_ctx: a slot must hold a whole conversation, whatever the other slots hold
        params.n_ctx = int(n_ctx) * int(n_parallel)
        params.n_parallel = int(n_parallel)
        params.n_batch = int(n_batch)
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.sampling.seed = int(seed)
        params.hostnames = ["127.0.0.1"]  # the embedded HTTP server listens on loopback only
        params.verbosity = -1  # llama.cpp otherwise logs every slot event to stderr
        if not self.model_path.is_file():
            raise LLMError(f"{name}: model file not found: {model_path}")
        try:
            self.server = xllamacpp.Server(params)
        except Exception as e:  # a file llama.cpp cannot parse raises here with llama.cpp's reason
            raise LLMError(f"{name}: xllamacpp could not load {model_path}: {e}") from e

    @property
    def url(self) -> str:
        """The embedded server's OpenAI-compatible base URL (127.0.0.1, a free port)."""
        return self.server.listening_address + "/v1"

    def chat(self, messages: Sequence[Message], **body) -> dict:
        """One OpenAI-style chat completion from the embedded server, as its raw JSON (a dict)."""
        request = {"messages": [dict(m) for m in messages], **body}
        out = self.server.handle_chat_completions(request)
        if "error" in out:
            err = out["error"]
            raise LLMError(f"{self.name}: llama.cpp refused the call ({err.get('type', 'error')}): "
                           f"{err.get('message', err)}")
        return out

    def generate(self, messages: Sequence[Message], max_tokens: int = 256, stop: Sequence[str] | None = None,
                 temperature: float = 0.0, seed: int = 0) -> Generation:
        t0 = time.perf_counter()
        body = {"max_tokens": int(max_tokens), "temperature": float(temperature), "seed": int(seed),
                "logprobs": True, "top_logprobs": self.top_logprobs}
        if stop:
            body["stop"] = list(stop)
        out = self.chat(messages, **body)
        return generation_from_chat_completion(out, time.perf_counter() - t0, self.entropy_estimator)

    def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        t0 = time.perf_counter()
        out, found = self._option_logprobs(messages, options, self.option_top_logprobs)
        if len(found) < len(options):  # rare: an option below the top k; ask once for the whole distribution
            out, found = self._option_logprobs(messages, options, WHOLE_VOCABULARY)
        raw = [math.exp(found[o]) if o in found else 0.0 for o in options]
        mass = sum(raw)
        probs = [r / mass for r in raw] if mass > 0 else [1.0 / len(options)] * len(options)
        n_prompt = int((out.get("usage") or {}).get("prompt_tokens", 0))
        return OptionScores(options=list(options), probs=probs, prompt_tokens=n_prompt,
                            latency_s=time.perf_counter() - t0, approximate=len(found) < len(options),
                            option_mass=mass)

    def _option_logprobs(self, messages: Sequence[Message], options: Sequence[str], k: int) -> tuple[dict, dict]:
        out = self.chat(messages, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=k)
        steps = (out["choices"][0].get("logprobs") or {}).get("content") or []
        if not steps:
            raise LLMError(f"{self.name}: the server returned no log-probabilities for the option token")
        found: dict[str, float] = {}
        for alt in steps[0].get("top_logprobs") or []:
            if alt["token"] in options:  # exact token text: " 3" is another token than "3"
                found[alt["token"]] = max(found.get(alt["token"], -math.inf), alt["logprob"])
        return out, found

    def close(self) -> None:
        server = self.__dict__.pop("server", None)
        del server  # the destructor stops llama.cpp's loop and frees the model
