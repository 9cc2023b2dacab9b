"""Set-up on any x86-64 machine: nothing compiles, the engine is checked in a child process before anything else
runs, and the call cache never lets one engine answer for another."""

import os
import subprocess
import sys
import textwrap

import pytest

from sale import REPO_ROOT
from sale.config import pool_config
from sale.llm import Pool, load_pool
from sale.llm.engine_check import cpu_summary, describe_death, smallest_local_agent

# A stand-in for xllamacpp whose Server dies as an engine built for another CPU does: an illegal instruction.
CRASHING_ENGINE = textwrap.dedent("""
    import os, signal
    from types import SimpleNamespace

    class CommonParams(SimpleNamespace):
        def __init__(self):
            super().__init__(model=SimpleNamespace(), cpuparams=SimpleNamespace(), cpuparams_batch=SimpleNamespace(),
                             sampling=SimpleNamespace())

    class Server:
        def __init__(self, params):
            os.kill(os.getpid(), signal.SIGILL)
""")


def run_setup(tmp_path, **env):
    return subprocess.run(
        ["bash", "scripts/setup.sh"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "VENV": sys.prefix,
            "ENGINE_STAMP": str(tmp_path / "engine-ok"),
            "HF_HUB_OFFLINE": "1",
            **env,
        },
    )


@pytest.mark.models
def test_setup_stops_with_the_cpu_features_and_the_fix_when_the_engine_crashes(tmp_path):
    fake = tmp_path / "crashing" / "xllamacpp"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(CRASHING_ENGINE)
    res = run_setup(tmp_path, PYTHONPATH=str(fake.parent))
    assert res.returncode != 0
    message = res.stderr
    assert "cannot run on this machine" in message and "SIGILL (illegal instruction" in message
    assert "CPU features:" in message and "fix:" in message and "make llamacpp" in message
    assert "pool=cpu_llamacpp" in message
    assert not (tmp_path / "engine-ok").exists()

    # The real engine passes the same check, and the stamp then skips it.
    res = run_setup(tmp_path)
    assert res.returncode == 0, res.stderr
    assert "runs on this CPU" in res.stdout and (tmp_path / "engine-ok").exists()
    again = run_setup(tmp_path)
    assert again.returncode == 0 and "runs on this CPU" not in again.stdout


def test_describe_death_names_the_signal():
    assert describe_death(-4).startswith("SIGILL (illegal instruction")
    assert describe_death(-11).startswith("SIGSEGV")
    assert describe_death(3) == "exit status 3"


def test_cpu_summary_reads_the_flags_that_matter():
    model, flags = cpu_summary()
    assert model
    if os.uname().machine == "x86_64":
        assert "avx2" in flags  # every machine this project runs on has AVX2 (the prebuilt engine needs it)


def test_engine_check_picks_the_smallest_local_agent():
    assert smallest_local_agent("cpu") == ("smollm2-135m", "xllamacpp")
    assert smallest_local_agent("cpu_llamacpp") == ("smollm2-135m", "llamacpp")
    assert smallest_local_agent("qwen3_server") is None


def test_the_default_install_compiles_nothing():
    deps = " ".join(__import__("tomllib").loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    assert "llama-cpp-python" not in deps and "xllamacpp" in deps


def test_call_cache_keys_on_the_engine():
    cpu = load_pool("cpu")
    other = load_pool("cpu_llamacpp")
    agent = "qwen2.5-coder-0.5b"
    assert cpu.model_key(agent) != other.model_key(agent)
    assert cpu.model_key(agent).startswith("xllamacpp==") and "sha256:1d9614638d18" in cpu.model_key(agent)
    assert other.model_key(agent).startswith("llamacpp")
    # An option that changes what the model writes changes the key; one that only changes speed does not.
    cfg = pool_config("cpu")
    cfg["agents"][agent]["entropy_estimator"] = "renormalised"
    assert Pool.from_config(cfg).model_key(agent) != cpu.model_key(agent)
    cfg["agents"][agent].pop("entropy_estimator")
    cfg["agents"][agent]["n_threads"] = 7
    assert Pool.from_config(cfg).model_key(agent) == cpu.model_key(agent)
