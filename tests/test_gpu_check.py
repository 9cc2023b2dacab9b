"""scripts/gpu_check.sh --shrunk: the GPU check's whole path (per-architecture measures, the harness end to end with
the 1x80GB swap plan, the report) on a CPU, with the Qwen3 architectures shrunk and random weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from sale import REPO_ROOT

ARCHS = ["qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b"]


@pytest.mark.slow
@pytest.mark.models  # the random-weight agents' tokenizer is taken from the cpu pool's Qwen2.5 GGUF file
def test_gpu_check_runs_end_to_end_shrunk_on_the_cpu(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    res = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--shrunk"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]

    models = pd.read_parquet(tmp_path / "gpu_qwen3.parquet").pivot(index="metric", columns="arch", values="value")
    m = models[ARCHS]  # every architecture measured
    assert (m.loc[["decode_tok_s_bs1", "decode_tok_s_bs8", "materialise_s"]] > 0).all().all()
    assert (m.loc[["jury_batched_speedup", "jury_prompts_speedup", "kv_turn6_speedup"]] > 0).all().all()
    assert (m.loc["jury_prompts_max_abs_gap"] < 1e-3).all()  # a batched rating equals the one-at-a-time one
    assert (m.loc["kv_turn6_identical"] == 1).all() and (m.loc["kv_turn6_prompt_tokens"] > 300).all()
    predicted = m.loc["predicted_gb"]  # sale.llm.placement's bfloat16 weights of the full architectures
    assert predicted.is_monotonic_increasing and 7.5 < predicted["qwen3-4b"] < 8.5 and 64 < predicted["qwen3-32b"] < 67

    h = pd.read_parquet(tmp_path / "harness.parquet")
    run = h[h.agent == "all"].set_index("metric").value
    assert run["tasks_done"] == 2 and run["plan_held"] == 1 and run["stopped_by_budget"] == 0
    assert run["swap_loads"] == run["swap_loads_from_calls"] > 0  # the swap area's count, and the calls' order
    per_agent = h[h.agent != "all"].pivot(index="metric", columns="agent", values="value")
    assert (per_agent.loc["swap_loads_per_task", ARCHS] >= 2).all()  # all four on demand: bids, then jury
    assert (per_agent.loc["generate_tok_s", ARCHS] > 0).all()
    results = pd.read_parquet(tmp_path / "run" / "results.parquet")
    calls = pd.read_parquet(tmp_path / "run" / "calls.parquet")
    assert len(results) == 2 and set(results.domain) == {"coding", "search"}
    assert {"bid", "jury", "execute"} <= set(calls.phase) and set(calls.agent) == set(ARCHS)

    report = (tmp_path / "gpu_check.md").read_text()
    assert "## Prediction" in report and "tasks per hour" in report
    worst = json.loads((tmp_path / "prediction.json").read_text())["worst"]
    assert worst["tasks_per_hour"] > 0 and worst["order_h"] == pytest.approx(100 / worst["tasks_per_hour"], rel=1e-6)
