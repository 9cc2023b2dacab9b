"""Run untrusted, model-written Python in a separate, locked-down process.

`run_python(code)` writes the code to `main.py` in a fresh temporary directory, runs it with
`python -I` in its own session, and returns a `SandboxResult`. The directory is deleted
afterwards.

Every run, whatever the machine:
- a wall-clock timeout, after which the whole process group is killed (SIGKILL);
- resource limits: address space (RLIMIT_AS, memory), CPU seconds, size of any file written
  (RLIMIT_FSIZE), no core dumps, open files, processes (RLIMIT_NPROC, see below);
- a stripped environment (PATH, HOME and TMPDIR pointing at the working directory, a UTF-8 locale);
- stdout and stderr go to files capped by RLIMIT_FSIZE, and only their head and tail are read
  back, so a flood of output cannot exhaust the caller's memory.
Not bounded: the NUMBER of files the code writes in its working directory (each is capped at
max_file_mb), so total disk use is limited only by the timeout.

On top of that, the isolation depends on what the machine allows. `isolation_mode()` probes
once per process and picks the strongest that works:

- "root" (the caller is root, as on this project's dev and CI machines). A small launcher
  (this file, run as a script) enters new mount, network, IPC and UTS namespaces, makes every
  mount read-only except the working directory, and drops to a throwaway uid (random, in
  [2**30, 2**31)) before it execs the code. Consequences:
  - writes anywhere outside the working directory fail (read-only mounts, and the uid owns
    nothing else);
  - no network: the namespace has only a loopback interface, and it is down;
  - RLIMIT_NPROC binds, because it counts the processes of that fresh uid only (it never binds
    for uid 0);
  - the code cannot signal or ptrace the caller or any other process outside the run (other uid);
  - afterwards every process of that uid is killed, so children that left the process group
    die too.
  The throwaway uid keeps one capability, CAP_DAC_READ_SEARCH: the interpreter may live under
  a directory only root can enter (here it is under /root/.pyenv), and the code must be able to
  run it and import the project's virtual environment. So the code can READ every file root can,
  but it cannot write, signal or gain privileges (no_new_privs is set).
- "user" (not root, and unprivileged user namespaces are enabled). New user (mapping the
  caller's own uid), mount, network, IPC, UTS and PID namespaces; the same read-only mounts and
  no network. The code runs as PID 1 of its PID namespace, so it cannot see or signal the
  caller, and everything it started dies with it. RLIMIT_NPROC counts per user namespace
  (Linux >= 5.14). Gap: code that deliberately clears its parent-death signal and leaves the
  session can outlive the run until its CPU limit ends it.
- "basic" (no namespaces allowed, e.g. a default Docker container). Only the limits listed
  above, and a prelude that replaces `socket.socket` and `socket.create_connection` so that
  ordinary network use fails. This is best effort: the code can still write wherever the
  caller can, reach the network through `_socket`, and signal the caller's processes; as root
  RLIMIT_NPROC does not bind, so a fork bomb is only stopped by the timeout. A warning is
  logged when this mode is chosen.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import math
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

MAX_FILE_MB = 32  # RLIMIT_FSIZE: the largest file the code may write, its stdout and stderr included
MAX_OPEN_FILES = 256

# Linux constants (from <sched.h>, <sys/mount.h>, <linux/prctl.h>, <linux/capability.h>).
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (Linux >= 5.12)
MOUNT_ATTR_RDONLY = 0x1
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
CAP_DAC_READ_SEARCH = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522

_NO_NETWORK_PRELUDE = """\
import runpy, socket, sys
def _network_disabled(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")
socket.socket = socket.create_connection = _network_disabled
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass
class SandboxResult:
    status: str  # "ok" | "error" | "timeout" | "memory" | "killed"
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    wall_s: float
    truncated: bool  # stdout or stderr was cut to max_output_chars

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_python(
    code: str,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_processes: int = 32,
    max_output_chars: int = 10_000,
    stdin: str = "",
    max_file_mb: int = MAX_FILE_MB,
) -> SandboxResult:
    """Run `code` as a script in the sandbox and report how it ended.

    status: "ok" (exit code 0), "error" (non-zero exit, e.g. an uncaught exception: the traceback
    is in stderr), "timeout" (wall clock or CPU limit reached), "memory" (MemoryError under the
    address-space limit), "killed" (ended by a signal, e.g. its own SIGKILL).
    stdout and stderr keep their first and last max_output_chars / 2 characters (counted as UTF-8
    bytes) around a "[... N bytes truncated ...]" marker.
    """
    return _run(code, isolation_mode(), timeout_s, memory_mb, max_processes, max_output_chars, stdin, max_file_mb)


@functools.lru_cache(maxsize=None)
def isolation_mode() -> str:
    """The strongest isolation this machine allows: "root", "user" or "basic" (see the module doc)."""
    preferred = "root" if os.geteuid() == 0 else "user"
    probe = _run("print('sandbox-ok')", preferred, 30.0, 1024, 32, 10_000, "", MAX_FILE_MB)
    if probe.status == "ok" and probe.stdout.strip() == "sandbox-ok":
        return preferred
    logger.warning(
        "sandbox: %r isolation is not available here (%s); falling back to 'basic' isolation: resource "
        "limits and a best-effort network block only, no protection of files outside the working directory",
        preferred,
        (probe.stderr.strip().splitlines() or [probe.status])[-1],
    )
    return "basic"


def _run(code, mode, timeout_s, memory_mb, max_processes, max_output_chars, stdin, max_file_mb) -> SandboxResult:
    run_root = tempfile.mkdtemp(prefix="sale-sandbox-")  # holds work/ (the code's directory) and the output files
    try:
        workdir = os.path.join(run_root, "work")
        os.mkdir(workdir, 0o700)
        uid = 2**30 + secrets.randbelow(2**30) if mode == "root" else None
        if uid is not None:
            os.chown(workdir, uid, uid)
        _write_file(os.path.join(workdir, "main.py"), code)
        _write_file(os.path.join(run_root, "stdin"), stdin)
        config = {
            "mode": mode,
            "workdir": workdir,
            "uid": uid,
            "memory_bytes": int(memory_mb) * 2**20,
            "max_processes": int(max_processes),
            "cpu_seconds": math.ceil(timeout_s) + 1,
            "file_bytes": int(max_file_mb) * 2**20,
            "caller_pid": os.getpid(),
        }
        launcher = [sys.executable, "-I", "-S", os.path.abspath(__file__), json.dumps(config)]
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": workdir,
            "TMPDIR": workdir,
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }
        stdout_path, stderr_path = os.path.join(run_root, "stdout"), os.path.join(run_root, "stderr")
        with (
            open(os.path.join(run_root, "stdin"), "rb") as fin,
            open(stdout_path, "wb") as fout,
            open(stderr_path, "wb") as ferr,
        ):
            start = time.monotonic()
            proc = subprocess.Popen(
                launcher, cwd=workdir, env=env, stdin=fin, stdout=fout, stderr=ferr, start_new_session=True
            )
            timed_out = _wait_then_kill_all(proc, timeout_s, uid)
            wall_s = time.monotonic() - start
        stdout, stdout_cut = _read_capped(stdout_path, max_output_chars)
        stderr, stderr_cut = _read_capped(stderr_path, max_output_chars)
        return SandboxResult(
            status=_status(proc.returncode, timed_out, stderr),
            returncode=proc.returncode,
            stdout=stdout,
            stderr=stderr,
            wall_s=round(wall_s, 3),
            truncated=stdout_cut or stderr_cut,
        )
    finally:
        shutil.rmtree(run_root, ignore_errors=True)


def _wait_then_kill_all(proc: subprocess.Popen, timeout_s: float, uid: int | None) -> bool:
    """Wait for the launcher up to the timeout, then kill whatever is left of the run. True if it timed out."""
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if uid is not None:
            _kill_processes_of(uid)  # also those that left the process group
        proc.wait()
    return timed_out


def _status(returncode: int, timed_out: bool, stderr: str) -> str:
    if timed_out or returncode == -signal.SIGXCPU:
        return "timeout"
    if returncode == 0:
        return "ok"
    last_line = (stderr.strip().splitlines() or [""])[-1]
    if last_line.startswith("MemoryError"):
        return "memory"
    return "killed" if returncode < 0 else "error"


def _read_capped(path: str, max_chars: int) -> tuple[str, bool]:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size <= max_chars:
            return f.read().decode("utf-8", "replace"), False
        half = max_chars // 2
        head = f.read(half)
        f.seek(size - half)
        tail = f.read(half)
    marker = f"\n[... {size - 2 * half} bytes truncated ...]\n"
    return head.decode("utf-8", "replace") + marker + tail.decode("utf-8", "replace"), True


def _kill_processes_of(uid: int) -> None:
    """SIGKILL every live process whose real uid is `uid`, until none is left (survivors may still fork)."""
    for _ in range(100):
        pids = [pid for pid in _all_pids() if _live_process_uid(pid) == uid]
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    logger.error("sandbox: processes of uid %d survived 100 rounds of SIGKILL", uid)


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _live_process_uid(pid: int) -> int | None:
    """The real uid of process `pid`; None if it is gone or a zombie (dead, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields.get("State", "").split()[:1] in (["Z"], ["X"]):
        return None
    return int(fields["Uid"].split()[0])


# ----------------------------------------------------------------------------------------------
# The launcher: this file run as a script, `python -I -S sandbox.py CONFIG_JSON`, in the working
# directory. It sets up the isolation for its mode in its own (single-threaded) process, then execs
# the interpreter on main.py. Doing this after exec rather than in a preexec_fn keeps run_python
# safe to call from several threads.


def _launch(config: dict) -> None:
    mode, workdir = config["mode"], config["workdir"]
    python = sys.executable
    if mode == "basic":
        _apply_limits(config)
        _die_with_caller(config)
        os.execv(python, [python, "-I", "-c", _NO_NETWORK_PRELUDE, "main.py"])
    if mode == "root":
        _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
        _make_read_only_except(workdir)
        _apply_limits(config)
        _become_throwaway_user(config["uid"])
        _die_with_caller(config)  # after the uid change, which clears it
        os.execv(python, [python, "-I", "main.py"])
    if mode == "user":
        uid, gid = os.getuid(), os.getgid()
        _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID)
        _write_file("/proc/self/setgroups", "deny")
        _write_file("/proc/self/uid_map", f"{uid} {uid} 1")
        _write_file("/proc/self/gid_map", f"{gid} {gid} 1")
        _make_read_only_except(workdir)
        _apply_limits(config)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _die_with_caller(config)
        _run_as_pid_one([python, "-I", "main.py"])
    raise ValueError(f"unknown sandbox mode {mode!r}")


def _die_with_caller(config: dict) -> None:
    """SIGKILL when the caller dies, even by SIGKILL, so that a killed run leaves no generated code running (its
    detached descendants are still only bounded by their CPU limit)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != config.get("caller_pid", os.getppid()):  # the caller died before the line above
        os._exit(137)


_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int) -> None:
    if ret != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _prctl(option: int, arg2: int, arg3: int = 0) -> None:
    _check(
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(0), ctypes.c_ulong(0)
        )
    )


def _unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)))


def _write_file(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _mount_setattr(path: str, flags: int, attr_set: int, attr_clr: int) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    _check(
        _libc.syscall(
            ctypes.c_long(SYS_MOUNT_SETATTR),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.c_uint(flags),
            ctypes.byref(attr),
            ctypes.c_size_t(ctypes.sizeof(attr)),
        )
    )


def _make_read_only_except(workdir: str) -> None:
    """In the new mount namespace: every mount read-only, except a bind mount of the working directory."""
    _check(_libc.mount(b"none", b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None))  # don't propagate to the host
    target = os.fsencode(workdir)
    _check(_libc.mount(target, target, None, ctypes.c_ulong(MS_BIND | MS_REC), None))
    _mount_setattr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0)
    _mount_setattr(workdir, 0, 0, MOUNT_ATTR_RDONLY)
    os.chdir(workdir)  # the inherited working directory still points into the read-only mount below


def _apply_limits(config: dict) -> None:
    _set_limit(resource.RLIMIT_AS, config["memory_bytes"])
    _set_limit(resource.RLIMIT_NPROC, config["max_processes"])
    _set_limit(resource.RLIMIT_FSIZE, config["file_bytes"])
    _set_limit(resource.RLIMIT_CORE, 0)
    _set_limit(resource.RLIMIT_NOFILE, MAX_OPEN_FILES)
    # SIGXCPU at the soft limit, SIGKILL one second later; the wall-clock timeout usually comes first
    _set_limit(resource.RLIMIT_CPU, config["cpu_seconds"], config["cpu_seconds"] + 1)


def _set_limit(which: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    _, current_hard = resource.getrlimit(which)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(which, (soft, hard))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _become_throwaway_user(uid: int) -> None:
    """setuid to `uid`, keeping only CAP_DAC_READ_SEARCH (as an ambient capability, so it survives exec)."""
    _prctl(PR_SET_KEEPCAPS, 1)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    read_search = 1 << CAP_DAC_READ_SEARCH
    data = (_CapData * 2)()
    data[0] = _CapData(read_search, read_search, read_search)
    _check(_libc.capset(ctypes.byref(_CapHeader(LINUX_CAPABILITY_VERSION_3, 0)), data))
    _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_DAC_READ_SEARCH)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)


def _run_as_pid_one(argv: list[str]) -> None:
    """Fork the first process of the new PID namespace, exec argv in it, and exit as it exited."""
    child = os.fork()
    if child == 0:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # if the launcher is killed, the namespace dies with it
        os.execv(argv[0], argv)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: die the same way
        if -code != signal.SIGKILL:
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)


if __name__ == "__main__":
    _launch(json.loads(sys.argv[1]))
