"""Does the llama.cpp engine run on this CPU? Load the pool's smallest model and generate a few tokens in a
child process, so that a crash (an illegal instruction, a segfault) stops set-up with a message instead of
killing a test or a run halfway.

    python -m sale.llm.engine_check              # pool=cpu; skipped when this machine already passed (a stamp)
    python -m sale.llm.engine_check pool=cpu --force

scripts/setup.sh runs it after installing. The stamp ($VENV/.sale-engine-ok) names the engine version, the
model and the CPU's flags, so moving the environment to another CPU runs the check again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import signal
import subprocess
import sys
from pathlib import Path

from sale.llm import engine_id

LOCAL_ENGINES = ("xllamacpp", "llamacpp")
# The instruction-set extensions that decide which llama.cpp kernels can run here.
RELEVANT_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
TIMEOUT_S = 180


def cpu_summary() -> tuple[str, list[str]]:
    """The CPU's model name and which of RELEVANT_FLAGS it announces."""
    model, flags = platform.processor() or platform.machine(), set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in RELEVANT_FLAGS if f in flags]


def smallest_local_agent(pool_name: str) -> tuple[str, str] | None:
    """(agent, backend) of the pool's smallest agent run by a local llama.cpp engine, or None if it has none."""
    from sale.config import ConfigError, pool_config

    try:
        agents = pool_config(pool_name)["agents"]
    except ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    local = [
        (spec.get("params_b", 0), name, spec["backend"])
        for name, spec in agents.items()
        if spec.get("backend") in LOCAL_ENGINES
    ]
    return min(local)[1:] if local else None


def stamp_value(pool_name: str, agent: str, backend: str) -> str:
    model, flags = cpu_summary()
    text = json.dumps([pool_name, agent, engine_id(backend), model, flags, sys.executable])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def describe_death(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        meaning = {
            "SIGILL": "illegal instruction: the engine uses an instruction this CPU (or its VM) does not run",
            "SIGSEGV": "segmentation fault",
            "SIGBUS": "bus error",
            "SIGABRT": "aborted",
            "SIGKILL": "killed (out of memory?)",
        }.get(name, "killed by a signal")
        return f"{name} ({meaning})"
    return f"exit status {returncode}"


def failure_message(agent: str, backend: str, how: str, output: str) -> str:
    model, flags = cpu_summary()
    missing = [f for f in ("avx", "avx2", "fma", "f16c") if f not in flags]
    lines = [
        f"error: the llama.cpp engine ({engine_id(backend)}) cannot run on this machine: loading "
        f"{agent} and generating 4 tokens in a child process ended with {how}.",
        f"  CPU: {model}; {platform.machine()}",
        f"  CPU features: {' '.join(flags) or '(none of the relevant ones announced)'}",
    ]
    if missing:
        lines.append(
            f"  The prebuilt xllamacpp wheel needs x86-64 with AVX2, FMA and F16C; this CPU lacks: {' '.join(missing)}."
        )
    elif any(f.startswith(("avx512", "amx")) for f in flags):
        lines.append("  This CPU announces AVX-512/AMX; inside a VM those are not always fully enabled.")
    lines += [
        "  fix: build llama.cpp for this machine without native flags and use it instead of xllamacpp:",
        "         make llamacpp          # llama-cpp-python with -DGGML_NATIVE=OFF, no cached wheel",
        "         python -m sale.run pool=cpu_llamacpp ...",
        "       and please report the CPU above with this message.",
    ]
    if output.strip():
        lines += ["  last output of the child:", *("    " + line for line in output.strip().splitlines()[-15:])]
    return "\n".join(lines)


def child(agent: str, pool_name: str) -> None:
    from sale.llm import load_pool

    pool = load_pool(pool_name)
    gen = pool.llm(agent).generate([{"role": "user", "content": "Say hello."}], max_tokens=4)
    if gen.completion_tokens < 1:
        raise SystemExit(f"{agent} generated no token")
    print(f"ok: {agent} wrote {gen.text!r}")


def check(pool_name: str, stamp: Path | None, force: bool = False) -> int:
    found = smallest_local_agent(pool_name)
    if found is None:
        print(f"[engine] pool {pool_name} runs no local llama.cpp engine; nothing to check")
        return 0
    agent, backend = found
    want = stamp_value(pool_name, agent, backend)
    if not force and stamp is not None and stamp.exists() and stamp.read_text().strip() == want:
        return 0
    if stamp is not None:
        stamp.unlink(missing_ok=True)  # only a pass below writes it again
    cmd = [sys.executable, "-m", "sale.llm.engine_check", f"pool={pool_name}", "--child", agent]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        print(failure_message(agent, backend, f"no answer within {TIMEOUT_S} s", out), file=sys.stderr)
        return 1
    if res.returncode != 0:
        print(failure_message(agent, backend, describe_death(res.returncode), res.stdout + res.stderr), file=sys.stderr)
        return 1
    if stamp is not None:
        stamp.write_text(want + "\n")
    model, _ = cpu_summary()
    print(f"[engine] {engine_id(backend)} runs on this CPU ({model}): {res.stdout.strip()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m sale.llm.engine_check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("pool", nargs="?", default="pool=cpu", help="pool=<name> (a file in conf/pool/); default cpu")
    ap.add_argument("--stamp", type=Path, help="remember a pass here, and skip the check while it still holds")
    ap.add_argument("--force", action="store_true", help="check even if the stamp says this machine passed")
    ap.add_argument("--child", help=argparse.SUPPRESS)  # internal: the agent to load in the child process
    args = ap.parse_args(argv)
    pool_name = args.pool.removeprefix("pool=")
    if args.child:
        child(args.child, pool_name)
        return 0
    return check(pool_name, args.stamp, args.force)


if __name__ == "__main__":
    sys.exit(main())
