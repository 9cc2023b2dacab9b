"""The regime simulator (sale.analysis.regime): it is the auction (the logged provisional winners, notebook 06's
replays to the last digit), its synthetic jury has the AUROC and the marginals it promises, and the sweeps'
arithmetic and the paper-calibrated pool say what they claim."""

import numpy as np
import pandas as pd
import pytest

from sale import REPO_ROOT
from sale.analysis import regime
from sale.auction.bids import Bid
from sale.auction.weights import Weights

HAVE_RUNS = (REPO_ROOT / "data/runs/main-sale-cpu/bids.parquet").exists() and (
    REPO_ROOT / "data/runs/main-single-cpu/results.parquet"
).exists()
needs_runs = pytest.mark.skipif(not HAVE_RUNS, reason="needs the committed main-sale-cpu and main-single-cpu runs")


@pytest.fixture(scope="module")
def cpu():
    return regime.cpu_market()


# ------------------------------------------------------------------------------------- it is the auction


@needs_runs
def test_the_simulator_picks_every_logged_provisional_winner(cpu):
    from sale.analysis import reading

    market, weights = cpu
    per = regime.simulate(market, weights)
    bids = reading.load_run(REPO_ROOT / "data/runs", "main-sale-cpu", verbose=False)["bids"]
    provisional = bids[bids["provisional_winner"].astype(bool) & ~bids["refined"].astype(bool)]
    assert len(provisional) == 500  # 100 tasks × 5 orders
    assert (provisional["task_id"].map(per["agent"]) == provisional["agent"]).all()


# figures/06_counterfactual.csv, rows "replay: weights SALE ran with (minmax-solvable)" and "replay: perfect jury"
NOTEBOOK_06 = {
    "logged": {
        "tasks": 100,
        "pass@1": 0.18,
        "Δ vs largest": -0.34,
        "Δ lo": -0.43999999999999995,
        "Δ hi": -0.24975000000000133,
        "cost rel. largest": 0.4403806908587549,
        "largest share": 0.16,
        "auction $ share": 0.6276298946381668,
        "jury $/task": 1.5235461359999999e-05,
    },
    "perfect": {
        "tasks": 100,
        "pass@1": 0.56,
        "Δ vs largest": 0.040000000000000036,
        "Δ lo": 0.010000000000000009,
        "Δ hi": 0.08000000000000007,
        "cost rel. largest": 0.4713337129041248,
        "largest share": 0.45,
        "auction $ share": 0.5864127242274857,
        "jury $/task": 1.5235461359999999e-05,
    },
}


@needs_runs
@pytest.mark.parametrize("ratings", ["logged", "perfect"])
def test_the_simulator_reproduces_notebook_06_exactly(cpu, ratings):
    market, weights = cpu
    row = regime.summarize(regime.simulate(market, weights, ratings), market)
    for key, value in NOTEBOOK_06[ratings].items():
        assert row[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert row["cost lo"] < row["cost rel. largest"] < row["cost hi"]
    assert row["reliance reduction"] == pytest.approx(1 - NOTEBOOK_06[ratings]["largest share"])


@needs_runs
def test_notebook_06_replay_is_the_simulator(cpu):
    from sale.analysis import counterfactuals, reading

    market, weights = cpu
    bids = reading.load_run(REPO_ROOT / "data/runs", "main-sale-cpu", verbose=False)["bids"]
    for self_rating, self_evaluation in (("kept", True), ("imputed", False)):
        replayed = counterfactuals.replay_auction(bids, weights, market.prices, 128, self_rating=self_rating)
        simulated = regime.simulate(market, weights, self_evaluation=self_evaluation)["agent"]
        assert replayed.reindex(simulated.index).equals(simulated)


def test_ties_go_to_the_cheaper_agent_and_a_missing_self_rating_is_imputed():
    prices = {"s": 1.0, "l": 10.0}
    w = Weights(0.0, 0.0, {"s": 0.5, "l": 0.5})
    tie = {"t": [Bid("s", "", 10, 1.0, jury={"s": 3.0, "l": 3.0}), Bid("l", "", 10, 1.0, jury={"s": 3.0, "l": 3.0})]}
    assert regime.allocate(tie, w, prices, 128)["t"] == "s"
    # l rates its own plan 5 and the other 1: with self-evaluation it wins, without it its own rating is imputed as
    # its mean rating of the others (1), and the two plans tie again
    auctions = lambda: {  # noqa: E731
        "t": [Bid("s", "", 10, 1.0, jury={"s": 3.0, "l": 1.0}), Bid("l", "", 10, 1.0, jury={"s": 3.0, "l": 5.0})]
    }
    assert regime.allocate(auctions(), w, prices, 128)["t"] == "l"
    dropped = {
        t: [Bid(b.agent, "", 10, 1.0, jury={j: v for j, v in b.jury.items() if j != b.agent}) for b in bids]
        for t, bids in auctions().items()
    }
    assert regime.allocate(dropped, w, prices, 128, self_evaluation=False)["t"] == "s"


# ----------------------------------------------------------------------------------------- the synthetic jury


def test_synthetic_ratings_keep_each_jurors_marginal_and_reach_the_target_auroc():
    rng = np.random.default_rng(0)
    n = 20_000
    solves = rng.random(n) < 0.3
    strata = np.where(rng.random(n) < 0.5, "coding", "search")
    real = np.column_stack([rng.normal(2, 1, n), rng.uniform(0, 5, n)])
    real[:10, 1] = np.nan  # a juror that did not rate some plans keeps as many missing ratings
    for target in (0.5, 0.7, 0.9):
        syn = regime.synthetic_ratings(solves, strata, real, target, rng)
        for s in ("coding", "search"):
            m = strata == s
            for j in range(2):
                assert np.array_equal(np.sort(syn[m, j]), np.sort(real[m, j]), equal_nan=True)
        for j in range(2):
            assert regime.stratified_auroc(syn[:, j], solves, strata) == pytest.approx(target, abs=0.012)
    perfect = regime.synthetic_ratings(solves, strata, real[:, :1], 1.0, rng)
    for s in ("coding", "search"):
        m = strata == s
        assert perfect[m & solves, 0].min() > perfect[m & ~solves, 0].max()


def test_separation_and_stratified_auroc():
    assert regime.separation(0.5) == 0
    assert regime.separation(1.0) == float("inf")
    assert regime.separation(0.76025) == pytest.approx(1.0, abs=1e-3)  # Φ(1/√2) ≈ 0.76025
    with pytest.raises(ValueError):
        regime.separation(0.4)
    # within each stratum the score separates perfectly; pooled, the strata's offset spoils it
    scores = [0, 1, 10, 11]
    labels = [False, True, False, True]
    strata = ["a", "a", "b", "b"]
    assert regime.stratified_auroc(scores, labels, strata) == 1.0
    assert regime.auroc(scores, labels) == 0.75


def test_outcome_correlation_recovers_rho():
    rng = np.random.default_rng(1)
    n, rho = 3000, 0.5
    z = np.sqrt(rho) * rng.standard_normal((n, 1)) + np.sqrt(1 - rho) * rng.standard_normal((n, 3))
    passed = pd.DataFrame((z < [-0.5, 0.0, 0.5]).astype(float))
    est, lo, hi = regime.outcome_correlation(passed, pd.Series("all", index=passed.index))
    assert lo <= rho <= hi and abs(est - rho) < 0.08


# -------------------------------------------------------------------------------------------- the sweeps


def test_crossing_and_the_k_for_a_cost_target():
    assert regime.crossing([0.5, 0.7, 0.9], [-0.2, -0.1, 0.1]) == pytest.approx(0.8)
    assert regime.crossing([0.5, 0.7], [0.1, 0.2]) == 0.5
    assert np.isnan(regime.crossing([0.5, 0.7], [-0.2, -0.1]))
    # (aux + k·exec) / (k·largest) = 0.65 at k = aux / (0.65·largest − exec) = 2 / (6.5 − 5.5) = 2
    assert regime.k_for_cost(2.0, 5.5, 10.0, 0.65) == pytest.approx(2.0)
    assert regime.k_for_cost(2.0, 7.0, 10.0, 0.65) == float("inf")


def _toy_market() -> regime.Market:
    tasks = pd.Index(["t1", "t2"], name="task_id")
    agents = ["s", "l"]
    bids = pd.DataFrame(
        {"task_id": ["t1", "t1", "t2", "t2"], "agent": agents * 2, "tokens": 10, "entropy": 1.0, "gamma_l": 0.0}
    )
    return regime.Market(
        agents=agents,
        prices={"s": 1.0, "l": 4.0},
        bid_cap=128,
        bids=bids,
        passed=pd.DataFrame([[1, 1], [0, 1]], index=tasks, columns=agents, dtype=float),
        exec_cost=pd.DataFrame([[1.0, 4.0], [2.0, 8.0]], index=tasks, columns=agents),
        auction_cost=pd.DataFrame({"bid": [0.5, 0.5], "jury_l": [1.0, 1.0], "refine_all": 0.0}, index=tasks),
        domains=pd.Series("d", index=tasks),
    )


def test_sweep_metrics_by_hand():
    market = _toy_market()
    # two draws at one AUROC: draw 0 picks (s, s), draw 1 picks (s, l); the second fit consults no juror
    winners = pd.DataFrame(
        {"variant": "v", "auroc": 0.9, "draw": [0, 0, 1, 1], "task_id": ["t1", "t2"] * 2, "winner": [0, 0, 0, 1]}
    )
    fits = pd.DataFrame({"variant": "v", "auroc": 0.9, "draw": [0, 1], "w_l": [0.5, 0.0]})
    S = regime.sweep_arrays(winners, fits, market, "v")
    m = regime.sweep_metrics(S, ks=[1.0, 10.0])
    assert m["pass@1"][0] == pytest.approx(0.75)  # (1 + 0 + 1 + 1) / 4
    assert m["Δ"][0] == pytest.approx(-0.25)
    assert m["largest share"][0] == pytest.approx(0.25)
    # aux: draw 0 = 2 × (0.5 + 1), draw 1 = 2 × 0.5 → mean 2; exec: draw 0 = 3, draw 1 = 9 → mean 6; largest 12
    assert m["cost"][0].tolist() == pytest.approx([(2 + 6) / 12, (2 + 60) / 120])
    assert m["auction share"][0, 0] == pytest.approx(2 / 8)
    table, boots = regime.thresholds(S, n_boot=20)
    assert boots.shape == (20, 4) and len(table) == 4


def test_simulate_scales_executions_and_charges_refinement():
    market = _toy_market()
    w = Weights(1.0, 0.0, {"l": 0.0})  # cost only: the cheaper agent always wins, no juror consulted
    per = regime.simulate(market, w, k=10.0)
    assert per["agent"].tolist() == ["s", "s"]
    assert per["cost_usd"].tolist() == pytest.approx([0.5 + 10.0, 0.5 + 20.0])
    w2 = Weights(0.0, 0.0, {"l": 1.0})
    per2 = regime.simulate(
        market, w2, ratings=np.array([[0.0], [5.0], [0.0], [5.0]]), refinement_usd=pd.Series({"d": 0.25})
    )
    assert per2["agent"].tolist() == ["l", "l"]
    assert per2["auction_cost_usd"].tolist() == pytest.approx([0.5 + 1.0 + 0.25] * 2)


# ------------------------------------------------------------------------------------------ the paper's regime


def test_paper_world_matches_the_papers_per_bin_numbers():
    world = regime.PaperWorld()
    p = world.pass_table()
    assert p[-1].tolist() == pytest.approx([0.875, 0.805, 0.735, 0.665, 0.125])
    assert p[-1].mean() == pytest.approx(0.641, abs=0.005)  # the paper's deep-search 63.8
    assert p[0, 0] / p[-1, 0] == pytest.approx(0.895) and p[0, -1] / p[-1, -1] == pytest.approx(0.21)
    assert np.all(np.diff(p, axis=0) > 0) and np.all(np.diff(p, axis=1) < 0)  # larger is better, harder is worse


def _inputs() -> regime.PaperInputs:
    return regime.PaperInputs(
        bin_length=np.ones(5),
        fail_ratio=2.0,
        length_sd=0.3,
        bid_tokens=np.array([40, 80]),
        bid_entropy=np.array([0.5, 1.0]),
        jury_rating=np.array([2.0, 3.0, 4.0]),
        bid_call_tokens=300.0,
        jury_call_tokens=200.0,
    )


def test_paper_market_outcomes_traces_and_auction_share():
    from dataclasses import replace

    inputs = _inputs()
    world = regime.PaperWorld()
    m = world.market(inputs, 4000, np.random.default_rng(0))
    bins = m.bids.drop_duplicates("task_id")["bin"].to_numpy() - 1
    observed = np.array([m.passed.to_numpy()[bins == b].mean(axis=0) for b in range(5)]).T
    assert observed == pytest.approx(world.pass_table(), abs=0.03)
    # the auction is 1% of an auction plus the largest agent's trace, in tokens
    tokens_largest = m.exec_cost[m.largest].mean() / 0.36 * 1e6
    auction = world.auction_tokens(inputs)
    assert auction / (auction + tokens_largest) == pytest.approx(0.01, rel=0.05)
    # ρ → 1: outcomes nested, a smaller agent solves only tasks every larger one solves
    nested = replace(world, rho=1.0).market(inputs, 200, np.random.default_rng(1)).passed.to_numpy()
    assert np.all(np.diff(nested, axis=1) >= 0)


def test_paper_draw_with_a_perfect_jury_beats_the_largest():
    world = regime.PaperWorld(n_train_per_bin=10, n_test_per_bin=60)
    out = regime.paper_draw(world, _inputs(), 1.0, np.random.default_rng(0))
    assert out["realised AUROC"] == 1.0
    assert out["Δ pass@1"] > 0 and out["cost rel. largest"] < 1 and out["largest share"] < 1
    assert out["pass@1"] <= out["oracle pass@1"]


# ------------------------------------------------------------------------- value terms beyond the paper (ours)


def _prior_model(weights):
    from sale.auction.value import ExecutionPrior

    e = np.eye(4, dtype=np.float32)
    return ExecutionPrior(
        agents=["small", "mid", "big"],
        k=1,
        floor=0.9,
        embeddings=e[:2],  # two past tasks: on the first only "small" passed, on the second only "big"
        outcomes=np.array([[1.0, 0.0, 0.0], [0.0, np.nan, 1.0]]),
        item_tasks=["p1", "p2"],
        fallback={"all": {"small": 0.1, "mid": 0.2, "big": 0.3}},
        weights=weights,
    )


def test_execution_prior_uses_the_nearest_past_executions_above_the_floor_else_the_pass_rate():
    from sale.auction.memory import AuctionMemory, AuctionRecord
    from sale.auction.value import memory_executions

    prior = _prior_model(Weights(0.0, 0.0, {"value": 1.0}))
    e = np.eye(4, dtype=np.float32)
    assert prior.estimate("small", e[0], "coding") == 1.0
    assert prior.estimate("big", e[1], "coding") == 1.0
    assert prior.estimate("mid", e[1], "coding") == 0.2  # mid never ran the similar task: its pass rate
    assert prior.estimate("small", e[2], "coding") == 0.1  # nothing similar enough
    # a run's memory adds the executions it made: the winner's outcome on each past task
    memory = AuctionMemory()
    memory.add(AuctionRecord("t9", "", e[2], [Bid("small", "", 10, 1.0), Bid("mid", "", 10, 1.0)], 1, True))
    assert prior.estimate("mid", e[2], "coding", memory_executions(memory)) == 1.0
    assert prior.estimate("small", e[2], "coding", memory_executions(memory)) == 0.1


def test_value_models_survive_their_files(tmp_path):
    from sale.auction import value as value_terms

    w = Weights(0.2, 0.1, {"value": 0.7})
    prior = _prior_model(w)
    cal = value_terms.CalibratedJury(
        ["small", "big"], ["small", "big"], ["coding"], 128, [0.5, 0.1, 0.2, 0.3, -1.0, 1.0, 0.0], -1.0, w
    )
    for model in (prior, cal):
        path = tmp_path / f"{model.kind}.json"
        value_terms.save(model, path)
        back = value_terms.load(str(path))
        assert back.kind == model.kind and back.weights.vector().tolist() == w.vector().tolist()
    e = np.eye(4, dtype=np.float32)
    assert value_terms.load(str(tmp_path / "prior.json")).estimate("mid", e[1], "x") == 0.2
    bid = Bid("big", "", 64, 1.0, jury={"small": 4.0, "big": 2.0})
    x = cal.features({"small": 4.0, "big": 2.0}, 1.0, 64, "big", "coding")
    assert cal.probability(bid, "coding") == pytest.approx(1 / (1 + np.exp(-(x @ np.array(cal.coef) - 1.0))))


def _scripted_auction(cfg, embedding):
    """run_auction on a scripted pool (small, mid, big): each agent writes "<name> plan", every juror rates 3."""
    import random

    from sale.auction.memory import AuctionMemory
    from sale.auction.sale import run_auction
    from sale.harness.ledger import Ledger
    from sale.llm import AgentSpec, Pool
    from sale.llm.base import Generation, OptionScores
    from sale.tasks.base import Task

    class Scripted:
        def __init__(self, name):
            self.name = name

        def generate(self, messages, max_tokens=256, stop=None, **kwargs):
            return Generation(f"{self.name} plan", 50, 2, [1.0, 1.0], 0.01)

        def score_options(self, messages, options):
            return OptionScores(list(options), [1.0 if o == "3" else 0.0 for o in options], 60, 0.01)

    prices = {"small": 0.01, "mid": 0.05, "big": 0.4}
    pool = Pool("scripted", [AgentSpec(n, "llamacpp", p / 0.0112, p) for n, p in prices.items()])
    pool._loaded.update({n: Scripted(n) for n in prices})
    task = Task("t/1", "coding", "Write add(a, b).", {}, 3.0, 1, "test")
    ledger = Ledger(pool)
    weights = Weights.default(pool.names)
    result = run_auction(ledger, pool, task, embedding, AuctionMemory(), weights, cfg, random.Random(0))
    return result, [c for c in ledger.calls if c["phase"] == "jury"]


def test_the_auction_option_values_bids_by_the_prior_and_consults_no_juror(tmp_path):
    from omegaconf import OmegaConf

    from sale.auction import value as value_terms
    from sale.config import compose

    # the prior says only "big" solves tasks like this one; the fitted weights value that above cost
    prior = _prior_model(Weights(0.1, 0.0, {"value": 0.9}))
    value_terms.save(prior, tmp_path / "value-prior.json")
    cfg = compose().auction
    OmegaConf.update(cfg, "value", str(tmp_path / "value-prior.json"))
    e = np.zeros(4, dtype=np.float32)
    e[1] = 1.0
    result, jury_calls = _scripted_auction(cfg, e)
    assert not jury_calls  # the prior needs no juror
    assert result.winning_bid.agent == "big"
    assert [b.jury["value"] for b in result.bids[:3]] == [0.0, 1.0, 5.0]  # 5·P: small 0, mid its rate 0.2, big 1
    assert compose().auction.value is None  # off by default: committed runs resume


def test_the_auction_option_values_bids_by_the_calibrated_jury(tmp_path):
    from omegaconf import OmegaConf

    from sale.auction import value as value_terms
    from sale.config import compose

    # P rises with the bidder's size only (one-hot coefficients), so "big" wins despite its price
    agents = ["small", "mid", "big"]
    cal = value_terms.CalibratedJury(
        agents, agents, ["coding"], 128, [0, 0, 0, 0, 0, -3.0, 0.0, 3.0, 0.0], 0.0, Weights(0.1, 0.0, {"value": 0.9})
    )
    value_terms.save(cal, tmp_path / "value-calibrated.json")
    cfg = compose().auction
    OmegaConf.update(cfg, "value", str(tmp_path / "value-calibrated.json"))
    result, jury_calls = _scripted_auction(cfg, np.ones(4, dtype=np.float32) / 2)
    assert {c["agent"] for c in jury_calls} == set(agents)  # it reads every juror's rating
    assert result.winning_bid.agent == "big"
    p = [b.jury["value"] / 5 for b in result.bids[:3]]
    assert p == pytest.approx([1 / (1 + np.exp(3)), 0.5, 1 / (1 + np.exp(-3))])


# ------------------------------------------------------------------------------------------------ the notebook


@needs_runs
@pytest.mark.slow
def test_notebook_07_runs_from_the_committed_inputs(tmp_path):
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell

    if not (REPO_ROOT / "data/regime/cpu_winners.parquet").exists():
        pytest.skip("no committed sweeps in data/regime (python -m sale.analysis.regime)")
    nb = nbformat.read(REPO_ROOT / "notebooks/07_regime_map.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(at + 1, new_code_cell(f"FIGURES = {str(tmp_path)!r}\nN_BOOT = 100"))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "picks the logged provisional winner in 100% of 500 auctions" in text
    for name in ("07_regime_map.png", "07_paper_regime.png", "07_value_terms.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    table = pd.read_csv(tmp_path / "07_thresholds_cpu.csv")
    assert {"fixed", "refit λ=0.5"} <= set(table["variant"])
