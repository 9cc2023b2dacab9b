"""Which of a llama.cpp server's parallel slots each call goes to (the request's `id_slot`).

A slot keeps the tokens of the last prompt it processed, and a call that starts with the same tokens skips
recomputing them. Left to itself the server picks a slot when the call arrives, so a juror's three ratings of one
task, sent at once, land in three slots and each recomputes the whole task. Here every call names its slot:

- a free slot, never one another call in flight holds, so calls never queue behind each other inside the server;
- among the free slots, the one whose last prompt shares the longest prefix with this call's prompt (a search
  agent's next turn goes back to the slot holding its conversation), the least recently used on a tie;
- a group of calls (one juror's ratings of one task, see `sale.auction.jury`) holds one slot for all its calls, in
  sequence, so only the first recomputes the task.

With greedy decoding the slot changes which requests are decoded together and which prefix is reused, which can
change the last digits of a log-probability, as the server's own choice of slot already does
(data/bench/jury_slots.md measures both).
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from sale.llm.base import Message, OptionScores


def prompt_text(messages: Sequence[Message]) -> str:
    """The messages as one string whose common prefixes follow the chat template's token prefixes."""
    return "".join(f"\x00{m.get('role', '')}\x01{m.get('content', '')}" for m in messages)


class SlotPicker:
    def __init__(self, n_slots: int):
        self.n_slots = max(1, int(n_slots))
        self._cond = threading.Condition()
        self._free = list(range(self.n_slots))
        self._last_prompt = [""] * self.n_slots
        self._last_used = [0] * self.n_slots
        self._clock = 0

    @contextmanager
    def take(self, messages: Sequence[Message]) -> Iterator[int]:
        """A free slot for a call (or a group of calls) on these messages, held until the block ends."""
        prompt = prompt_text(messages)
        with self._cond:
            self._cond.wait_for(lambda: bool(self._free))
            slot = max(
                self._free,
                key=lambda s: (len(os.path.commonprefix([self._last_prompt[s], prompt])), -self._last_used[s]),
            )
            self._free.remove(slot)
        try:
            yield slot
        finally:
            with self._cond:
                self._clock += 1
                self._last_prompt[slot], self._last_used[slot] = prompt, self._clock
                self._free.append(slot)
                self._cond.notify()

    def rate_in_sequence(
        self,
        score_options: Callable[[Sequence[Message], Sequence[str], int], OptionScores],
        messages_list: Sequence[Sequence[Message]],
        options: Sequence[str],
    ) -> list[OptionScores]:
        """One juror's ratings of one task, `score_options(messages, options, slot)` each, in sequence on one slot:
        only the first recomputes the prefix they share."""
        if not messages_list:
            return []
        with self.take(messages_list[0]) as slot:
            return [score_options(m, options, slot) for m in messages_list]
