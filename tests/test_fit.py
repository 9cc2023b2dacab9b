"""The weight-fit entry point (docs/method.md §4) end to end on the tiny pool: features from real bids and jury calls,
outcomes from a train run's results, both objectives solved, weights that later runs can load."""

import json

import numpy as np
import pandas as pd
import pytest

from sale.auction.weights import Weights, evaluate
from sale.config import compose
from sale.tasks import load_tasks


def fake_train_run(run_dir, agents, tasks, passes):
    """A train run's results.parquet: passes[agent] = the tasks that agent solved; execution cost grows with price."""
    rows = [
        {
            "arm": a,
            "agent": a,
            "task_id": t.id,
            "split": "train",
            "passed": t.id in passes[a],
            "exec_cost_usd": 1e-6 * (i + 1),
            "cost_usd": 1e-6 * (i + 1),
        }
        for i, a in enumerate(agents)
        for t in tasks
    ]
    run_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(run_dir / "results.parquet")


def test_fit_writes_weights_no_worse_than_the_defaults(tmp_path, tiny_pool, monkeypatch):
    from sale.fit import arrays, fit

    tasks = load_tasks({"sources": ["humaneval", "phantomwiki"], "split": "train", "per_bin": 1, "bins": [1, 5]})
    names = tiny_pool.names
    # The cheapest agent solves the easy tasks, only the largest the hard ones: routing matters.
    passes = {names[0]: {t.id for t in tasks if t.bin == 1}, names[1]: set(), names[2]: {t.id for t in tasks}}
    fake_train_run(tmp_path / "train", names, tasks, passes)
    cfg = compose(
        *[
            "pool=tiny",
            f"fit.train_run={tmp_path / 'train'}",
            f"fit.out_dir={tmp_path / 'fit'}",
            f"run.cache={tmp_path / 'calls.sqlite'}",
        ]
    )
    out = fit(cfg)

    features = pd.read_parquet(out / "features.parquet")
    assert len(features) == len(tasks) * len(names)
    assert features["passed"].sum() == sum(len(p) for p in passes.values())
    assert features[[f"gamma_{j}" for j in names]].apply(lambda c: c.between(0, 5)).all().all()
    assert "fit minmax (optimal)" in (out / "fit.md").read_text()
    assert (out / "minmax-solvable.json").exists()

    _, cost, entropy, jury, passed, exec_cost = arrays(features, names, names)
    default = evaluate(Weights.default(names), cost, entropy, jury, passed, exec_cost)
    for objective in ("minmax", "mean"):
        w = Weights.load(out / f"{objective}.json")
        assert w.provenance["source"] == "fit" and w.provenance["objective"] == objective
        assert sum(w.vector()) == pytest.approx(1)
        ev = evaluate(w, cost, entropy, jury, passed, exec_cost)
        # The defaults are a feasible point of the MILP, so the optimum cannot be worse on its own objective.
        if objective == "minmax":
            assert ev.max_loss <= default.max_loss + 1e-9
        else:
            assert ev.mean_loss <= default.mean_loss + 1e-9

    # A refit is served by the call cache and reaches the same weights.
    again = fit(cfg)
    assert json.loads((again / "minmax.json").read_text())["w_cost"] == pytest.approx(
        Weights.load(out / "minmax.json").w_cost
    )

    # The jury's cost is recorded per bid and juror, and priced into the overhead-aware fit.
    jury_usd = features[[f"jury_usd_{j}" for j in names]]
    assert (jury_usd > 0).all().all()
    overhead = Weights.load(out / "overhead.json")
    assert overhead.provenance["overhead_aware"] and set(overhead.provenance["jurors_kept"]) <= set(names)
    assert overhead.provenance["juror_cost_usd"] == pytest.approx(
        features.groupby("task_id")[list(jury_usd)].sum().mean().set_axis(names).to_dict()
    )
    assert all((w > 0) == (j in overhead.provenance["jurors_kept"]) for j, w in overhead.w_jury.items())
    assert "jury $/task" in (out / "fit.md").read_text()
    assert "On train tasks the fit did not see" in (out / "fit.md").read_text()
    # and a refit from the saved features makes no model call
    reuse = compose(
        *[
            "pool=tiny",
            f"fit.out_dir={out}",
            "fit.reuse_features=true",
            f"fit.train_run={tmp_path / 'nothing'}",
            "run.cache=null",
        ]
    )

    def no_model_call(*args):
        raise AssertionError("a refit from saved features made the auction's calls")

    monkeypatch.setattr("sale.fit.collect_features", no_model_call)
    assert fit(reuse) == out and Weights.load(out / "overhead.json").w_jury == pytest.approx(overhead.w_jury)


def test_cross_validation_scores_each_fit_on_train_tasks_it_was_not_fitted_on():
    from sale.fit import cross_validate

    rng = np.random.default_rng(1)
    n, agents = 30, ["small", "mid", "large"]
    passed = (rng.random((n, 3)) < [0.3, 0.5, 0.7]).astype(float)
    cost = np.tile([0.1, 0.3, 1.0], (n, 1))
    entropy = rng.random((n, 3))
    jury = rng.random((n, 3, 3)) * 5
    jury[:, :, 2] = passed * 5  # the largest juror knows who solves each task
    exec_cost = np.tile([1e-6, 3e-6, 1e-5], (n, 1))
    cv = cross_validate(
        cost,
        entropy,
        jury,
        passed,
        exec_cost,
        agents,
        agents,
        0.5,
        np.array([1e-7, 3e-7, 1e-6]),
        folds=3,
        repeats=2,
        time_limit_s=20,
    ).set_index("weights")
    assert list(cv.index) == ["default", "fit minmax", "fit minmax-solvable", "fit mean", "fit overhead", "only large"]
    assert cv.loc["only large", "held-out pass@1"] == pytest.approx(passed[:, 2].mean())
    # A juror that reveals the outcomes generalises: on held-out tasks every fit is far above the largest agent
    # alone (0.6 here), close to the tasks some agent solves (0.93).
    fits = [w for w in cv.index if w.startswith("fit ")]
    assert (cv.loc[fits, "held-out pass@1"] >= 0.8).all() and passed[:, 2].mean() == pytest.approx(0.6)
    assert (cv.loc[fits, "held-out pass@1"] <= passed.any(axis=1).mean() + 1e-9).all()
    shares = cv.loc["fit mean", [f"share {a}" for a in agents]]
    assert shares.sum() == pytest.approx(1)


def test_juror_costs_from_a_sale_run_count_the_ratings_of_the_initial_bids_only(tmp_path):
    from sale.fit import juror_costs

    calls = []
    for t in ("a", "b"):  # each auction: 2 bids, each juror rates both (1 $ and 3 $ a rating), then a refinement
        phases = [
            ("bid", "x"),
            ("bid", "y"),
            ("jury", "x"),
            ("jury", "x"),
            ("jury", "y"),
            ("jury", "y"),
            ("refine", "x"),
            ("jury", "x"),
            ("jury", "y"),
        ]
        calls += [
            {
                "arm": "sale",
                "order": 0,
                "task_id": t,
                "call_index": i,
                "phase": ph,
                "agent": ag,
                "cost_usd": {"x": 1.0, "y": 3.0}[ag],
            }
            for i, (ph, ag) in enumerate(phases)
        ]
    run = tmp_path / "sale"
    run.mkdir()
    pd.DataFrame(calls).to_parquet(run / "calls.parquet")
    pd.DataFrame([{"arm": "sale", "order": 0, "task_id": t} for t in "ab"]).to_parquet(run / "results.parquet")
    features = pd.DataFrame({"task_id": ["a", "b"]})
    cost, source = juror_costs(features, ["x", "y"], str(run))
    assert cost.tolist() == [2.0, 6.0] and "2 auctions" in source
    with pytest.raises(ValueError, match="fit.juror_cost_run"):
        juror_costs(features, ["x", "y"])


def test_fit_without_a_train_run_says_how_to_make_one(tmp_path):
    from sale.fit import fit

    cfg = compose(*["pool=tiny", f"fit.train_run={tmp_path / 'nothing'}"])
    with pytest.raises(FileNotFoundError, match="experiment=scaling tasks.split=train"):
        fit(cfg)
