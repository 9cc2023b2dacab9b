"""Real models behind servers the runner starts itself (pool=cpu_server): a server killed mid-run.

That results do not depend on run.concurrency is tested where the engine computes the same numbers in a batch as
alone (tests/test_run.py, tiny transformers models, whose calls the agent gate serialises). llama.cpp does not: a
prompt prefilled together with other prompts gets slightly different logits (SmolLM2's jury ratings moved by up to
0.05 on the 0-5 scale at 4 in flight), so real-model runs at different concurrency are compared in the README.
"""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from sale import REPO_ROOT
from sale.harness.runlog import Journal

pytestmark = pytest.mark.models


def sale_run(*overrides, config_dir=None, **kw):
    flags = ["--config-dir", str(config_dir)] if config_dir else []
    cmd = [sys.executable, "-m", "sale.run", *flags, "run.figure=false", *overrides]
    return subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        **kw,
    )


def test_killing_a_served_agent_mid_run_is_a_clear_error_and_a_rerun_resumes(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "pool=cpu_server",
        "tasks=phantomwiki",
        "method=single",
        "method.agents=smollm2-135m",
        "run.limit=4",
        "run.concurrency=2",
        f"run.dir={run_dir}",
        f"run.cache={tmp_path}/calls.sqlite",
        "pool.agents.smollm2-135m.retries=3",
    ]
    proc = sale_run(*args)
    journal = run_dir / "journal.jsonl"
    deadline = time.time() + 900  # a 16-turn search task on shared, loaded cores can take minutes
    finished_one = lambda: journal.exists() and journal.read_text().count("\n") >= 1  # noqa: E731
    while time.time() < deadline and proc.poll() is None and not finished_one():
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before its server could be killed: " + proc.stdout.read()[-2000:]
    if not finished_one():
        proc.kill()
        pytest.fail("no task finished within 900 s, so the kill could not be placed mid-run")
    server_pid = int(subprocess.check_output(["pgrep", "-P", str(proc.pid), "-f", "local_server"]).split()[0])
    os.kill(server_pid, signal.SIGKILL)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 1, out[-3000:]
    assert "error: smollm2-135m: cannot reach http://127.0.0.1:" in out, out[-3000:]
    assert "killed by SIGKILL" in out and "Rerunning the same command" in out, out[-3000:]

    before = {tuple(r["key"]) for r in Journal(run_dir).records()}
    assert 1 <= len(before) < 4
    out = sale_run(*args).communicate(timeout=600)[0]
    assert f"{len(before)} done, {4 - len(before)} to run" in out, out[-3000:]
    results = pd.read_parquet(run_dir / "results.parquet")
    assert len(results) == 4 and not results.duplicated(["arm", "order", "task_id"]).any()
    assert not subprocess.run(["pgrep", "-f", f"local_server.*{run_dir}"], capture_output=True).stdout
