"""Notebooks run against the logs and write their figures (they never launch runs).

Every numbered notebook runs against the committed logs, whichever main and ablation runs exist (a missing run is
reported and skipped). Notebooks 02-05 also run against a complete synthetic set of run directories, so that every
table and figure they draw is exercised before the real runs land. Inputs and outputs are passed as parameters
(injected after each notebook's `parameters` cell, as papermill does), so the tests never write into figures/.
"""

import json

import nbformat
import numpy as np
import pandas as pd
import pytest

from sale import REPO_ROOT
from sale.analysis import notebooks
from sale.analysis.reading import ABLATIONS, pool_agents
from sale.harness.runlog import load_logs

NOTEBOOKS = REPO_ROOT / "notebooks"
SCALING = REPO_ROOT / "data" / "runs" / "scaling-cpu-test"


def execute(name: str, **params) -> nbformat.NotebookNode:
    return notebooks.execute(NOTEBOOKS / f"{name}.ipynb", params, timeout=300)


def printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


LESSONS = [
    "00_one_auction",
    "01_scaling",
    "02_cost_tables",
    "03_cost_quality",
    "04_memory_dynamics",
    "05_ablations_overhead",
    "06_when_does_an_auction_pay",
]


@pytest.mark.parametrize("name", LESSONS)
def test_notebook_is_a_lesson_with_parameters_and_saved_outputs(name):
    """Each notebook opens with its question, cites where its method is defined, takes its inputs from a
    `parameters` cell (not from the environment), and is committed executed, without errors."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert nb.cells[0].cell_type == "markdown" and "docs/method.md" in nb.cells[0].source
    assert "$$" in markdown or "$" in nb.cells[0].source  # the equations it uses
    assert "parameters" in code[0].metadata.get("tags", [])
    assert notebooks.parameter_names(nb) and "FIGURES" in notebooks.parameter_names(nb)
    assert not any(n in c.source for c in nb.cells for n in ("os.environ", "SPEC §", "shared/"))
    assert not any(notebooks.INJECTED in c.metadata.get("tags", []) for c in nb.cells)
    assert all(c.execution_count for c in code), "commit the notebook executed (scripts/run_notebooks.py)"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    for i, cell in enumerate(nb.cells):  # every figure is followed by a plain reading of it
        if cell.cell_type == "code" and any("image/png" in o.get("data", {}) for o in cell.outputs):
            after = nb.cells[i + 1] if i + 1 < len(nb.cells) else None
            assert after is not None and after.cell_type == "markdown", f"cell {i}: a figure without a reading"
    assert figures or name == "02_cost_tables"


def test_parameters_are_injected_after_the_parameters_cell():
    nb = nbformat.read(NOTEBOOKS / "04_memory_dynamics.ipynb", as_version=4)
    i = notebooks.parameters_index(nb)
    notebooks.inject_parameters(nb, {"WINDOW": 5, "POOL": "cpu"})
    injected = nb.cells[i + 1]
    assert notebooks.INJECTED in injected.metadata["tags"] and "WINDOW = 5\nPOOL = 'cpu'" in injected.source
    n = len(nb.cells)
    notebooks.inject_parameters(nb, {"WINDOW": 7})  # a second run replaces the first run's cell
    assert len(nb.cells) == n and "WINDOW = 7" in nb.cells[i + 1].source
    notebooks.inject_parameters(nb, {})  # no parameters: the defaults
    assert len(nb.cells) == n - 1
    with pytest.raises(ValueError, match="not parameters of this notebook"):
        notebooks.inject_parameters(nb, {"WINDOWS": 5})
    assert notebooks.parse_value("3") == 3 and notebooks.parse_value("None") is None
    assert notebooks.parse_value("data/runs") == "data/runs" and notebooks.parse_value("'cpu'") == "cpu"


def test_one_auction_notebook_checks_its_exercises():
    """Notebook 00 ends with exercises, each with a hidden answer and a cell that checks it on the logged bids;
    the committed outputs show every check passed."""
    nb = nbformat.read(NOTEBOOKS / "00_one_auction.ipynb", as_version=4)
    answers = [c for c in nb.cells if c.cell_type == "markdown" and "<details>" in c.source]
    checks = [c for c in nb.cells if c.cell_type == "code" and "assert" in c.source and "exercise" in c.source.lower()]
    assert len(answers) >= 3 and len(checks) >= 3
    assert printed(nb).count("checked") >= len(checks)


def test_scaling_notebook_draws_its_figures(tmp_path):
    if load_logs(SCALING)["results"].empty:
        pytest.skip("no scaling logs")
    execute("01_scaling", FIGURES=str(tmp_path))
    assert (tmp_path / "01_scaling_pass_by_bin.png").stat().st_size > 10_000
    horizons = (tmp_path / "01_time_horizons.csv").read_text()
    assert "qwen2.5-coder-1.5b" in horizons and "status" in horizons


@pytest.mark.parametrize(
    "name",
    ["02_cost_tables", "03_cost_quality", "04_memory_dynamics", "05_ablations_overhead", "06_when_does_an_auction_pay"],
)
def test_notebook_runs_on_committed_logs(name, tmp_path):
    nb = execute(name, FIGURES=str(tmp_path))
    text = printed(nb)
    if not (REPO_ROOT / "data" / "runs" / "main-sale-cpu").exists():
        assert "main-sale-cpu: not run yet (python -m sale.run experiment=main method=sale)" in text


# --------------------------------------------------------------------------------------------- synthetic runs


def write_fake_runs(root, per_bin: int = 2, seed: int = 0) -> None:
    """Run directories for every main method and ablation on 2 × 5 × per_bin tasks, with consistent outcomes: each
    agent passes a task with a probability that falls with the bin and rises with its size. main-cascade-cpu has
    only a journal (an unfinished run)."""
    rng = np.random.default_rng(seed)
    agents = pool_agents("cpu")
    price = {a: p for a, p in zip(agents, (0.0015, 0.0055, 0.0172))}
    tasks = [(f"{d}/t{b}{i}", d, b) for d in ("coding", "search") for b in range(1, 6) for i in range(per_bin)]
    passes = {
        (t, a): rng.random() < 0.95 - 0.17 * (b - 1) * (1 - 0.3 * k) for t, _, b in tasks for k, a in enumerate(agents)
    }
    exec_tokens = {(t, a): int(rng.integers(300, 3000)) for t, _, _ in tasks for a in agents}

    def record(method, arm, order, position, task, agent, sale=False):
        t, domain, b = task
        calls = [{"phase": "execute", "agent": agent, "tokens": exec_tokens[t, agent]}]
        bids = []
        if sale:
            refined = bool(rng.random() < 0.3)
            calls += [{"phase": "bid", "agent": a, "tokens": 300} for a in agents]
            calls += [{"phase": "jury", "agent": j, "tokens": 250} for j in agents for _ in agents]
            if refined:
                calls.append({"phase": "refine", "agent": agent, "tokens": 400})
            for i, a in enumerate(agents):
                gammas = {f"gamma_{j}": 2.0 + 0.5 * i + 0.5 * passes[t, a] + 0.1 * k for k, j in enumerate(agents)}
                bids.append(
                    {
                        "agent": a,
                        "plan": "plan",
                        "tokens": 128,
                        "entropy": 1.0,
                        "refined": False,
                        **gammas,
                        "jury_mean": 3.0,
                        "cost": 0.1 * (i + 1),
                        "value": 1.5,
                        "score": 0.1 * i - 1.5,
                        "task_id": t,
                        "bid_index": i,
                        "provisional_winner": a == agent,
                        "final_winner": a == agent and not refined,
                        "arm": arm,
                        "order": order,
                    }
                )
            if refined:
                bids.append(
                    {
                        **bids[-1],
                        "agent": agent,
                        "refined": True,
                        "bid_index": len(agents),
                        "provisional_winner": False,
                        "final_winner": True,
                    }
                )
        for i, c in enumerate(calls):
            c.update(
                method=method,
                arm=arm,
                order=order,
                task_id=t,
                call_index=i,
                prompt_tokens=c["tokens"] // 2,
                completion_tokens=c["tokens"] - c["tokens"] // 2,
                price_per_mtok=price[c["agent"]],
                cost_usd=c["tokens"] * price[c["agent"]] / 1e6,
                latency_s=c["tokens"] / 100,
                cached=False,
                mean_entropy=1.0,
            )
        auction = [c for c in calls if c["phase"] != "execute"]
        result = {
            "method": method,
            "arm": arm,
            "order": order,
            "position": position,
            "task_id": t,
            "domain": domain,
            "bin": b,
            "tau_minutes": 5.0 * b,
            "split": "test",
            "agent": agent,
            "passed": bool(passes[t, agent]),
            "turns": 2,
            "tokens": float(sum(c["tokens"] for c in calls)),
            "cost_usd": sum(c["cost_usd"] for c in calls),
            "exec_tokens": float(exec_tokens[t, agent]),
            "exec_cost_usd": calls[0]["cost_usd"],
            "auction_tokens": float(sum(c["tokens"] for c in auction)),
            "auction_cost_usd": sum(c["cost_usd"] for c in auction),
            "n_calls": len(calls),
            "description": t,
            "wall_s": 1.0,
        }
        if sale:
            result.update(provisional_agent=agent, winner_refined=refined, plan="plan")
        return {"key": [arm, order, t], "result": result, "calls": calls, "bids": bids}

    def stream(order):
        perm = np.random.default_rng(order).permutation(len(tasks))
        return [(pos, tasks[i]) for pos, i in enumerate(perm)]

    def oracle(t):
        return next(a for a in agents if passes[t, a] or a == agents[-1])

    def sale_winner(position, memory=True):  # with memory, cheaper agents win more as the stream goes on
        cheap = 0.3 + (0.5 * position / len(tasks) if memory else 0.0)
        return agents[int(rng.integers(0, 2))] if rng.random() < cheap else agents[-1]

    runs = {
        "main-single-cpu": [record("single", a, 0, p, task, a) for a in agents for p, task in stream(0)],
        "main-oracle-cpu": [record("oracle", "oracle", 0, p, task, oracle(task[0])) for p, task in stream(0)],
        "main-cascade-cpu": [record("cascade", "cascade", 0, p, task, oracle(task[0])) for p, task in stream(0)],
        "main-random-cpu": [
            record("random", f"random:{s:g}", o, p, task, agents[-1] if rng.random() < s else agents[0])
            for s in (0.25, 0.75)
            for o in range(2)
            for p, task in stream(o)
        ],
        "main-sale-cpu": [
            record("sale", "sale", o, p, task, sale_winner(p), sale=True) for o in range(3) for p, task in stream(o)
        ],
    }
    for method in ("knn", "mlc"):
        runs[f"main-{method}-cpu"] = [
            record(method, f"{method}:theta={th:g}", 0, p, task, agents[min(2, int(rng.random() * 3 * th + 0.5))])
            for th in (0.2, 0.5, 0.8)
            for p, task in stream(0)
        ]
    for name in ABLATIONS:
        memory = name != "no_memory"
        runs[f"ablation-{name}-cpu"] = [
            record("sale", "sale", 0, p, task, sale_winner(p, memory), sale=True)
            for p, task in stream(0)[: 2 * len(tasks) // 3]
        ]
    for name, records in runs.items():
        run_dir = root / name
        run_dir.mkdir(parents=True)
        if name == "main-cascade-cpu":
            (run_dir / "journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
            continue
        pd.DataFrame([r["result"] for r in records]).to_parquet(run_dir / "results.parquet")
        pd.DataFrame([c for r in records for c in r["calls"]]).to_parquet(run_dir / "calls.parquet")
        bids = [b for r in records for b in r["bids"]]
        if bids:
            pd.DataFrame(bids).to_parquet(run_dir / "bids.parquet")


@pytest.fixture(scope="module")
def fake_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    write_fake_runs(root)
    return root


def test_cost_notebooks_draw_everything_on_complete_runs(fake_runs, tmp_path):
    params = dict(RUNS=str(fake_runs), FIGURES=str(tmp_path))
    for name in ("02_cost_tables", "03_cost_quality"):
        assert "not run yet" not in printed(execute(name, **params))
    comparison = pd.read_csv(tmp_path / "02_comparison.csv")
    assert {"sale", "oracle", "cascade", "knn", "mlc", "random", "single"} <= set(comparison["method"])
    assert comparison.loc[comparison["method"] == "knn", "AIQ"].notna().all()
    vs = pd.read_csv(tmp_path / "02_sale_vs_largest.csv")
    assert len(vs) == 2 * 5 + 2 + 1 and (vs["orders"] == 3).all()
    assert "SALE pass@1" in (tmp_path / "02_sale_vs_largest.md").read_text()
    assert (tmp_path / "03_cost_quality.png").stat().st_size > 10_000


def test_dynamics_and_ablation_notebooks_draw_everything_on_complete_runs(fake_runs, tmp_path):
    params = dict(RUNS=str(fake_runs), FIGURES=str(tmp_path))
    for name in ("04_memory_dynamics", "05_ablations_overhead"):
        assert "not run yet" not in printed(execute(name, **params))
    assert (tmp_path / "04_memory_dynamics.png").stat().st_size > 10_000
    assert (tmp_path / "05_ablations.png").stat().st_size > 10_000
    ablations = pd.read_csv(tmp_path / "05_ablations.csv")
    assert list(ablations["ablation"]) == list(ABLATIONS)
    assert "tokens %" in (tmp_path / "05_overhead.md").read_text()


def test_auction_pay_notebook_draws_everything_on_complete_runs(fake_runs, tmp_path):
    params = dict(RUNS=str(fake_runs), FIGURES=str(tmp_path))
    text = printed(execute("06_when_does_an_auction_pay", **params))
    assert "skipped" not in text and "not run yet" not in text
    assert "picks the logged provisional winner in" in text
    for figure in ("06_jury_auroc", "06_headroom", "06_counterfactual", "06_break_even", "06_cost_models"):
        assert (tmp_path / f"{figure}.png").stat().st_size > 10_000
    auroc = pd.read_csv(tmp_path / "06_jury_auroc.csv")
    assert {"bidder size alone", f"juror {pool_agents('cpu')[-1]}"} <= set(auroc["rater"])
    counterfactual = pd.read_csv(tmp_path / "06_counterfactual.csv")
    assert {"replay: perfect jury", "replay: largest agent as the only juror"} <= set(counterfactual["variant"])
    sensitivity = pd.read_csv(tmp_path / "06_cost_models.csv")
    assert sensitivity["scheme"].nunique() == 3 and (sensitivity["cost rel. largest"] > 0).all()
    assert {"APGR", "CPT(50%)"} <= set(pd.read_csv(tmp_path / "06_routing_measures.csv").columns)
    self_evaluation = pd.read_csv(tmp_path / "06_self_evaluation_train.csv")
    assert {"kept", "imputed", "rescaled", "dropped"} <= set(self_evaluation["own rating"])


@pytest.mark.models
def test_one_auction_notebook_runs_live_on_the_cpu_pool(tmp_path, monkeypatch):
    """Notebook 00 runs two real auctions (steps 1-3 by hand, then run_auction) and the winners' executions, as a
    reader runs it: with the committed call-cache shards, so its exercises' answers (checked in the notebook) are
    those of the committed calls. A call the shards lack is made by the real model."""
    from sale import DATA_DIR

    monkeypatch.setenv("SALE_CACHE_SHARDS", str(DATA_DIR / "cache" / "cpu"))
    monkeypatch.setenv("SALE_CALL_CACHE", str(tmp_path / "calls.sqlite"))
    nb = execute("00_one_auction", FIGURES=str(tmp_path))
    text = printed(nb)
    assert "provisional winner" in text and "executes" in text and "the auction's share of the dollars" in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 4
    assert (tmp_path / "00_jury.png").stat().st_size > 10_000 and (tmp_path / "00_scores.png").exists()
