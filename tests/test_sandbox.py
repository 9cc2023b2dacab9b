"""The sandbox: normal runs, and hostile code that must be contained while the test process goes on."""

import json
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from sale import REPO_ROOT
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


USER_MODE_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
try:
    from sale.tasks.sandbox import isolation_mode, run_python
except (ImportError, OSError) as error:
    sys.exit(print(json.dumps({"skip": f"cannot import the package as nobody: {error}"})))
outcome = {"mode": isolation_mode()}
outcome["write"] = run_python("open('/tmp/sale-user-mode-escape', 'w')").status
outcome["network"] = run_python("import socket; socket.create_connection(('127.0.0.1', 9), timeout=2)").status
outcome["kill_parent"] = run_python("import os, signal; os.kill(os.getppid(), signal.SIGKILL)").status
bomb = "import os\\nwhile True:\\n    try: os.fork()\\n    except OSError: pass"
outcome["bomb"] = run_python(bomb, timeout_s=1.0, max_processes=8).status
outcome["ok"] = run_python("print(6 * 7)").stdout
outcome["write_inside"] = run_python("open('x.txt', 'w').write('x'); print(open('x.txt').read())").stdout
print(json.dumps(outcome))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("python3", path="/usr/bin"),
    reason="needs root (to become another user) and /usr/bin/python3",
)
def test_user_mode_isolation_for_a_non_root_caller():
    """The 'user' mode (user namespaces), as an unprivileged caller sees it: run as nobody."""
    src = str(REPO_ROOT / "src")
    proc = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", USER_MODE_SCRIPT, src],
        user=65534,
        group=65534,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    outcome = json.loads(proc.stdout)
    if "skip" in outcome:
        pytest.skip(outcome["skip"])
    if outcome["mode"] != "user":
        pytest.skip("unprivileged user namespaces are not available here")
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
