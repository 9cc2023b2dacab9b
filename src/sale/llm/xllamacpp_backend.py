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

import os
import time
from pathlib import Path
from typing import Any, Sequence

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

WHOLE_VOCABULARY = 1 << 20  # more log-probabilities than any vocabulary has: llama.cpp then returns them all


def server_params(
    model_path: str | Path,
    n_ctx: int = 8192,
    n_threads: int | None = None,
    n_batch: int = 512,
    n_parallel: int = 1,
    seed: int = 0,
    port: int = 0,
):
    """llama.cpp server parameters, shared by the in-process engine and the served one (sale.llm.local_server)."""
    import xllamacpp

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
    params.hostnames = ["127.0.0.1"]  # the HTTP server listens on loopback only
    params.port = int(port)  # 0: a free port
    params.verbosity = -1  # llama.cpp otherwise logs every slot event to stderr
    return params


class XLlamaCppLLM:
    engine = "xllamacpp"
    groups_ratings = True  # score_options_batch: a juror's ratings of one task in sequence on one slot

    def __init__(
        self,
        name: str,
        model_path: str | Path,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        n_batch: int = 512,
        n_parallel: int = 1,
        top_logprobs: int = 200,
        option_top_logprobs: int = 1000,
        entropy_estimator: str = "tail_bound",
        seed: int = 0,
    ):
        self.name = name
        self.model_path = Path(model_path)
        self.top_logprobs = int(top_logprobs)
        self.option_top_logprobs = int(option_top_logprobs)
        self.entropy_estimator = check_entropy_estimator(name, entropy_estimator)
        params = server_params(
            model_path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, n_parallel=n_parallel, seed=seed
        )
        if not self.model_path.is_file():
            raise LLMError(f"{name}: model file not found: {model_path}")
        self.slots = SlotPicker(n_parallel)
        try:
            import xllamacpp

            self.server = xllamacpp.Server(params)
        except Exception as e:  # a file llama.cpp cannot parse raises here with llama.cpp's reason
            raise LLMError(f"{name}: xllamacpp could not load {model_path}: {e}") from e

    @property
    def url(self) -> str:
        """The embedded server's OpenAI-compatible base URL (127.0.0.1, a free port)."""
        return self.server.listening_address + "/v1"

    def chat(self, messages: Sequence[Message], slot: int | None = None, **body) -> dict:
        """One OpenAI-style chat completion from the embedded server, as its raw JSON (a dict), in `slot` or in the
        slot sale.llm.slots picks for it."""
        if slot is None:
            with self.slots.take(messages) as slot:
                return self.chat(messages, slot=slot, **body)
        request = {"messages": [dict(m) for m in messages], "id_slot": int(slot), **body}
        out = self.server.handle_chat_completions(request)
        if "error" in out:
            err = out["error"]
            raise LLMError(
                f"{self.name}: llama.cpp refused the call ({err.get('type', 'error')}): {err.get('message', err)}"
            )
        return out

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
        body: dict[str, Any] = {
            "max_tokens": int(max_tokens),
            "temperature": float(temperature),
            "seed": int(seed),
        }
        if entropy:  # the top-k lists cost a fifth of a small model's decoding time: only bids read them
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        if stop:
            body["stop"] = list(stop)
        out = self.chat(messages, **body)
        return generation_from_chat_completion(out, time.perf_counter() - t0, self.entropy_estimator, entropy)

    def score_options(
        self, messages: Sequence[Message], options: Sequence[str], slot: int | None = None
    ) -> OptionScores:
        t0 = time.perf_counter()
        try:
            return option_scores_from_chat_completions(
                lambda k: self.chat(messages, slot, max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=k),
                options,
                self.option_top_logprobs,
                WHOLE_VOCABULARY,
                t0,
            )
        except LLMError as e:
            raise LLMError(f"{self.name}: {e}") from e

    def score_options_batch(
        self, messages_list: Sequence[Sequence[Message]], options: Sequence[str]
    ) -> list[OptionScores]:
        """One juror's ratings of one task, in sequence on one slot (SlotPicker.rate_in_sequence)."""
        return self.slots.rate_in_sequence(self.score_options, messages_list, options)

    def close(self) -> None:
        server = self.__dict__.pop("server", None)
        del server  # the destructor stops llama.cpp's loop and frees the model
