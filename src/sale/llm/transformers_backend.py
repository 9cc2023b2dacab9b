"""transformers backend: a hub id or a local checkpoint (the cpu_hf pool's GGUF files, converted once); CPU or CUDA.

Three things make it usable for agent loops and juries, and none changes what it computes:
- **KV reuse.** The cache of the last few sequences (prompt plus generation) is kept. A new prompt that starts with
  one of them (the next turn of a conversation, the next plan rated on the same task) computes only its new tokens.
- **A batched jury.** `score_options_batch` rates several prompts in one forward pass: the prefix they share
  (instructions and task) is computed once, then the different suffixes run as one right-padded batch. A rating
  reads one position, the last real token of its row, and causal attention never lets it see the padding after it,
  so no position or mask juggling is needed for it to equal the one-at-a-time rating.
- **Thinking mode** (Qwen3's `enable_thinking`): the `<think>` block is kept out of the text that agents parse,
  and out of the entropies, but its tokens count in completion_tokens, so they are charged.

On CUDA the defaults are bfloat16 and SDPA attention. `device_map`/`max_memory` pass through to from_pretrained,
to spread one model over several GPUs (sale.llm.placement plans them).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

from sale.llm import random_weights
from sale.llm.base import (
    THINK_CLOSE,
    Generation,
    LLMError,
    Message,
    OptionScores,
    entropy_from_logits,
    option_probs_from_logits,
    split_thinking,
    strip_at_stop,
)


def common_prefix_len(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens all prompts share from the start, leaving each at least one token of its own."""
    shared = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        shared = min(shared, common_prefix_len(prompts[0], p))
    return shared


def resolved_identity(options: dict) -> dict:
    """What an agent's options resolve to that changes what it writes (the call cache keys on it): the dtype and
    device type that "auto" picks on this machine, and the chat template's arguments, thinking included."""
    import torch

    device = str(options.get("device", "auto"))
    if options.get("device_map") is not None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_gpu = not device.startswith("cpu")
    dtype = str(options.get("dtype", "auto"))
    if dtype == "auto":
        dtype = "bfloat16" if on_gpu else "float32"
    kwargs = dict(options.get("chat_template_kwargs") or {})
    if options.get("enable_thinking") is not None:
        kwargs["enable_thinking"] = bool(options["enable_thinking"])
    return {
        "dtype": dtype,
        "device_type": "cuda" if on_gpu else "cpu",
        "attn": options.get("attn_implementation") or ("sdpa" if on_gpu else None),
        "chat_template_kwargs": kwargs,
    }


class _StopAfterThinking:
    """A stopping criterion: stop once a stop string appears in the text after the <think> block (or in the whole
    text when there is none). Decodes only the tail of the generation at each step."""

    def __init__(self, tokenizer, stops: Sequence[str], prompt_len: int, think_close_id: int | None):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, list(stops), prompt_len
        self.think_close_id = think_close_id  # None unless thinking: then nothing stops before the block closes
        self.tail = 8 + max(len(s) for s in self.stops)  # tokens: a stop string is never longer than its characters

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        new = input_ids[0, self.prompt_len :]
        if self.think_close_id is not None:
            close = (new == self.think_close_id).nonzero()
            if len(close):
                new = new[int(close[-1, 0]) + 1 :]
            else:
                return torch.tensor([False], device=input_ids.device)
        text = self.tokenizer.decode(new[-self.tail :], skip_special_tokens=True)
        return torch.tensor([any(s in text for s in self.stops)], device=input_ids.device)


class TransformersLLM:
    groups_ratings = True  # score_options_batch: a juror's ratings of one task in one forward pass

    def __init__(
        self,
        name: str,
        model: str | Path,
        gguf_file: str | None = None,
        dtype: str = "auto",
        device: str = "auto",
        device_map: str | dict | None = None,
        max_memory: dict | None = None,
        attn_implementation: str | None = None,
        chat_template_kwargs: dict | None = None,
        enable_thinking: bool | None = None,
        kv_reuse: bool = True,
        kv_cache_entries: int = 4,
    ):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = name
        self.torch = torch
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        if enable_thinking is not None:
            self.chat_template_kwargs["enable_thinking"] = bool(enable_thinking)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        on_gpu = not str(device).startswith("cpu")
        if dtype == "auto":
            dtype = "bfloat16" if on_gpu else "float32"
        self.dtype = dtype
        if attn_implementation is None and on_gpu:
            attn_implementation = "sdpa"
        self.attn_implementation = attn_implementation
        self.kv_reuse = bool(kv_reuse)
        self.kv_cache_entries = int(kv_cache_entries)
        self._kv: list[tuple[list[int], Any]] = []  # (token ids, DynamicCache holding exactly them), newest first
        kwargs = {"gguf_file": gguf_file} if gguf_file else {}
        load = dict(kwargs, dtype=getattr(torch, dtype))
        if attn_implementation:
            load["attn_implementation"] = attn_implementation
        if device_map is not None:
            load["device_map"] = device_map
            if max_memory:
                load["max_memory"] = max_memory
        self.tokenizer: Any
        self.model: Any
        try:
            if random_weights.is_random(model):  # an architecture with random weights, built on its device
                if device_map is not None:
                    raise LLMError(f"{model}: random weights are built on one device, not split with a device_map")
                self.tokenizer, self.model = random_weights.load(str(model), dtype, str(device), attn_implementation)
            else:
                self.tokenizer = AutoTokenizer.from_pretrained(str(model), **kwargs)
                self.model = AutoModelForCausalLM.from_pretrained(str(model), **load)
        except (OSError, ValueError) as e:
            raise LLMError(f"transformers could not load {model!r}{' / ' + gguf_file if gguf_file else ''}: {e}") from e
        if device_map is None:
            self.model.to(device)
        self.model.eval()
        self.device = self.model.get_input_embeddings().weight.device  # where inputs go, also under a device_map
        if not self.tokenizer.chat_template:
            raise LLMError(f"{model} has no chat template")
        vocab = self.tokenizer.get_vocab()
        self.think_close_id = vocab.get(THINK_CLOSE)
        self.pad_id = (
            self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        )
        self.kv_hits = 0  # prompt tokens served from a kept cache (for benchmarks)

    @property
    def thinking(self) -> bool:
        return bool(self.chat_template_kwargs.get("enable_thinking", False)) and self.think_close_id is not None

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        enc = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=True, return_dict=True, **self.chat_template_kwargs
        )
        return list(enc["input_ids"])

    # --------------------------------------------------------------------------------------------- KV reuse

    def _take_cache(self, ids: list[int]) -> tuple[Any, int]:
        """The kept cache sharing the longest prefix with ids, cut to that prefix (at most len(ids) - 1 tokens, so
        that at least one token is computed), and removed from the kept ones; or (None, 0)."""
        if not self.kv_reuse or not self._kv:
            return None, 0
        best = max(range(len(self._kv)), key=lambda i: common_prefix_len(self._kv[i][0], ids))
        n = min(common_prefix_len(self._kv[best][0], ids), len(ids) - 1)
        if n <= 0:
            return None, 0
        _, cache = self._kv.pop(best)
        extra = cache.get_seq_length() - n
        if extra > 0:
            cache.crop(-extra)
        self.kv_hits += n
        return cache, n

    def _keep_cache(self, ids: list[int], cache) -> None:
        if not self.kv_reuse or cache is None:
            return
        n = cache.get_seq_length()
        self._kv.insert(0, (list(ids[:n]), cache))
        del self._kv[self.kv_cache_entries :]

    def clear_cache(self) -> None:
        self._kv.clear()

    # ------------------------------------------------------------------------------------------- generation

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        entropy: bool = False,
    ) -> Generation:
        torch = self.torch
        prompt = self.prompt_ids(messages)
        ids = torch.tensor([prompt], device=self.device)
        cache, _ = self._take_cache(prompt)
        torch.manual_seed(seed)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        criteria = None
        if stop:
            from transformers import StoppingCriteriaList

            criteria = StoppingCriteriaList(
                [_StopAfterThinking(self.tokenizer, stop, len(prompt), self.think_close_id if self.thinking else None)]
            )
        t0 = time.perf_counter()
        with torch.no_grad():
            out = self.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                output_logits=entropy,  # a step's logits over the whole vocabulary: only bids read them
                return_dict_in_generate=True,
                pad_token_id=self.pad_id,
                cache=cache,
                use_cache=True,
                stopping_criteria=criteria,
                top_p=None,
                top_k=None,
                **sampling,
            )
        latency = time.perf_counter() - t0
        sequence = out.sequences[0]
        self._keep_cache(sequence.tolist(), out.cache)
        new = sequence[len(prompt) :]
        eos = self.tokenizer.eos_token_id
        n_new, finish = len(new), "length"
        if eos is not None and (new == eos).any():
            n_new, finish = int((new == eos).nonzero()[0, 0]), "stop"
        new = new[:n_new]
        entropies = (
            [entropy_from_logits(step[0].float().cpu().numpy()) for step in out.logits[:n_new]] if entropy else []
        )
        visible_from = 0
        if self.thinking:
            close = (new == self.think_close_id).nonzero()
            visible_from = int(close[0, 0]) + 1 if len(close) else n_new
        text = self.tokenizer.decode(new[visible_from:], skip_special_tokens=True)
        if self.thinking and visible_from == 0:
            text = split_thinking(text)[1]  # the template opened the block itself, or the model skipped it
        text, stopped = strip_at_stop(text.lstrip() if visible_from else text, stop)
        if stopped:
            finish = "stop"
        tokens = [self.tokenizer.decode([t]) for t in new[visible_from:].tolist()]
        return Generation(
            text=text,
            prompt_tokens=len(prompt),
            completion_tokens=n_new,
            entropies=entropies[visible_from:],
            latency_s=latency,
            finish_reason=finish,
            tokens=tokens,
            entropy_computed=entropy,
        )

    # ------------------------------------------------------------------------------------------------- jury

    def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores:
        return self.score_options_batch([messages], options)[0]

    def score_options_batch(
        self, messages_list: Sequence[Sequence[Message]], options: Sequence[str]
    ) -> list[OptionScores]:
        """One OptionScores per prompt, from one forward pass over their shared prefix and one over the batch of
        their suffixes. Each is charged its whole prompt by the ledger, as an API would charge it."""
        torch = self.torch
        option_ids = [self._single_token(o) for o in options]
        prompts = [self.prompt_ids(m) for m in messages_list]
        shared = shared_prefix_len(prompts)
        t0 = time.perf_counter()
        with torch.no_grad():
            cache, n = self._take_cache(prompts[0][: shared + 1]) if shared > 0 else (None, 0)
            if len(prompts) > 1 or cache is not None:
                cache = self._prefix_cache(prompts[0][:shared], cache, n)
                if self.kv_reuse:  # the shared prefix stays for the next batch on the same task
                    import copy

                    kept = copy.deepcopy(cache)
                start = shared
            else:
                start = 0
            suffixes = [p[start:] for p in prompts]
            width = max(len(s) for s in suffixes)
            batch = torch.full((len(prompts), width), self.pad_id, dtype=torch.long, device=self.device)
            mask = torch.zeros((len(prompts), start + width), dtype=torch.long, device=self.device)
            mask[:, :start] = 1
            for i, s in enumerate(suffixes):
                batch[i, : len(s)] = torch.tensor(s, device=self.device)
                mask[i, start : start + len(s)] = 1
            if cache is not None:
                cache.batch_repeat_interleave(len(prompts))
            positions = torch.arange(start, start + width, device=self.device).expand(len(prompts), -1)
            hidden = self.model.base_model(
                input_ids=batch, attention_mask=mask, cache=cache, position_ids=positions, use_cache=cache is not None
            ).last_hidden_state
            last = hidden[
                torch.arange(len(prompts), device=hidden.device),
                torch.tensor([len(s) - 1 for s in suffixes], device=hidden.device),
            ]
            logits = self.model.get_output_embeddings()(last).float().cpu().numpy()
            if start and self.kv_reuse:
                self._keep_cache(prompts[0][:start], kept)
        latency = (time.perf_counter() - t0) / len(prompts)
        out = []
        for p, row in zip(prompts, logits):
            probs, mass = option_probs_from_logits(row, option_ids)
            out.append(
                OptionScores(
                    options=list(options), probs=probs, prompt_tokens=len(p), latency_s=latency, option_mass=mass
                )
            )
        return out

    def _prefix_cache(self, prefix: list[int], cache, cached: int):
        """A DynamicCache holding exactly `prefix`, extending `cache` (which holds its first `cached` tokens)."""
        from transformers import DynamicCache

        torch = self.torch
        cache = cache if cache is not None else DynamicCache()
        if cached < len(prefix):
            rest = torch.tensor([prefix[cached:]], device=self.device)
            positions = torch.arange(cached, len(prefix), device=self.device)[None]
            self.model.base_model(input_ids=rest, cache=cache, position_ids=positions, use_cache=True)
        return cache

    def _single_token(self, option: str) -> int:
        ids = self.tokenizer.encode(option, add_special_tokens=False)
        if len(ids) != 1:
            raise LLMError(f"{self.name}: option {option!r} is {len(ids)} tokens; score_options needs single tokens")
        return ids[0]

    def close(self) -> None:
        """Free the weights and the kept caches (on-demand loading evicts a model this way)."""
        self._kv.clear()
        self.model = None
        if self.torch.cuda.is_available():
            self.torch.cuda.empty_cache()
