"""llama.cpp backend (llama-cpp-python): GGUF files on the CPU, entropy over the full vocabulary."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from sale.llm.base import Generation, LLMError, Message, OptionScores, entropy_from_logits, option_probs_from_logits


class LlamaCppLLM:
    def __init__(
        self,
        name: str,
        model_path: str | Path,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
    ):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        self.model_path = Path(model_path)
        threads = n_threads or os.cpu_count() or 1
        try:
            self.llm = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=n_batch,
                seed=seed,
                verbose=False,
            )
        except Exception as e:  # llama.cpp raises ValueError with no detail on a bad file
            raise LLMError(f"llama.cpp could not load {model_path}: {e}") from e
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise LLMError(f"{model_path} carries no chat template in its GGUF metadata")
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        bos_id = self.llm.token_bos()
        bos = self.llm._model.token_get_text(bos_id) if bos_id >= 0 else ""
        self.formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self.template_stop = [eos]

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        rendered = self.formatter(messages=list(messages))
        # The template writes any BOS itself; special=True parses <|im_start|> and friends as single tokens.
        return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)

    def _check_fits(self, n_prompt: int, max_tokens: int) -> None:
        if n_prompt + max_tokens > self.llm.n_ctx():
            raise LLMError(
                f"{self.name}: prompt of {n_prompt} tokens + {max_tokens} new tokens exceeds the "
                f"context window of {self.llm.n_ctx()}"
            )

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        entropy: bool = False,
    ) -> Generation:
        tokens = self.prompt_tokens(messages)
        self._check_fits(len(tokens), max_tokens)
        entropies: list[float] = []

        def record_entropy(_input_ids, scores):
            entropies.append(entropy_from_logits(scores))
            return scores

        t0 = time.perf_counter()
        out = self.llm.create_completion(
            prompt=tokens,
            max_tokens=max_tokens,
            temperature=temperature,
            seed=seed,
            stop=list(stop or []) + self.template_stop,
            logits_processor=[record_entropy] if entropy else None,
        )
        latency = time.perf_counter() - t0
        choice = out["choices"][0]
        n_completion = out["usage"]["completion_tokens"]
        return Generation(
            text=choice["text"],
            prompt_tokens=len(tokens),
            completion_tokens=n_completion,
            entropies=entropies[:n_completion],
            latency_s=latency,
            finish_reason=choice.get("finish_reason") or "stop",
            entropy_computed=entropy,
        )

    def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        option_ids = [self._single_token(o) for o in options]
        tokens = self.prompt_tokens(messages)
        self._check_fits(len(tokens), 1)
        captured: list[np.ndarray] = []

        def capture(_input_ids, scores):
            if not captured:
                captured.append(np.array(scores, copy=True))
            return scores

        t0 = time.perf_counter()
        # One forward pass over the prompt (llama-cpp-python reuses the cached common prefix); the one token it
        # then samples is thrown away. The logits before sampling are the model's next-token distribution.
        self.llm.create_completion(prompt=tokens, max_tokens=1, temperature=0.0, logits_processor=[capture])
        probs, mass = option_probs_from_logits(captured[0], option_ids)
        return OptionScores(
            options=list(options),
            probs=probs,
            prompt_tokens=len(tokens),
            latency_s=time.perf_counter() - t0,
            option_mass=mass,
        )

    def _single_token(self, option: str) -> int:
        ids = self.llm.tokenize(option.encode("utf-8"), add_bos=False, special=False)
        if len(ids) != 1:
            raise LLMError(f"{self.name}: option {option!r} is {len(ids)} tokens; score_options needs single tokens")
        return ids[0]
