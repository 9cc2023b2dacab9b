"""Every command the README and docs/*.md show works as written, without loading a model.

The `python -m sale.…` and `make …` commands are collected from code blocks and inline code. What each must do:

- `python -m sale.run <overrides>` composes (sale.config.compose) and passes sale.run.preflight, the check the real
  command runs before Hydra starts: known group options and keys, a writable run directory that holds no run of
  another config. A multirun (-m) composes at every point of its sweep, and its points write distinct run
  directories (SALE's task orders as separate jobs excepted). --help and --cfg run for real.
- `python -m sale.fit` and `python -m sale.demo` compose their config (`make demo ARGS=...` likewise).
- any other `python -m sale.<module>` exists, and its subcommand and --options appear in its --help.
- `make <target>` names a target of the Makefile (`make reproduce STAGES=...`: stages scripts/reproduce.sh knows).
- a command shown in a table row beside an `error:` message (docs/faults.md) is refused by preflight with it.

Shell variables are taken from assignments earlier in the same code block (`S="pool=... $(url ...)"`); what is
still a shell expansion after that (`$(url 4B 8001)`) is left out.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sale import REPO_ROOT

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
PYTHON = ("python", "python3", ".venv/bin/python", "$(PY)")
SHELL_OPERATORS = {"&&", "||", ";", "|", "&", ">", ">>", "<", "(", ")", "2>&1", "2>", "1>", "do", "done", "then"}
INFO_FLAGS = ("-h", "--help", "--hydra-help", "--cfg", "-c", "--info", "-i")


@dataclass
class Command:
    where: str  # file:line
    argv: list[str]  # ["python", "-m", "sale.run", ...] or ["make", "demo", ...]
    refused_with: str | None = None  # the documented error message, for commands shown as bad input

    def __str__(self) -> str:
        return f"{self.where}: {shlex.join(self.argv)}"


def split_commands(text: str, variables: dict[str, str]) -> list[list[str]]:
    """The python -m sale.* and make commands in one shell line, with known $VARIABLES substituted."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|<>()")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: prose, not a command
        return []
    expanded: list[str] = []
    for token in tokens:
        name = re.fullmatch(r"\$\{?([A-Za-z_]\w*)\}?", token)
        if name and name.group(1) in variables:
            expanded += split_commands_raw(variables[name.group(1)])
        else:
            expanded.append(token)
    commands, current = [], []
    for token in expanded + [";"]:
        if token in SHELL_OPERATORS:
            if current:
                commands.append(current)
            current = []
        else:
            current.append(token)
    found = []
    for words in commands:
        while words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]):  # leading VAR=value assignments
            words = words[1:]
        if len(words) >= 3 and words[0] in PYTHON and words[1] == "-m" and words[2].split(".")[0] == "sale":
            found.append(["python", *words[1:]])
        elif words and words[0] == "make":
            found.append(words)
    return [[w for w in argv if not re.fullmatch(r"\$\{?[A-Za-z_]\w*\}?", w)] for argv in found]


def split_commands_raw(value: str) -> list[str]:
    """A shell variable's value as words, without the $(...) expansions this test cannot run."""
    value = re.sub(r"\S*\$\([^)]*\)\S*", "", value)
    try:
        return shlex.split(value)
    except ValueError:
        return value.split()


def collect(docs: list[Path]) -> list[Command]:
    commands: list[Command] = []
    for doc in docs:
        text = doc.read_text()
        lines = text.split("\n")
        name = doc.relative_to(REPO_ROOT) if doc.is_relative_to(REPO_ROOT) else doc.name
        in_code, language, variables, logical, start = False, "", {}, "", 0
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("```"):
                in_code, language = not in_code, stripped[3:].strip()  # variables carry over to later blocks
                continue
            if in_code:
                if language not in ("", "bash", "sh", "shell", "console"):
                    continue
                if not logical:
                    start = number
                logical += stripped[2:] if stripped.startswith("$ ") else stripped
                if logical.endswith("\\"):
                    logical = logical[:-1] + " "
                    continue
                assignment = re.fullmatch(r"([A-Za-z_]\w*)=\"(.*)\"", logical.strip())
                if assignment:
                    variables[assignment.group(1)] = assignment.group(2)
                for argv in split_commands(logical, variables):
                    commands.append(Command(f"{name}:{start}", argv))
                logical = ""
        # Inline code, outside code blocks; a span may wrap onto the next line.
        prose = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
        for match in re.finditer(r"(?<!`)`([^`]+)`(?!`)", prose):
            span = match.group(1).replace("\n", " ")
            if not re.match(r"(\w+=\S+ )*(\.venv/bin/)?(python3? -m sale|make )", span):
                continue
            number = prose.count("\n", 0, match.start()) + 1
            row = lines[number - 1]
            refused = None
            if row.startswith("|") and "`error:" in row:
                refused = row.split("`error:", 1)[1].split("`", 1)[0]
            for argv in split_commands(span, {}):
                commands.append(Command(f"{name}:{number}", argv, refused))
    return commands


COMMANDS = collect(DOCS)
MAKE_TARGETS = set(re.findall(r"^([A-Za-z0-9_.-]+):(?!=)", (REPO_ROOT / "Makefile").read_text(), flags=re.M))


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def check_sale_run(args: list[str]) -> None:
    from sale.config import compose, sweep
    from sale.run import preflight

    if any(a in INFO_FLAGS for a in args):
        proc = run_module("sale.run", *args)
        assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]
        return
    multirun = any(a in ("-m", "--multirun") for a in args)
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    assert not [a for a in overrides if a.startswith("-")], f"a flag this test does not know: {overrides}"
    points = sweep(*overrides) if multirun else [overrides]
    run_dirs = {}
    for point in points:
        cfg = compose(*point)  # raises on an unknown option or key, or a bad value
        run_dirs.setdefault(str(cfg.run.dir), []).append(point)
    if multirun:
        for run_dir, sharing in run_dirs.items():
            differing = {o.split("=", 1)[0] for p in sharing for o in p if o not in sharing[0]}
            assert len(sharing) == 1 or differing <= {"run.only_order"}, f"sweep points share {run_dir}: {sharing}"
    problem = preflight(args)
    assert problem is None, problem


def check_other_module(module: str, args: list[str]) -> None:
    from sale.config import GROUPS, check_option

    assert importlib.util.find_spec(module) is not None, f"no module {module}"
    if not args:
        return
    positional = [a for a in args if not a.startswith("-") and "=" not in a]
    helped = run_module(module, *positional[:1], "--help")
    assert helped.returncode == 0, helped.stderr[-2000:]
    text = helped.stdout
    for arg in args:
        if arg.startswith("--"):
            assert arg.split("=", 1)[0] in text, f"{module} has no option {arg}"
        elif "=" in arg:
            key, value = arg.split("=", 1)
            if key in GROUPS:
                check_option(key, value)
            else:
                assert key in text, f"{module} --help does not mention {key}="
    if positional:
        assert positional[0] in text, f"{module} has no subcommand {positional[0]}"


def check_make(args: list[str]) -> None:
    from sale.config import compose

    targets = [a for a in args if "=" not in a and not a.startswith("-")]
    variables = dict(a.split("=", 1) for a in args if "=" in a)
    assert targets, "make with no target"
    for target in targets:
        assert target in MAKE_TARGETS, f"the Makefile has no target {target!r}: {sorted(MAKE_TARGETS)}"
    if "demo" in targets and "ARGS" in variables:
        compose("experiment=demo", *shlex.split(variables["ARGS"]))
    if "reproduce" in targets and "STAGES" in variables:
        script = (REPO_ROOT / "scripts" / "reproduce.sh").read_text()
        known = re.search(r"^STAGES=\$\{\*:-([^}]*)\}", script, flags=re.M).group(1).split()  # type: ignore[union-attr]
        assert set(variables["STAGES"].split()) <= set(known), f"stages {variables['STAGES']}; known: {known}"


def check(command: Command) -> None:
    argv = command.argv
    if command.refused_with is not None:
        from sale.run import preflight

        assert argv[:3] == ["python", "-m", "sale.run"], "only sale.run refusals are checked"
        problem = preflight(argv[3:])
        assert problem is not None, f"documented as refused, but it passes: {command}"
        for fragment in command.refused_with.split("..."):
            fragment = fragment.strip(" .;,")
            assert fragment in problem, f"{fragment!r} is not in the error {problem!r}"
        return
    if argv[0] == "make":
        return check_make(argv[1:])
    module, args = argv[2], argv[3:]
    if module == "sale.run":
        return check_sale_run(args)
    if module in ("sale.fit", "sale.demo"):
        if any(a in ("-h", "--help") for a in args):
            proc = run_module(module, *args)
            assert proc.returncode == 0, proc.stderr[-2000:]
            return
        from sale.config import compose

        compose(*(["experiment=demo"] if module == "sale.demo" else []), *args)
        return
    check_other_module(module, args)


def test_the_docs_show_commands_of_every_kind():
    kinds = {(c.argv[0] if c.argv[0] == "make" else c.argv[2]) for c in COMMANDS}
    assert {"make", "sale.run", "sale.fit", "sale.assets"} <= kinds, kinds
    assert any(c.refused_with for c in COMMANDS) and any("-m" in c.argv[3:] for c in COMMANDS if c.argv[0] != "make")


@pytest.fixture
def as_on_a_fresh_clone(tmp_path, monkeypatch):
    """The working directory of a fresh clone: the repository's files, and none of the reader's own runs (after
    `make demo`, a documented command on another pool would otherwise meet that run)."""
    for entry in REPO_ROOT.iterdir():
        if entry.name not in ("runs", "multirun", "outputs"):
            (tmp_path / entry.name).symlink_to(entry)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_command_in_the_docs_works_as_written(command, as_on_a_fresh_clone):
    check(command)


def test_a_broken_command_is_caught(tmp_path):
    """The checks fail on the kinds of mistake they exist for."""
    doc = (
        "```bash\npython -m sale.run method=salee\n```\n"
        "Then `python -m sale.run -m method=sale auction.jury.self_evaluation=true,false`, `make dmeo`.\n"
    )
    (tmp_path / "doc.md").write_text(doc)
    found = collect([tmp_path / "doc.md"])
    assert [c.argv for c in found] == [
        ["python", "-m", "sale.run", "method=salee"],
        ["python", "-m", "sale.run", "-m", "method=sale", "auction.jury.self_evaluation=true,false"],
        ["make", "dmeo"],
    ]
    for command, expected in zip(found, ["did you mean sale", "sweep points share", "no target 'dmeo'"]):
        with pytest.raises(Exception, match=expected):
            check(command)
