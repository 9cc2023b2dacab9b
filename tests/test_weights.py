import json

import numpy as np
import pytest

from sale.auction.weights import Weights, choose, cost_feature, evaluate, features, fit_weights, losses


def simplex_grid(step: float = 0.01) -> np.ndarray:
    """Every (w_c, w_h, w_g) >= 0 on a grid of the 2-simplex."""
    n = round(1 / step)
    return np.array([(a, b, n - a - b) for a in range(n + 1) for b in range(n + 1 - a)], dtype=float) / n


def grid_objectives(grid, cost, entropy, jury, passed, exec_cost, lam=0.5, eps=1e-3):
    """Min-max and mean objectives of the prediction rule (ties to the lower index) at every grid point."""
    scores = features(cost, entropy, jury) @ grid.T  # [T, N, G]
    chosen = np.argmin(scores, axis=1)  # [T, G]
    picked = np.take_along_axis(losses(passed, exec_cost, lam)[:, :, None], chosen[:, None, :], axis=1)[:, 0, :]
    return picked.max(axis=0) + eps * picked.sum(axis=0), picked.mean(axis=0), chosen


def test_cost_feature_normalises_by_pool_max_price_and_bid_cap():
    prices = np.array([0.05, 0.09, 0.16, 0.36])
    assert cost_feature(prices, 0.36, 128, 128) == pytest.approx(prices / 0.36)
    assert cost_feature(0.36, 0.36, 64, 128) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="max_price"):
        cost_feature(0.1, 0.0, 64, 128)


def test_score_is_cost_minus_value():
    weights = Weights(0.3, 0.1, {"a": 0.4, "b": 0.2})
    # 0.3*0.5 - (0.1*1.0 + 0.4*3 + 0.2*4) = 0.15 - 2.1
    assert weights.score(0.5, 1.0, {"a": 3.0, "b": 4.0}) == pytest.approx(-1.95)
    # higher entropy raises the value, so it lowers the score (docs/method.md §3, step 4)
    assert weights.score(0.5, 2.0, {"a": 3.0, "b": 4.0}) < weights.score(0.5, 1.0, {"a": 3.0, "b": 4.0})
    with pytest.raises(ValueError, match="jury scores"):
        weights.score(0.5, 1.0, {"a": 3.0})


def test_choose_takes_argmin_and_breaks_ties_to_the_cheaper_agent():
    weights = Weights(0.5, 0.0, {"a": 0.5})
    cost = np.array(
        [
            [0.2, 1.0, 0.6],  # scores -1.4, -1.0, -1.2 -> agent 0
            [0.2, 1.0, 0.6],  # scores -0.9, -1.5, -1.2 -> agent 1
            [0.4, 0.4, 0.4],  # identical bids -> tie -> agent 0
            [0.8, 0.2, 0.2],
        ]
    )  # agents 1 and 2 tie below agent 0 -> agent 1
    entropy = np.zeros_like(cost)
    jury = np.array([[3, 3, 3], [2, 4, 3], [1, 1, 1], [3, 3, 3]], dtype=float)[:, :, None]
    assert choose(weights, cost, entropy, jury).tolist() == [0, 1, 0, 1]
    scalar = [[weights.score(cost[t, i], entropy[t, i], {"a": jury[t, i, 0]}) for i in range(3)] for t in range(4)]
    assert (features(cost, entropy, jury) @ weights.vector()) == pytest.approx(np.array(scalar))


def test_default_weights_sum_to_one_and_split_the_jury_equally():
    weights = Weights.default(["x", "y", "z"])
    assert (weights.w_cost, weights.w_entropy) == (0.3, 0.1)
    assert weights.w_jury == pytest.approx({"x": 0.2, "y": 0.2, "z": 0.2})
    assert weights.vector().sum() == pytest.approx(1.0)
    assert weights.provenance["source"] == "default"
    with pytest.raises(ValueError, match="at least one juror"):
        Weights.default([])


def toy_three_tasks():
    """2 agents (0 cheap, 1 dear). The passing agent wins every task only where w_g > 0.5 w_c + w_h."""
    cost = np.array([[0.2, 0.7]] * 3)
    entropy = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 1.0]])
    jury = np.array([[2.0, 3.0], [3.0, 2.0], [2.0, 3.0]])[:, :, None]
    passed = np.array([[0, 1], [1, 0], [0, 1]])
    exec_cost = np.array([[1.0, 2.0]] * 3)  # passing losses: 0.25 for agent 0, 0.5 for agent 1
    return cost, entropy, jury, passed, exec_cost


@pytest.mark.parametrize("objective", ["minmax", "mean"])
def test_toy_instance_has_the_known_optimum(objective):
    cost, entropy, jury, passed, exec_cost = toy_three_tasks()
    fit = fit_weights(cost, entropy, jury, passed, exec_cost, ["g"], objective=objective)
    assert fit.status == "optimal"
    assert fit.chosen.tolist() == [1, 0, 1]
    assert fit.max_loss == pytest.approx(0.5)
    assert fit.mean_loss == pytest.approx(1.25 / 3)
    expected = 0.5 + 1e-3 * 1.25 if objective == "minmax" else 1.25 / 3
    assert fit.objective_value == pytest.approx(expected, abs=1e-9)
    w = fit.weights
    assert w.w_jury["g"] > 0.5 * w.w_cost + w.w_entropy
    assert evaluate(w, cost, entropy, jury, passed, exec_cost).pass_rate == 1.0
    # cost-only or entropy-only weights cannot do it
    assert evaluate(Weights(1, 0, {"g": 0}), cost, entropy, jury, passed, exec_cost).pass_rate < 1.0
    assert evaluate(Weights(0, 1, {"g": 0}), cost, entropy, jury, passed, exec_cost).pass_rate < 1.0


def easy_tasks_and_one_hard_task():
    """Four easy tasks both agents pass, one hard task only the dear agent passes.

    Agent 1 wins a task iff 0.1 w_h + Δg·w_g > 0.9 w_c. The hard task has the smallest jury gap Δg, so
    any w that sends it to agent 1 sends every easy task there too: mean keeps agent 0 everywhere
    (mean 0.25, max 1.05), min-max pays for agent 1 everywhere (mean 0.5, max 0.5).
    """
    jury_gap = np.array([1.8, 0.9, 0.6, 0.45, 0.3])
    cost = np.tile([0.1, 1.0], (5, 1))
    entropy = np.column_stack([np.full(5, 1.0), np.full(5, 1.1)])
    jury = np.column_stack([np.full(5, 3.0), 3.0 + jury_gap])[:, :, None]
    passed = np.array([[1, 1]] * 4 + [[0, 1]])
    exec_cost = np.tile([1.0, 10.0], (5, 1))
    return cost, entropy, jury, passed, exec_cost


def test_minmax_and_mean_pick_different_weights_each_optimal_by_brute_force():
    data = easy_tasks_and_one_hard_task()
    minmax = fit_weights(*data, ["g"], objective="minmax")
    mean = fit_weights(*data, ["g"], objective="mean")
    assert minmax.chosen.tolist() == [1] * 5
    assert mean.chosen.tolist() == [0] * 5
    assert (minmax.max_loss, mean.max_loss) == pytest.approx((0.5, 1.05))
    assert (minmax.mean_loss, mean.mean_loss) == pytest.approx((0.5, 0.25))

    grid_minmax, grid_mean, _ = grid_objectives(simplex_grid(0.01), *data)
    assert minmax.objective_value == pytest.approx(grid_minmax.min(), abs=1e-9)
    assert mean.objective_value == pytest.approx(grid_mean.min(), abs=1e-9)
    # each fit's weights, run through the prediction rule, score what the fit claims
    for fit in (minmax, mean):
        assert choose(fit.weights, *data[:3]).tolist() == fit.chosen.tolist()
    assert evaluate(mean.weights, *data).mean_loss == pytest.approx(grid_mean.min())
    assert evaluate(minmax.weights, *data).max_loss == pytest.approx(0.5)


def random_instance(seed, n_tasks=20, n_agents=3, n_jurors=2):
    rng = np.random.default_rng(seed)
    price = np.linspace(0.2, 1.0, n_agents)
    skill = np.linspace(0.0, 1.5, n_agents)
    hardness = rng.uniform(0, 3, size=n_tasks)
    cost = cost_feature(price[None, :], price.max(), rng.integers(40, 129, size=(n_tasks, n_agents)), 128)
    entropy = rng.uniform(0.3, 2.0, size=(n_tasks, n_agents))
    jury = np.clip(
        2.5
        + skill[None, :, None]
        - 0.5 * hardness[:, None, None]
        + rng.normal(0, 0.7, size=(n_tasks, n_agents, n_jurors)),
        0,
        5,
    )
    p_pass = 1 / (1 + np.exp(-(2 * skill[None, :] - 1.5 * hardness[:, None] + 1)))
    passed = (rng.uniform(size=(n_tasks, n_agents)) < p_pass).astype(int)
    exec_cost = price[None, :] * rng.uniform(1e3, 1e4, size=(n_tasks, n_agents))
    return cost, entropy, jury, passed, exec_cost


@pytest.mark.parametrize("objective", ["minmax", "mean"])
def test_fitted_weights_lie_on_the_simplex_and_reproduce_the_milp_choice(objective):
    data = random_instance(seed=3)
    fit = fit_weights(*data, ["j1", "j2"], objective=objective)
    w = fit.weights.vector()
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    # the default margin makes the MILP's choice the unique argmin, so the auction's rule agrees with it
    assert choose(fit.weights, *data[:3]).tolist() == fit.chosen.tolist()
    check = evaluate(fit.weights, *data)
    assert (check.mean_loss, check.max_loss) == pytest.approx((fit.mean_loss, fit.max_loss))
    claimed = fit.max_loss + 1e-3 * 20 * fit.mean_loss if objective == "minmax" else fit.mean_loss
    assert fit.objective_value == pytest.approx(claimed, abs=1e-6)
    # no sampled weight vector does better than the fit
    samples = np.random.default_rng(0).dirichlet(np.ones(4), size=3000)
    scores = features(*data[:3]) @ samples.T
    picked = np.take_along_axis(losses(*data[3:])[:, :, None], np.argmin(scores, axis=1)[:, None, :], axis=1)[:, 0]
    sampled = picked.max(axis=0) + 1e-3 * picked.sum(axis=0) if objective == "minmax" else picked.mean(axis=0)
    assert fit.objective_value <= sampled.min() + 1e-9


def test_margin_keeps_the_fit_from_winning_a_tie_the_auction_would_lose():
    # identical bids; only the dear agent passes. A tie goes to the cheap agent at auction time.
    cost, entropy, jury = np.array([[0.5, 0.5]]), np.array([[1.0, 1.0]]), np.array([[[3.0], [3.0]]])
    passed, exec_cost = np.array([[0, 1]]), np.array([[1.0, 1.0]])
    literal = fit_weights(cost, entropy, jury, passed, exec_cost, ["g"], margin=0.0)
    assert literal.chosen.tolist() == [1]  # the paper's constraint as written lets x take the tie
    assert choose(literal.weights, cost, entropy, jury).tolist() == [0]
    strict = fit_weights(cost, entropy, jury, passed, exec_cost, ["g"])
    assert strict.chosen.tolist() == [0] == choose(strict.weights, cost, entropy, jury).tolist()
    assert strict.max_loss == pytest.approx(1.5)


def test_margin_is_dropped_when_no_weights_can_honour_it():
    cost = np.array([[0.5 + 1e-6, 0.5]])  # near-identical bids: no w separates them by 1e-4
    entropy, jury = np.array([[1.0, 1.0]]), np.array([[[3.0], [3.0]]])
    fit = fit_weights(cost, entropy, jury, np.array([[1, 1]]), np.array([[1.0, 1.0]]), ["g"])
    assert fit.status.startswith("optimal (margin") and fit.weights.provenance["margin"] == 0.0


def test_big_m_must_be_valid():
    data = toy_three_tasks()
    derived = fit_weights(*data, ["g"])
    assert derived.weights.provenance["big_m"] == pytest.approx(1.0 + 1e-4)  # largest feature gap + margin
    explicit = fit_weights(*data, ["g"], big_m=10.0)
    assert explicit.objective_value == pytest.approx(derived.objective_value, abs=1e-9)
    with pytest.raises(ValueError, match="big_m"):
        fit_weights(*data, ["g"], big_m=0.5)


def test_save_load_round_trip_keeps_weights_and_provenance(tmp_path):
    fit = fit_weights(*toy_three_tasks(), ["g"], objective="minmax", lam=0.5)
    path = tmp_path / "fits" / "weights.json"
    fit.weights.save(path)
    stored = json.loads(path.read_text())
    for key in ("objective", "lambda", "n_tasks", "status", "created_at", "saved_at"):
        assert key in stored["provenance"]
    assert stored["provenance"]["n_tasks"] == 3
    loaded = Weights.load(path)
    assert loaded.vector() == pytest.approx(fit.weights.vector())
    assert loaded.w_jury.keys() == fit.weights.w_jury.keys()
    assert Weights.from_dict(loaded.to_dict()) == loaded


def test_bad_input_raises_clear_errors():
    cost, entropy, jury, passed, exec_cost = toy_three_tasks()
    with pytest.raises(ValueError, match="entropy has shape"):
        fit_weights(cost, entropy[:2], jury, passed, exec_cost, ["g"])
    with pytest.raises(ValueError, match="jury has 1 jurors"):
        fit_weights(cost, entropy, jury, passed, exec_cost, ["g", "h"])
    with pytest.raises(ValueError, match="passed has shape"):
        fit_weights(cost, entropy, jury, passed[:, :1], exec_cost, ["g"])
    bad = cost.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match="cost contains NaN"):
        fit_weights(bad, entropy, jury, passed, exec_cost, ["g"])
    with pytest.raises(ValueError, match="only 0 and 1"):
        fit_weights(cost, entropy, jury, passed * 2, exec_cost, ["g"])
    with pytest.raises(ValueError, match="objective"):
        fit_weights(cost, entropy, jury, passed, exec_cost, ["g"], objective="median")
    with pytest.raises(ValueError, match="finite and >= 0"):
        Weights(-0.1, 0.5, {"g": 0.6})
    with pytest.raises(ValueError, match="lacks"):
        Weights.from_dict({"w_cost": 1.0})


def test_solvable_worst_case_lets_the_largest_take_what_only_it_solves():
    """t0 nobody solves; t1 and t3 look identical to the jury but only t1 is solved (by the large agent); t2 both
    solve. Bounding every task (the paper) makes t0 set Q = 1.05, so routing t1 and t3 to the large agent (t3 then
    loses 1.5) is forbidden; bounding only solvable tasks leaves t3 to the ε·mean term."""
    cost = np.array([[0.1, 1.0]] * 4)
    entropy = np.zeros((4, 2))
    jury = np.array([[2, 2], [1, 4], [3, 3], [1, 4]], dtype=float)[..., None]
    passed = np.array([[0, 0], [0, 1], [1, 1], [0, 0]])
    exec_cost = np.array([[0.1, 1.0]] * 4)
    everywhere = fit_weights(cost, entropy, jury, passed, exec_cost, ["g"], objective="minmax")
    solvable = fit_weights(cost, entropy, jury, passed, exec_cost, ["g"], objective="minmax", worst_case="solvable")
    assert everywhere.chosen.tolist() == [0, 0, 0, 0] and everywhere.max_loss == pytest.approx(1.05)
    assert solvable.chosen.tolist() == [0, 1, 0, 1]
    assert solvable.mean_loss == pytest.approx((1.05 + 0.5 + 0.05 + 1.5) / 4)
    assert solvable.weights.provenance["worst_case"] == "solvable"
    with pytest.raises(ValueError, match="worst_case"):
        fit_weights(cost, entropy, jury, passed, exec_cost, ["g"], worst_case="some")


def test_overhead_aware_fit_drops_a_juror_whose_ratings_are_not_worth_its_price():
    """Two jurors rate the same plans; only the dear one's ratings tell which agent solves a task. A juror that adds
    nothing is dropped at any positive price; a useful one stays while it is cheap and goes once it costs more than the
    failures it prevents."""
    data = random_instance(seed=5, n_jurors=1)
    cost, entropy, jury, passed, exec_cost = data
    useful = jury[:, :, 0] + 2.0 * passed  # ratings that see the outcome
    noise = np.full_like(useful, 2.5)  # a juror who rates every plan the same
    both = np.stack([noise, useful], axis=2)
    names = ["flat", "sharp"]
    plain = fit_weights(cost, entropy, both, passed, exec_cost, names, objective="mean")
    cheap = fit_weights(cost, entropy, both, passed, exec_cost, names, objective="mean", juror_cost=[1e-9, 1e-9])
    assert cheap.weights.w_jury["flat"] == 0 and cheap.weights.w_jury["sharp"] > 0
    assert cheap.weights.provenance["jurors_kept"] == ["sharp"]
    assert cheap.mean_loss == pytest.approx(plain.mean_loss, abs=1e-6)
    # a juror priced above everything its ratings can save is switched off, and the fit pays no jury
    dear = fit_weights(
        cost, entropy, both, passed, exec_cost, names, objective="mean", juror_cost=[0.0, 10 * exec_cost.max()]
    )
    assert dear.weights.w_jury == {"flat": 0.0, "sharp": 0.0} and dear.weights.provenance["jurors_kept"] == []
    assert dear.weights.w_cost + dear.weights.w_entropy == pytest.approx(1)
    assert choose(dear.weights, cost, entropy, both).tolist() == dear.chosen.tolist()
    # the juror's price enters the loss: the kept jurors' p_j are in mean_loss, and in the min-max bound
    p = 0.5 * 1e-3 / exec_cost.max()
    mid = fit_weights(cost, entropy, both, passed, exec_cost, names, objective="minmax", juror_cost=[0, 1e-3])
    assert mid.weights.w_jury["sharp"] > 0
    ev = evaluate(mid.weights, cost, entropy, both, passed, exec_cost)
    assert mid.max_loss == pytest.approx(ev.max_loss + p) and mid.mean_loss == pytest.approx(ev.mean_loss + p)
    with pytest.raises(ValueError, match="juror_cost"):
        fit_weights(cost, entropy, both, passed, exec_cost, names, juror_cost=[1.0])
