"""Run untrusted, model-written Python in a separate, locked-down process.

`run_python(code)` writes the code to `main.py` in a fresh temporary directory, runs it with
`python -I` in its own session, and returns a `SandboxResult`. The directory is deleted
afterwards. docs/security.md says in plain words what this hides and what it cannot.

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
  (this file, run as a script) enters new mount, network, IPC and UTS namespaces, moves into a
  sandbox root (below), and drops to a throwaway uid (random, in [2**30, 2**31)) with no
  capabilities before it execs the code. Consequences:
  - the code sees only the sandbox root: no repository, no home, no other runs, no caches;
  - writes anywhere outside the working directory fail (read-only mounts, and the uid owns
    nothing else);
  - no network: the namespace has only a loopback interface, and it is down;
  - RLIMIT_NPROC binds, because it counts the processes of that fresh uid only (it never binds
    for uid 0);
  - the code cannot signal or ptrace the caller or any other process outside the run (other uid);
  - afterwards every process of that uid is killed, so children that left the process group
    die too.
- "user" (not root, and unprivileged user namespaces are enabled). New user (mapping the
  caller's own uid), mount, network, IPC, UTS and PID namespaces; the same sandbox root and no
  network. The code runs as PID 1 of its PID namespace, so it cannot see or signal the caller,
  and everything it started dies with it. RLIMIT_NPROC counts per user namespace (Linux >=
  5.14). Gap: code that deliberately clears its parent-death signal and leaves the session can
  outlive the run until its CPU limit ends it.
- "basic" (no namespaces allowed, e.g. a default Docker container). Only the limits listed
  above, and a prelude that replaces `socket.socket` and `socket.create_connection` so that
  ordinary network use fails. This is best effort: the code can READ every file the caller can
  (the HumanEval data with its hidden tests, the repository, the call cache), write wherever the
  caller can, reach the network through `_socket`, and signal the caller's processes; as root
  RLIMIT_NPROC does not bind, so a fork bomb is only stopped by the timeout. A warning says so
  once per process, when the mode is chosen.

The sandbox root ("root" and "user" modes) is a fresh tmpfs, entered with pivot_root, with the old
root detached, so nothing else of the machine's file tree is reachable. It holds, read-only:
- the interpreter's installation (sys.base_prefix: the executable, the standard library and its
  extension modules), with every site-packages / dist-packages directory covered by an empty
  tmpfs: no third-party package is importable unless `run_python(packages=...)` names it
  (HumanEval needs none: its prompts, completions and tests use only the standard library);
- the system directories the interpreter loads its shared libraries from: /usr (with
  /usr/local, and the system Python's package directories, covered) and the /bin, /lib,
  /lib64, /sbin links or directories;
- from /etc only ld.so.cache (the dynamic loader's index); from /dev only null, zero, full,
  random, urandom; no /proc, no /sys, no /home, no /root beyond the path to a Python installed
  there;
- the working directory, writable, at its usual path (/tmp/sale-sandbox-*/work), and an empty /tmp.
The directories the sandbox root itself consists of (/, /tmp, the path down to the working
directory and to the interpreter) can be traversed but not listed.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import json
import logging
import math
import os
import platform
import resource
import secrets
import shutil
import signal
import site
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
MOUNT_ATTR_NOSUID = 0x2
MS_NOSUID = 0x2
MS_NODEV = 0x4
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
# pivot_root has no glibc wrapper and its number differs between architectures
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

# What the sandbox root holds besides the interpreter's installation and the working directory (module doc).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
HIDDEN_SYSTEM_DIRS = ("/usr/local",)  # locally installed software: hidden unless the interpreter lives there
SYSTEM_PACKAGE_DIRS = (  # other Pythons' packages under /usr, hidden too
    "/usr/lib/python3/dist-packages",
    "/usr/lib/python3*/site-packages",
    "/usr/lib/python3*/dist-packages",
    "/usr/lib64/python3*/site-packages",
)
SYSTEM_FILES = ("/etc/ld.so.cache", "/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")

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
    packages: tuple[str, ...] = (),
) -> SandboxResult:
    """Run `code` as a script in the sandbox and report how it ended.

    status: "ok" (exit code 0), "error" (non-zero exit, e.g. an uncaught exception: the traceback
    is in stderr), "timeout" (wall clock or CPU limit reached), "memory" (MemoryError under the
    address-space limit), "killed" (ended by a signal, e.g. its own SIGKILL).
    stdout and stderr keep their first and last max_output_chars / 2 characters (counted as UTF-8
    bytes) around a "[... N bytes truncated ...]" marker.
    packages: the allow-list of third-party packages the code may import, as the names of entries
    of the caller's site-packages (a package directory such as "idna", a module file such as
    "six.py"); they are mounted read-only into the sandbox's otherwise empty site-packages. None by
    default, and none is needed for HumanEval. ("basic" mode hides nothing, so it ignores this.)
    """
    mode = isolation_mode()
    return _run(code, mode, timeout_s, memory_mb, max_processes, max_output_chars, stdin, max_file_mb, packages)


@functools.lru_cache(maxsize=None)
def isolation_mode() -> str:
    """The strongest isolation this machine allows: "root", "user" or "basic" (see the module doc)."""
    preferred = "root" if os.geteuid() == 0 else "user"
    probe = _run("print('sandbox-ok')", preferred, 30.0, 1024, 32, 10_000, "", MAX_FILE_MB, ())
    if probe.status == "ok" and probe.stdout.strip() == "sandbox-ok":
        return preferred
    logger.warning(
        "sandbox: %r isolation is not available here (%s); falling back to 'basic' isolation: resource "
        "limits and a best-effort network block only. Generated code can READ every file this process can "
        "(the HumanEval data with its hidden tests, the repository and its runs, the call cache) and write "
        "wherever this process can: see docs/security.md",
        preferred,
        (probe.stderr.strip().splitlines() or [probe.status])[-1],
    )
    return "basic"


def _run(
    code, mode, timeout_s, memory_mb, max_processes, max_output_chars, stdin, max_file_mb, packages
) -> SandboxResult:
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
        if mode in ("root", "user"):
            os.mkdir(os.path.join(run_root, "root"), 0o700)  # the sandbox root's mount point
            python, steps = sandbox_layout(tuple(packages))
            config.update(
                root=os.path.join(run_root, "root"), python=python, steps=[*steps, ("bind", workdir, workdir)]
            )
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


# A step of the sandbox root, done in order by the launcher: ("bind", host path, path) mounts a host directory or
# file read-only at the same path; ("tmpfs", None, path) covers a path with an empty read-only tmpfs;
# ("symlink", target, path) makes a link; ("dir", None, path) makes an empty directory.
Step = tuple[str, str | None, str]


@functools.lru_cache(maxsize=None)
def sandbox_layout(packages: tuple[str, ...] = ()) -> tuple[str, list[Step]]:
    """The interpreter the code runs with and the steps that build the sandbox root (module doc), the working
    directory aside. Raises ValueError for an allow-listed package the caller does not have."""
    steps: list[Step] = []
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            steps.append(("symlink", os.readlink(path), path))
        elif os.path.isdir(path):
            steps.append(("bind", path, path))
    steps += [("tmpfs", None, path) for path in HIDDEN_SYSTEM_DIRS if _visible(path, steps)]
    for prefix in dict.fromkeys(os.path.realpath(p) for p in (sys.base_prefix, sys.base_exec_prefix)):
        if not _visible(prefix, steps):
            steps.append(("bind", prefix, prefix))
    site_dirs = site.getsitepackages([sys.base_prefix, sys.base_exec_prefix])  # the interpreter's own, in order
    own = [os.path.realpath(d) for d in site_dirs if os.path.isdir(d)]
    others = [os.path.realpath(d) for pattern in SYSTEM_PACKAGE_DIRS for d in sorted(glob.glob(pattern))]
    for path in dict.fromkeys(own + others):
        if os.path.isdir(path) and _visible(path, steps):
            steps.append(("tmpfs", None, path))
    if packages:
        target = next((d for d in own if any(s == ("tmpfs", None, d) for s in steps)), None)
        if target is None:
            raise ValueError("the interpreter has no site-packages directory to mount allow-listed packages into")
        for name in packages:
            source = _find_package_entry(name)
            steps.append(("bind", source, os.path.join(target, name)))
    steps += [("bind", path, path) for path in SYSTEM_FILES if os.path.exists(path)]
    steps.append(("dir", None, "/tmp"))
    python = os.path.realpath(sys.executable)
    if not _visible(python, steps):  # e.g. a virtual environment made with --copies: run its base interpreter
        python = os.path.realpath(
            os.path.join(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
        )
    return python, steps


def _visible(path: str, steps: list[Step]) -> bool:
    """Whether `path` shows its host content in the sandbox root: the last step over it is a bind."""
    path = os.path.realpath(path)
    over = [kind for kind, _, at in steps if path == at or path.startswith(at.rstrip("/") + "/")]
    return bool(over) and over[-1] == "bind"


def _find_package_entry(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"allow-listed package {name!r}: give the name of an entry of site-packages, e.g. 'idna'")
    for directory in site.getsitepackages() + sys.path:
        candidate = os.path.join(directory, name)
        if directory and os.path.isabs(directory) and os.path.exists(candidate):
            return os.path.realpath(candidate)
    raise ValueError(f"allow-listed package {name!r} is not in this interpreter's site-packages")


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
    mode = config["mode"]
    if mode == "basic":
        _apply_limits(config)
        _die_with_caller(config)
        os.execv(sys.executable, [sys.executable, "-I", "-c", _NO_NETWORK_PRELUDE, "main.py"])
    python = config["python"]
    if mode == "root":
        _unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)
        _enter_sandbox_root(config)
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
        _enter_sandbox_root(config)
        _apply_limits(config)
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        _die_with_caller(config)
        _run_as_pid_one([python, "-I", "main.py"])  # a non-zero uid loses the namespace's capabilities at exec
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


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def encode(text):
        return None if text is None else os.fsencode(text)

    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)))


def _make_dirs(path: str, ours: set[int]) -> None:
    """mkdir -p, each new directory traversable but not listable (mode 0111; the launcher's capabilities let it
    fill them). Only inside the tmpfs mounts of the sandbox root (their device numbers are `ours`): a step that
    would create a path in a bind-mounted host directory is refused. Never chmod after a mount: the mode would
    land on the mounted host directory."""
    if os.path.lexists(path):
        return
    parent = os.path.dirname(path)
    _make_dirs(parent, ours)
    if os.stat(parent).st_dev not in ours:
        raise OSError(f"sandbox root: {path} would be made in a host directory")
    os.mkdir(path)
    os.chmod(path, 0o111)


def _enter_sandbox_root(config: dict) -> None:
    """In the new mount namespace: build the sandbox root (module doc) on a tmpfs from config["steps"], make it the
    root, detach the old one, make every mount read-only except the working directory, and enter that."""
    root, workdir = config["root"], config["workdir"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing of what follows propagates to the host
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0111,size=1m,nr_inodes=4096")
    ours = {os.stat(root).st_dev}
    for kind, source, path in config["steps"]:
        target = root + path
        _make_dirs(os.path.dirname(target), ours)
        if kind == "symlink":
            os.symlink(source, target)
        elif kind == "dir":
            _make_dirs(target, ours)
        elif kind == "tmpfs":
            _make_dirs(target, ours)
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0555,size=64k,nr_inodes=1024")
            ours.add(os.stat(target).st_dev)
        elif kind == "bind":
            if os.path.isdir(source):
                _make_dirs(target, ours)
            elif not os.path.lexists(target):
                if os.stat(os.path.dirname(target)).st_dev not in ours:
                    raise OSError(f"sandbox root: {path} would be made in a host directory")
                os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444))
            _mount(source, target, None, MS_BIND | MS_REC)
        else:
            raise ValueError(f"unknown sandbox root step {kind!r}")
    os.chdir(root)
    _check(_libc.syscall(ctypes.c_long(SYS_PIVOT_ROOT[platform.machine()]), b".", b"."))  # the old root: under "."
    _check(_libc.umount2(b".", ctypes.c_int(MNT_DETACH)))  # ... and now gone, with every mount below it
    os.chdir("/")
    _mount_setattr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0)
    _mount_setattr(workdir, 0, 0, MOUNT_ATTR_RDONLY)
    os.chdir(workdir)


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


def _become_throwaway_user(uid: int) -> None:
    """setuid to `uid` from root, which clears every capability, and forbid gaining privileges again."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
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
