"""The deep-search agent: a ReAct loop (lookup, search, open, answer) over one PhantomWiki universe.

Tools (src/sale/tools/): `lookup[<relation> of <Name>, ...]` follows one relation word of a question for one or
several people (relations.py), `search[keywords]` is BM25 over the articles, `open[Name]` returns an article,
`answer[...]` ends the task. The turn budget is the same for every question (`agent.max_turns.search`), large
enough for the longest relation chains of any bin; the last turn must answer, and so must the turn after
STUCK_LIMIT unusable replies in a row (a model looping on one malformed or repeated action does not recover in
our transcripts; this saves the rest of the budget). A reply on such a turn that does not answer ends the task
with no answer.

The whole trace stays in the context: each reply is kept up to its first action (small models imitate whatever
they see, so a reply that rambled on with invented observations would be copied next turn), and when the trace
outgrows `context_chars` the oldest observations are shortened first (an article to its family and friends
lines, a search to its titles), never the question or the latest two observations.

The progress note (`progress`, on by default): after every observation the agent sees "Question left: ...", the
question with the part its own lookups have resolved replaced by the people they led to ("Who is the mother of
the nephew of Carl Peace?" after lookup[nephew of Carl Peace] reads "Who is the mother of Cleveland Fite, Hyman
Fite?"). It moves only when a lookup asks the innermost relation for exactly the people it names
(Chain, below), so it is a scratchpad of the agent's work, not a solver: small models otherwise
lose their place in a chain of nine relations or carry one name of several.

What the result records besides the answer: `turns`, `malformed` (replies without a usable action, repeats
included), `tool_actions` (valid tool calls that ran), `forced` (the answer came on the last turn, after the
scaffold demanded one). A tool that raises on odd model input is a bug to mend, but it costs that one turn, not the
run: the agent sees `tool_error`, the trajectory step is marked `error`, and the log says which input raised.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from sale.agents import AgentResult
from sale.tools.relations import FamilyGraph, Lookup, singular
from sale.tools.search import SearchIndex

log = logging.getLogger(__name__)

TOOLS = ("lookup", "search", "open", "answer")
ACTION = re.compile(r"Action\s*:\s*\**\s*(lookup|search|open|answer)\s*\[(.*?)\]", re.IGNORECASE | re.DOTALL)
# A looser form small models also write: `lookup[...]` or `lookup(...)` at the start of a line, without "Action:".
LOOSE_ACTION = re.compile(
    r"^[ \t*`]*(lookup|search|open|answer)\s*(?:\[(.*?)\]|\((.*?)\))", re.IGNORECASE | re.DOTALL | re.MULTILINE
)
MAX_OBSERVATION_CHARS = 1500
KEEP_RECENT = 2  # observations never shortened when the trace is trimmed
STUCK_LIMIT = 4  # unusable replies in a row (malformed or repeated) after which the next turn must answer


def parse_action(reply: str) -> tuple[str, str] | None:
    """The first `Action: tool[argument]` in the reply (else the first bare `tool[argument]` or
    `tool(argument)`), or None when there is none."""
    m = ACTION.search(reply)
    if m:
        return m.group(1).lower(), m.group(2).strip()
    m = LOOSE_ACTION.search(reply)
    if m:
        return m.group(1).lower(), (m.group(2) if m.group(2) is not None else m.group(3)).strip()
    return None


def action_end(reply: str) -> int | None:
    """Where the first action of the reply ends (what the history keeps of it), or None."""
    m = ACTION.search(reply) or LOOSE_ACTION.search(reply)
    return m.end() if m else None


def format_hits(hits) -> str:
    if not hits:
        return "no results"
    return "\n".join(f"[{title}] {snippet}" for title, snippet in hits)


def shorten(tool: str, observation: str) -> str:
    """An old observation cut to what later turns need: an article's relation lines, a search's titles."""
    if tool == "open":
        keep = [
            line
            for line in observation.splitlines()
            if line.startswith("# ")
            or (
                line.startswith("The ")
                and " of " in line
                and not line.startswith(("The date", "The occupation", "The hobby"))
            )
        ]
        return "\n".join(keep) + "\n(shortened)"
    if tool == "search":
        return "titles: " + ", ".join(re.findall(r"^\[(.+?)\]", observation, re.MULTILINE)) + " (shortened)"
    return observation


def trim(messages: list[dict], observations: list[tuple[int, str, str]], budget_chars: int, template: str) -> None:
    """Shorten the oldest observations (message index, tool, full text) in place until the trace fits; `template`
    is the prompt an observation is shown in."""
    size = sum(len(m["content"]) for m in messages)
    for idx, tool, text in observations[:-KEEP_RECENT] if KEEP_RECENT else observations:
        if size <= budget_chars:
            return
        short = template.format(observation=shorten(tool, text))
        if len(short) < len(messages[idx]["content"]):
            size -= len(messages[idx]["content"]) - len(short)
            messages[idx] = {**messages[idx], "content": short}


def context_budget(ledger, agent: str, context_chars: int, max_tokens: int) -> int:
    """context_chars, or less where the agent's context window (n_ctx, ~3 characters a token) is smaller."""
    try:
        n_ctx = int(ledger.pool.spec(agent).options.get("n_ctx") or 0)
    except Exception:  # a pool without specs (scripted tests)
        n_ctx = 0
    return min(context_chars, 3 * (n_ctx - max_tokens) - 1000) if n_ctx else context_chars


def run_tool(tool: str, arg: str, universe: str, search_k: int, chain: Chain | None = None) -> str:
    if tool == "lookup":
        graph = FamilyGraph.from_universe(universe)
        result = graph.query(arg)
        if chain is not None:
            chain.advance(result, graph)
        return result.text
    index = SearchIndex.from_universe(universe)
    if tool == "search":
        return format_hits(index.search(arg, k=search_k))
    return index.open(arg)


def run_searcher(
    ledger,
    agent: str,
    task,
    plan: str | None,
    prompts,
    max_turns: int = 16,
    max_tokens: int = 192,
    search_k: int = 3,
    context_chars: int = 12000,
    progress: bool = True,
) -> AgentResult:
    p = prompts  # conf/prompts/searcher.yaml, as composed into the run's config
    universe = task.payload["universe"]
    question = task.payload["question"]
    plan_section = p["plan_section"].format(plan=plan.strip()) if plan else ""
    messages = [
        {"role": "system", "content": p["system"]},
        {"role": "user", "content": p["task"].format(question=question, plan_section=plan_section)},
    ]
    trajectory = [dict(m) for m in messages]
    budget = context_budget(ledger, agent, context_chars, max_tokens)
    chain = Chain.parse(question) if progress else None
    answer, malformed, tool_actions, forced, turn = None, 0, 0, False, 0
    seen: set[tuple[str, str]] = set()
    observations: list[tuple[int, str, str]] = []
    stuck = 0  # unusable replies (malformed or repeated) in a row
    for turn in range(1, max_turns + 1):
        last = turn == max_turns or stuck >= STUCK_LIMIT
        if last:
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + "\n" + p["last_turn"]}
        trim(messages, observations, budget, p["observation"])
        reply = ledger.generate(
            agent, "execute", messages, max_tokens=max_tokens, stop=["Observation:", "\nThought:"]
        ).text
        trajectory.append({"role": "assistant", "content": reply})
        action = parse_action(reply)
        end = action_end(reply)
        messages.append({"role": "assistant", "content": reply[:end] if end else reply})
        if last and (action is None or action[0] != "answer"):
            break  # told to answer and did not: no answer
        if action is None or (action[1] == "" and action[0] != "answer"):
            malformed += 1
            stuck += 1
            observation_msg = p["bad_action"]
        else:
            tool, arg = action
            key = (tool, " ".join(arg.lower().split()))
            if key in seen and tool != "answer":
                malformed += 1
                stuck += 1
                observation_msg = p["repeated_action"].format(action=f"{tool}[{arg}]")
                if chain is not None:
                    observation_msg += p["progress"].format(left=chain.text())
                messages.append({"role": "user", "content": observation_msg})
                trajectory.append({"role": "user", "content": observation_msg})
                continue
            seen.add(key)
            if tool == "answer":
                answer, forced = arg, last
                trajectory.append({"role": "tool", "tool": "answer", "content": arg, "forced": forced})
                break
            tool_actions += 1
            stuck = 0
            step: dict[str, Any] = {"role": "tool", "tool": tool, "argument": arg}
            try:
                result = run_tool(tool, arg, universe, search_k, chain)[:MAX_OBSERVATION_CHARS]
            except Exception as exc:  # a tool bug on odd model input costs one turn, not the whole run
                log.warning("%s: %s[%s] raised %s: %s", task.id, tool, arg, type(exc).__name__, exc)
                result = p["tool_error"].format(tool=tool, error=f"{type(exc).__name__}: {exc}"[:200]).strip()
                step["error"] = True
            trajectory.append({**step, "content": result})
            observation_msg = p["observation"].format(observation=result)
            observations.append((len(messages), tool, result))
        if chain is not None:
            observation_msg += p["progress"].format(left=chain.text())
        messages.append({"role": "user", "content": observation_msg})
        trajectory.append({"role": "user", "content": observation_msg})
    return AgentResult(
        output=answer or "",
        turns=turn,
        trajectory=trajectory,
        self_check=answer is not None,
        malformed=malformed,
        tool_actions=tool_actions,
        forced=forced,
    )


# ------------------------------------------------------------------ the progress note


NAME = r"[A-Z][a-z]+(?: [A-Z][a-z]+)+"


@dataclass
class Chain:
    """What is left of a question as the agent resolves it, innermost relation first (the progress note).

    "Who is the mother of the nephew of Carl Peace?" after lookup[nephew of Carl Peace] (-> A, B) reads
    "Who is the mother of A, B?". The note only records the agent's own lookups: a lookup advances it when it asks
    the question's innermost relation for exactly the people the note names (or, for "the person whose ...",
    when it asks for exactly the people with that attribute); any other lookup leaves it unchanged.
    """

    head: str  # "Who is" | "What is" | "How many grandparents does"
    relations: list[str]  # outermost first, as the question writes them
    anchor_text: str  # the innermost person as written: a name, or "the person whose hobby is chess"
    anchor: list[str] | None  # the people the resolved part leads to; None while "the person whose" is open
    whose: tuple[str, str] | None  # (attribute, value) of "the person whose ..."
    tail: str  # "?" or " have?"
    count: str | None = None  # "How many X": the singular X
    done: bool = False  # a "How many" question whose count lookup is done

    @classmethod
    def parse(cls, question: str) -> "Chain | None":
        q = " ".join(question.split())
        m = re.match(r"^How many (.+?) does (.+) have\?$", q)
        if m:
            head, body, tail, count = f"How many {m.group(1)} does", m.group(2), " have?", singular(m.group(1))
        else:
            m = re.match(r"^(Who|What) is (.+)\?$", q)
            if not m:
                return None
            head, body, tail, count = f"{m.group(1)} is", m.group(2), "?", None
        m = re.search(r"(?:^|\bof )the person whose (.+?) is (.+)$", body)
        if m:
            whose, anchor, anchor_text = (singular(m.group(1)), m.group(2).strip().lower()), None, m.group(0)
        else:
            m = re.search(rf"(?:^|\bof )({NAME})$", body)
            if not m:
                return None
            whose, anchor, anchor_text = None, [m.group(1)], m.group(1)
        rest = body[: m.start()].replace("date of birth", "date_of_birth")
        relations = [
            r.strip().replace("date_of_birth", "date of birth") for r in re.split(r"\bof\b", rest) if r.strip()
        ]
        relations = [re.sub(r"^the\s+", "", r) for r in relations]
        anchor_text = re.sub(r"^of ", "", anchor_text)
        return cls(head, relations, anchor_text, anchor, whose, tail, count)

    def advance(self, lookup: Lookup, graph: FamilyGraph) -> bool:
        """Move past the innermost relation if `lookup` resolved it; True when it did."""
        if lookup.kind == "whose" and self.anchor is None and self.whose == (lookup.relation, lookup.value):
            self.anchor = list(lookup.found)
            return True
        if lookup.kind != "relation" or not lookup.all_known or self.done:
            return False
        anchor = self.anchor
        if anchor is None:  # "the person whose ..." skipped by naming its people directly
            assert self.whose is not None  # a chain without an anchor is always one of "the person whose ..."
            attr, value = self.whose
            anchor = [p for p in graph.people if graph.attrs[p].get(attr, "").lower() == value]
        if set(lookup.people) != set(anchor) or not anchor:
            return False
        if self.relations and lookup.relation == singular(self.relations[-1]):
            self.relations.pop()
            self.anchor = list(lookup.found)
            return True
        if not self.relations and self.count and lookup.relation == self.count:
            self.anchor, self.done = anchor, True
            return True
        return False

    def text(self) -> str:
        if self.done:
            return "nothing: answer with the number(s) in parentheses from the last lookup."
        if not self.relations and self.anchor is not None and not self.count:
            return (
                "nothing: answer with the "
                + ("value" if self.head.startswith("What") else "names")
                + " from the last lookup."
            )
        target = self.anchor_text if self.anchor is None else (", ".join(self.anchor) or "nobody")
        chain = "".join(f"the {r} of " for r in self.relations)
        return f"{self.head} {chain}{target}{self.tail}"
