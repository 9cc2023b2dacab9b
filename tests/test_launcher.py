"""Hydra's submitit launcher (the `cluster` extra, conf/hydra/launcher/): the project's launcher configs compose on
the plugin's schemas, and a 2-point multirun runs as two submitit jobs, each in its own run directory."""

import os
import pickle
import subprocess
import sys
import time

import pandas as pd
import pytest

from sale import REPO_ROOT
from sale.config import compose

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[cluster]'")


def launcher(*overrides):
    return compose(*list(overrides), return_hydra_config=True).hydra.launcher


def test_launcher_configs_extend_the_plugins_schemas():
    slurm = launcher("hydra/launcher=slurm", "experiment=ablations", "hydra.launcher.partition=gpu")
    assert slurm._target_.endswith(".SlurmLauncher")
    assert (slurm.partition, slurm.cpus_per_task, slurm.mem_gb, slurm.gpus_per_node) == ("gpu", 4, 16, None)
    assert slurm.timeout_min > 60 and slurm.name == "sale"
    assert slurm.submitit_folder.startswith("runs/multirun/")  # under the sweep directory
    assert "additional_parameters" in slurm and "account" in slurm  # the rest of the plugin's schema
    local = launcher("hydra/launcher=local")
    assert local._target_.endswith(".LocalLauncher") and local.gpus_per_node == 0
    # The plugin's own configs stay reachable under their names (no file here shadows them).
    assert launcher("hydra/launcher=submitit_slurm").timeout_min == 60
    assert launcher("hydra/launcher=submitit_local")._target_.endswith(".LocalLauncher")
    with pytest.raises(Exception, match="partiton"):  # the schema catches a misspelt key
        launcher("hydra/launcher=slurm", "hydra.launcher.partiton=gpu")


@pytest.mark.slow
def test_a_two_point_multirun_runs_as_two_local_submitit_jobs(tmp_path, tiny_pool):
    sweep = tmp_path / "multirun"
    cmd = [
        sys.executable,
        "-m",
        "sale.run",
        "-m",
        "hydra/launcher=local",
        "pool=tiny",
        "tasks=phantomwiki",
        "method=single",
        "method.agents=tiny-qwen3-a",
        "run.limit=1",
        "run.figure=false",
        "run.name=a,b",
        f"run.dir={tmp_path}/runs/${{run.name}}",
        f"run.cache={tmp_path}/calls.sqlite",
        f"hydra.sweep.dir={sweep}",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Submitit 'local' sweep output dir" in proc.stdout, proc.stdout[-3000:]

    for name in ("a", "b"):  # one run directory per point, each complete
        results = pd.read_parquet(tmp_path / "runs" / name / "results.parquet")
        assert len(results) == 1 and results["method"].tolist() == ["single"]
    # submitit's folder (.submitit/<job id>/): each job's log and pickled outcome (and an empty `%j` it makes first)
    jobs = sorted(p for p in (sweep / ".submitit").iterdir() if p.name != "%j")
    assert len(jobs) == 2, list((sweep / ".submitit").rglob("*"))
    names = set()
    for job in jobs:
        log = (job / f"{job.name}_0_log.out").read_text()
        assert "[sale] single on 1 tasks" in log and "Job completed successfully" in log, log[-2000:]
        status, ret = pickle.loads((job / f"{job.name}_0_result.pkl").read_bytes())
        assert status == "success"
        names.add(ret.cfg.run.name)
    assert names == {"a", "b"}
    assert elapsed < 120, f"the 2-point multirun took {elapsed:.0f} s"
