"""A slice of `bash scripts/reproduce.sh check` (every committed run regenerated from the committed call-cache
shards, compared task for task): the first tasks of the committed single-agent runs, regenerated into an empty data
dir from the shards alone, are the committed ones, verdict for verdict and token for token."""

import os
import shutil
import subprocess
import sys

import pytest

from sale import DATA_DIR, REPO_ROOT


@pytest.mark.models
@pytest.mark.parametrize(
    "run_name, overrides",
    [
        ("scaling-cpu-test", ["experiment=scaling"]),
        ("main-cascade-cpu", ["experiment=main", "method=cascade"]),
    ],
)
def test_committed_runs_regenerate_from_the_committed_call_cache(tmp_path, run_name, overrides):
    shards = tmp_path / "shards"
    shutil.copytree(DATA_DIR / "cache" / "cpu", shards)
    env = {
        **os.environ,
        "SALE_DATA_DIR": str(tmp_path / "data"),
        "SALE_CALL_CACHE": str(tmp_path / "calls.sqlite"),
        "SALE_CACHE_SHARDS": str(shards),
    }
    run = subprocess.run(
        [sys.executable, "-m", "sale.run", *overrides, "run.limit=3", "run.figure=false"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "0 new calls" in run.stdout  # every call was served by the shards: no model wrote anything
    check = subprocess.run(
        [sys.executable, "scripts/check_reproduction.py", str(DATA_DIR), str(tmp_path / "data"), run_name, "--subset"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "identical: 1 runs" in check.stdout
