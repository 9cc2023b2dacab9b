"""Local OpenAI-compatible servers that the runner starts itself, one per agent (pool=cpu_server).

An agent whose pool entry has a `serve:` block gets a llama.cpp server (xllamacpp) in a child process on
127.0.0.1, with as many parallel slots as calls may be in flight to it. The runner reaches it through the same
HTTP backend as a vLLM or SGLang server (sale.llm.openai_compat), so the served cpu pool exercises the code path of
the paper's served pool on any machine.

Lifetime: the server is started when the agent is first used, waited on until /health answers, and stopped when
the pool closes, at interpreter exit, on Ctrl-C (it runs in its own session, so Ctrl-C reaches only the runner,
which stops it after the tasks in flight), and when the runner dies (the kernel sends it SIGTERM: PR_SET_PDEATHSIG).
Its log is <run dir>/servers/<agent>.log.

    python -m sale.llm.local_server --model FILE [--n-parallel 4] [--n-ctx 8192]   # one server, by hand
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from sale.llm.base import LLMError

_running: set["LocalServer"] = set()
_running_lock = threading.Lock()


def _die_with_parent() -> None:
    """In the child, before exec: ask the kernel for SIGTERM when the parent dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


ENGINES = ("xllamacpp", "stub")  # stub: sale.llm.stub_server, a fixed-delay stand-in for harness benchmarks


class LocalServer:
    def __init__(
        self,
        agent: str,
        model_path: str | Path | None,
        n_parallel: int = 1,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        log_dir: str | Path | None = None,
        startup_timeout_s: float = 300.0,
        engine: str = "xllamacpp",
        delay_s: float = 0.2,
    ):
        if engine not in ENGINES:
            raise LLMError(f"agent {agent!r}: serve.engine must be one of {ENGINES}, got {engine!r}")
        self.agent = agent
        self.engine = engine
        self.delay_s = float(delay_s)
        self.model_path = Path(model_path) if model_path else None
        self.n_parallel = int(n_parallel)
        self.n_ctx = int(n_ctx)
        self.n_threads = n_threads
        log_dir = Path(log_dir) if log_dir else Path(tempfile.gettempdir()) / "sale-servers"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{agent}.log"
        self.startup_timeout_s = float(startup_timeout_s)
        self.proc: subprocess.Popen | None = None
        self.base_url = ""

    def start(self) -> "LocalServer":
        url_file = self.log_path.with_suffix(".url")
        url_file.unlink(missing_ok=True)
        if self.engine == "stub":
            cmd = [sys.executable, "-m", "sale.llm.stub_server", "--delay-s", str(self.delay_s)]
        else:
            if self.model_path is None or not self.model_path.is_file():
                raise LLMError(f"{self.agent}: model file not found: {self.model_path}")
            cmd = [
                sys.executable,
                "-m",
                "sale.llm.local_server",
                "--model",
                str(self.model_path),
                "--n-parallel",
                str(self.n_parallel),
                "--n-ctx",
                str(self.n_ctx),
            ]
            if self.n_threads:
                cmd += ["--n-threads", str(self.n_threads)]
        cmd += ["--url-file", str(url_file)]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        with _running_lock:
            _running.add(self)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise LLMError(f"{self.agent}: its local server did not start: {self.describe()}")
            if not self.base_url and url_file.exists() and url_file.read_text().strip():
                self.base_url = url_file.read_text().strip() + "/v1"
            if self.base_url and self.healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise LLMError(
            f"{self.agent}: its local server was not healthy after {self.startup_timeout_s:.0f} s "
            f"(log: {self.log_path})"
        )

    def healthy(self) -> bool:
        try:
            return httpx.get(self.base_url.removesuffix("/v1") + "/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def describe(self) -> str:
        """One line on the server's state, for error messages: running, or how it ended and its last log lines."""
        if self.proc is None:
            return f"the local server of {self.agent} was never started"
        code = self.proc.poll()
        if code is None:
            return f"the local server of {self.agent} (pid {self.proc.pid}, {self.base_url}) is still running"
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
        tail = ""
        if self.log_path.exists():
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()][-5:]
            tail = "; its log ends: " + " | ".join(lines) if lines else ""
        return (
            f"the local server of {self.agent} (pid {self.proc.pid}) {how} (log: {self.log_path}){tail}. "
            f"Rerunning the same command starts a new one and resumes the run."
        )

    def stop(self) -> None:
        with _running_lock:
            _running.discard(self)
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@atexit.register
def stop_all() -> None:
    with _running_lock:
        servers = list(_running)
    for server in servers:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m sale.llm.local_server",
        description="One llama.cpp server (xllamacpp) on 127.0.0.1, OpenAI-compatible, "
        "until SIGTERM or Ctrl-C. The runner starts these itself for "
        "pool=cpu_server.",
    )
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--n-parallel", type=int, default=1, help="parallel slots (requests decoded together)")
    ap.add_argument("--n-ctx", type=int, default=8192, help="context per slot, in tokens")
    ap.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: one per core)")
    ap.add_argument("--port", type=int, default=0, help="default 0: a free port")
    ap.add_argument("--url-file", default=None, help="write the server's base URL here once it listens")
    args = ap.parse_args(argv)

    import xllamacpp

    from sale.llm.xllamacpp_backend import server_params

    params = server_params(
        args.model, n_ctx=args.n_ctx, n_threads=args.n_threads, n_parallel=args.n_parallel, port=args.port
    )
    server = xllamacpp.Server(params)
    url = server.listening_address
    print(f"[sale.llm.local_server] {args.model} on {url} with {args.n_parallel} slots", flush=True)
    if args.url_file:
        tmp = Path(args.url_file).with_suffix(".tmp")
        tmp.write_text(url)
        tmp.replace(args.url_file)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    while not stopped.wait(1.0):
        pass
    del server
    os._exit(0)  # llama.cpp's threads need no orderly teardown once the process ends


if __name__ == "__main__":
    main()
