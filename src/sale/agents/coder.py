"""The coding agent: write the function, run it on the docstring's examples in the sandbox, revise, submit."""

from __future__ import annotations

import doctest
import json
import re

from sale.agents import AgentResult
from sale.tasks.sandbox import run_python

CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)
RESULT_MARK = "__SALE_EXAMPLE__"


def extract_code(reply: str, entry_point: str) -> str | None:
    """The last fenced code block that defines the entry point (else the last block); bare code as a fallback."""
    blocks = [b.strip() for b in CODE_BLOCK.findall(reply) if b.strip()]
    defining = [b for b in blocks if re.search(rf"def\s+{re.escape(entry_point)}\s*\(", b)]
    if defining or blocks:
        return (defining or blocks)[-1]
    if re.search(rf"^def\s+{re.escape(entry_point)}\s*\(", reply, re.MULTILINE):
        return reply.strip()
    return None


INLINE_EXAMPLE = re.compile(
    r"^\s*(?:[-*]\s*)?(?:for example:?\s*)?(?P<call>[A-Za-z_]\w*\(.*\))\s*"
    r"(?:==>|==|➞|=>|->|should return|returns?)\s*(?P<want>.+?)[\s.]*$",
    re.IGNORECASE,
)


def docstring_examples(prompt: str, entry_point: str | None = None) -> list[tuple[str, str]]:
    """(call, expected) pairs from the prompt's examples: the visible tests an agent may run. Reads doctest
    `>>>` examples, else lines such as `f(1, 2) == 3` or `f(1, 2) ➞ 3` that call the entry point."""
    try:
        examples = doctest.DocTestParser().get_examples(prompt)
    except ValueError:
        examples = []
    if not examples and entry_point:
        found = [INLINE_EXAMPLE.match(line) for line in prompt.splitlines()]
        # "f(5) == 3 - 0 - 1 = 2": the value is what follows the last " = "
        return [
            (m["call"], m["want"].rsplit(" = ", 1)[-1]) for m in found if m and m["call"].startswith(entry_point + "(")
        ]
    pairs = []
    for e in examples:
        # The docstring's closing quotes follow the last example without a blank line, so doctest counts them
        # as expected output; cut them off.
        want = re.split(r'^\s*(?:"""|\'\'\')', e.want, maxsplit=1, flags=re.MULTILINE)[0].strip()
        if want:
            pairs.append((e.source.strip(), want))
    return pairs


def example_harness(code: str, examples: list[tuple[str, str]]) -> str:
    checks = json.dumps(examples)
    return f"""{code}


import json as _json
for _call, _want in _json.loads({checks!r}):
    try:
        _got = eval(_call)
        try:
            _ok = _got == eval(_want)
        except Exception:  # an expectation written as prose: compare text, else do not judge it
            _ok = True if _want.lower() in (repr(_got).lower(), str(_got).lower()) else None
        _line = {{"call": _call, "want": _want, "got": repr(_got)[:200], "ok": bool(_ok)}}
    except Exception as _e:
        _line = {{"call": _call, "want": _want, "got": f"{{type(_e).__name__}}: {{_e}}"[:200], "ok": False}}
    print({RESULT_MARK!r} + _json.dumps(_line))
"""


def _example_line(text: str) -> dict | None:
    """One example's report from the harness, or None for any other line: the code under test may print the
    marker itself, followed by anything."""
    if not text.startswith(RESULT_MARK):
        return None
    try:
        line = json.loads(text[len(RESULT_MARK) :])
    except ValueError:
        return None
    if not isinstance(line, dict) or not {"call", "want", "got", "ok"} <= set(line):
        return None
    return line


def run_examples(code: str, prompt: str, entry_point: str | None = None, timeout_s: float = 5.0) -> tuple[bool, str]:
    """Run code on the docstring's examples. Returns (all passed, a short report for the model)."""
    examples = docstring_examples(prompt, entry_point)
    result = run_python(example_harness(code, examples), timeout_s=timeout_s)
    lines = [line for line in map(_example_line, result.stdout.splitlines()) if line is not None]
    if result.status != "ok" or len(lines) < len(examples):
        err = (result.stderr.strip().splitlines() or [result.status])[-1]
        return False, f"The code failed to run ({result.status}): {err[:300]}"
    failed = [l for l in lines if l["ok"] is False]
    if not failed:
        return True, f"All {len(lines)} examples passed." if lines else "The code ran without errors."
    return False, "\n".join(f"{l['call']} returned {l['got']}, expected {l['want']}" for l in failed[:5])


def run_coder(
    ledger, agent: str, task, plan: str | None, prompts, max_turns: int = 3, max_tokens: int = 512
) -> AgentResult:
    p = prompts  # conf/prompts/coder.yaml, as composed into the run's config
    prompt, entry_point = task.payload["prompt"], task.payload["entry_point"]
    plan_section = p["plan_section"].format(plan=plan.strip()) if plan else ""
    messages = [
        {"role": "system", "content": p["system"]},
        {"role": "user", "content": p["task"].format(prompt=prompt.strip(), plan_section=plan_section)},
    ]
    trajectory = [dict(m) for m in messages]
    code, passed, malformed = None, False, 0
    turn = 0
    for turn in range(1, max_turns + 1):
        reply = ledger.generate(agent, "execute", messages, max_tokens=max_tokens).text
        messages.append({"role": "assistant", "content": reply})
        trajectory.append({"role": "assistant", "content": reply})
        new_code = extract_code(reply, entry_point)
        if new_code is None:
            malformed += 1
            feedback = p["no_code"]
        else:
            code = new_code
            passed, report = run_examples(code, prompt, entry_point)
            trajectory.append({"role": "tool", "content": report, "passed_examples": passed})
            if passed:
                break
            feedback = p["feedback"].format(report=report)
        if turn < max_turns:
            messages.append({"role": "user", "content": feedback})
            trajectory.append({"role": "user", "content": feedback})
    return AgentResult(output=code or "", turns=turn, trajectory=trajectory, self_check=passed, malformed=malformed)
