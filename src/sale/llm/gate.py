"""The gate in front of every loaded model: at most N calls in flight to one agent (1 for an engine that is not
thread-safe), and one local model computing on this CPU at a time (CpuRoom). sale.harness.concurrency runs the
tasks and calls that go through these gates."""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager, nullcontext

THREAD_SAFE_BACKENDS = ("xllamacpp", "openai")  # the others hold one model state that two calls would corrupt


class CpuRoom:
    """One local model computes at a time; any number of calls to that model may compute together. Entry is first
    come, first served by agent: a call to the model inside waits behind a call to another model that came first,
    so no model starves."""

    def __init__(self):
        self._cond = threading.Condition()
        self._waiting: deque[tuple[object, str]] = deque()
        self._inside: str | None = None
        self._count = 0

    def _may_enter(self, ticket: object, agent: str) -> bool:
        for t, a in self._waiting:  # everyone ahead of this ticket
            if t is ticket:
                return self._inside in (None, agent)
            if a != agent:
                return False
        return False

    @contextmanager
    def enter(self, agent: str):
        ticket = object()
        with self._cond:
            self._waiting.append((ticket, agent))
            self._cond.wait_for(lambda: self._may_enter(ticket, agent))
            self._waiting.remove((ticket, agent))
            self._inside, self._count = agent, self._count + 1
            self._cond.notify_all()  # the next calls to the same agent may follow it in
        try:
            yield
        finally:
            with self._cond:
                self._count -= 1
                if self._count == 0:
                    self._inside = None
                self._cond.notify_all()


class AgentGate:
    """Any LLM behind a semaphore: at most `limit` calls to it in flight, and, for a model on this machine's CPU,
    inside the pool's CpuRoom. Everything else passes through."""

    def __init__(self, llm, limit: int, room: CpuRoom | None = None):
        self.llm = llm
        self.limit = max(1, int(limit))
        self._slots = threading.BoundedSemaphore(self.limit)
        self._room = room

    def _turn(self):
        return self._room.enter(self.llm.name) if self._room is not None else nullcontext()

    def generate(self, *args, **kwargs):
        with self._slots, self._turn():
            return self.llm.generate(*args, **kwargs)

    def score_options(self, *args, **kwargs):
        with self._slots, self._turn():
            return self.llm.score_options(*args, **kwargs)

    def score_options_batch(self, messages_list, options):
        """One juror's ratings as one group where the backend groups them (transformers: one pass; llama.cpp: one
        slot), else one by one."""
        with self._slots, self._turn():
            batch = getattr(self.llm, "score_options_batch", None)
            if batch is not None:
                return batch(messages_list, options)
            return [self.llm.score_options(m, options) for m in messages_list]

    def __getattr__(self, name):
        return getattr(self.llm, name)


def agent_limit(backend: str, concurrency: int) -> int:
    return max(1, int(concurrency)) if backend in THREAD_SAFE_BACKENDS else 1


def computes_on_this_cpu(backend: str, options: dict) -> bool:
    """llama.cpp in-process or in a server this pool starts, llama-cpp-python, transformers on the CPU."""
    if backend in ("xllamacpp", "llamacpp"):
        return True
    if backend == "transformers":
        return str(options.get("device", "cpu")).startswith("cpu")
    serve = options.get("serve") or {}
    return backend == "openai" and bool(serve) and serve.get("engine", "xllamacpp") == "xllamacpp"
