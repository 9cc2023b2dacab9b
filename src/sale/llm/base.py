"""The one interface every backend implements, and the numerics they share."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

import numpy as np

Message = dict  # {"role": "system" | "user" | "assistant", "content": str}


class LLMError(RuntimeError):
    """A backend could not serve a call (bad model file, unreachable server, ...). The message says why."""


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    entropies: list[float]  # per completion token: Shannon entropy (nats) of the next-token distribution
    latency_s: float
    entropy_approximate: bool = False  # True when computed from renormalised top-k log-probabilities
    finish_reason: str = "stop"  # "stop" | "length"
    cached: bool = False  # served from the call cache (tokens are still charged)
    tokens: list[str] = field(default_factory=list)  # each completion token's text, where the backend reports it
    entropy_computed: bool = True  # False: the caller did not ask for the entropy (generate(entropy=False))

    @property
    def mean_entropy(self) -> float | None:
        """The mean per-token entropy in nats; None where it was not computed (only bids ask for it)."""
        if not self.entropy_computed:
            return None
        return float(np.mean(self.entropies)) if self.entropies else 0.0

    def without_entropy(self) -> "Generation":
        """This generation as a call that did not ask for the entropy would have logged it."""
        return replace(self, entropies=[], tokens=[], entropy_computed=False)


@dataclass
class OptionScores:
    """A model's distribution over a few short options after a prompt, from one forward pass."""

    options: list[str]
    probs: list[float]  # renormalised over the options; sums to 1
    prompt_tokens: int
    latency_s: float
    approximate: bool = False  # True when the options were read from top-k log-probabilities only
    option_mass: float = 1.0  # probability mass the options had before renormalising
    cached: bool = False

    def expected_value(self) -> float:
        return float(sum(float(o) * p for o, p in zip(self.options, self.probs)))

    def argmax(self) -> str:
        return self.options[int(np.argmax(self.probs))]


class LLM(Protocol):
    name: str

    def generate(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        stop: Sequence[str] | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        entropy: bool = False,  # compute the per-token entropy (and ask the engine for log-probabilities)
    ) -> Generation: ...

    def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> OptionScores: ...


def entropy_from_logits(logits: np.ndarray) -> float:
    """Shannon entropy (natural log) of softmax(logits) over the whole vocabulary."""
    x = np.asarray(logits)
    x = x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)  # float32 exp is SIMD here
    x = x[np.isfinite(x)]  # masked (-inf) tokens have zero probability
    y = x - x.max()
    z = np.exp(y)
    s = float(z.sum(dtype=np.float64))
    # H = log s - sum p y. No np.dot: a threaded BLAS dot spins threads on the cores llama.cpp is decoding on,
    # which made generation 2-4x slower (scripts/bench_backends.py measures this ratio).
    return math.log(s) - float((z * y).sum(dtype=np.float64)) / s


ENTROPY_ESTIMATORS = ("renormalised", "tail_bound")


def entropy_from_top_logprobs(logprobs: Sequence[float], estimator: str = "renormalised") -> float:
    """Entropy (nats) of a next-token distribution known only through its top-k log-probabilities.

    renormalised: the entropy of the top k alone, renormalised to sum to 1 (all a server tells when its
      log-probabilities are themselves renormalised over the top k).
    tail_bound: the top k's own terms, -sum p log p, plus the tail mass r = 1 - sum p at the smallest listed
      probability, r * -log p_k. Every tail token has p <= p_k, so this is a lower bound on the true entropy,
      and it is exact when the tail is empty. It needs log-probabilities over the full softmax (llama.cpp's
      server gives those; vLLM's by default too).
    The error of each against the full vocabulary is measured in scripts/entropy_fidelity.py.
    """
    lp = np.asarray(list(logprobs), dtype=np.float64)
    if lp.size == 0:
        return 0.0
    if estimator == "renormalised":
        return entropy_from_logits(lp)
    if estimator != "tail_bound":
        raise ValueError(f"unknown entropy estimator {estimator!r}; one of {ENTROPY_ESTIMATORS}")
    lp = lp[np.isfinite(lp)]
    p = np.exp(lp)
    tail = max(0.0, 1.0 - float(p.sum()))
    return float(-(p * lp).sum()) + tail * float(-lp.min())


def check_entropy_estimator(agent: str, estimator: str) -> str:
    if estimator not in ENTROPY_ESTIMATORS:
        raise LLMError(f"{agent}: entropy_estimator must be one of {ENTROPY_ESTIMATORS}, got {estimator!r}")
    return estimator


def generation_from_chat_completion(data: dict, latency_s: float, estimator: str, entropy: bool = True) -> Generation:
    """A Generation from an OpenAI-style chat completion with per-token `top_logprobs` (vLLM, SGLang, llama.cpp's
    server): entropies estimated from the top k, and marked approximate. entropy=False: a call that asked for no
    log-probabilities, so none are read."""
    choice = data["choices"][0]
    steps = (choice.get("logprobs") or {}).get("content") or [] if entropy else []
    usage = data.get("usage") or {}
    if entropy and not steps and int(usage.get("completion_tokens", 0)) > 0:  # a bid's entropy would silently be 0
        raise LLMError(
            "the server returned no log-probabilities for the generated tokens, and a bid's entropy "
            "needs them: serve the model with log-probabilities enabled (vLLM: --max-logprobs 20)"
        )
    entropies = [
        entropy_from_top_logprobs([alt["logprob"] for alt in step.get("top_logprobs") or []], estimator)
        for step in steps
    ]
    # A thinking model's <think> block (a server without a reasoning parser leaves it in the content) stays out of
    # the text agents parse; its tokens are still in completion_tokens, so they are charged.
    text = split_thinking(choice["message"].get("content") or "")[1]
    return Generation(
        text=text,
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", len(steps))),
        entropies=entropies,
        latency_s=latency_s,
        entropy_approximate=entropy,
        finish_reason=choice.get("finish_reason") or "stop",
        tokens=[step.get("token", "") for step in steps],
        entropy_computed=entropy,
    )


def option_probs_from_logits(logits: np.ndarray, option_ids: Sequence[int]) -> tuple[list[float], float]:
    """Probabilities of the option tokens, renormalised over the options; also their raw total mass."""
    x = np.asarray(logits, dtype=np.float64)
    m = x.max()
    full = np.exp(x - m)
    full /= full.sum()
    sel = full[list(option_ids)]
    mass = float(sel.sum())
    if mass <= 0:
        return [1.0 / len(option_ids)] * len(option_ids), 0.0
    return [float(v) for v in sel / mass], mass


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_thinking(text: str) -> tuple[str, str]:
    """(reasoning, answer) of a reply that may open with a <think> block. A block never closed (the reply was cut
    at max_tokens while thinking) leaves no answer."""
    head = text.lstrip()
    if THINK_CLOSE in text:
        reasoning, _, answer = text.partition(THINK_CLOSE)
        return reasoning.replace(THINK_OPEN, "", 1).strip(), answer.lstrip()
    if head.startswith(THINK_OPEN):
        return head[len(THINK_OPEN) :].strip(), ""
    return "", text


def strip_at_stop(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """Cut text at the first stop string; True if one was found."""
    if not stop:
        return text, False
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def option_scores_from_chat_completions(
    ask, options: Sequence[str], top_k: int, fallback_k: int | None, latency_start: float
) -> OptionScores:
    """A jury rating from a server's log-probabilities of one generated token. `ask(k)` makes the call with
    top_logprobs=k and returns its JSON. Options match token texts exactly (" 3" is another token than "3"). When an
    option is not among the top k and the server can return more (fallback_k, e.g. a whole vocabulary for llama.cpp),
    it is asked once more; otherwise the missing options get probability 0 and the scores are marked approximate."""

    def found_in(data: dict) -> dict[str, float]:
        steps = (data["choices"][0].get("logprobs") or {}).get("content") or []
        if not steps:
            raise LLMError("the server returned no log-probabilities for the option token")
        found: dict[str, float] = {}
        for alt in steps[0].get("top_logprobs") or []:
            logprob = float(alt["logprob"])
            if alt["token"] in options and math.isfinite(logprob):  # NaN or -inf: as good as absent
                found[alt["token"]] = max(found.get(alt["token"], -math.inf), logprob)
        return found

    data = ask(top_k)
    found = found_in(data)
    if len(found) < len(options) and fallback_k:
        data = ask(fallback_k)
        found = found_in(data)
    raw = [math.exp(found[o]) if o in found else 0.0 for o in options]
    mass = sum(raw)
    probs = [r / mass for r in raw] if mass > 0 else [1.0 / len(options)] * len(options)
    n_prompt = int((data.get("usage") or {}).get("prompt_tokens", 0))
    return OptionScores(
        options=list(options),
        probs=probs,
        prompt_tokens=n_prompt,
        latency_s=time.perf_counter() - latency_start,
        approximate=len(found) < len(options),
        option_mass=mass,
    )
