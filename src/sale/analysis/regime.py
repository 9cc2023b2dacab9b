"""Notebook 07's regime map: where does an auction pay? A replay simulator that runs the auction's own scoring on
per-task inputs, logged or synthetic, and the sweeps over the jury's quality, the execution length and the cost
weight built on it, on the cpu pool and on a synthetic pool calibrated to the paper (docs/regime.md).

The simulator (one replay):

    V_i = w_h·H(s_i) + Σ_j w_j·γ_j(s_i)          (sale.auction.bids.score_bid, Weights.jury_value)
    C_i = w_c · π_i/π_max · |s_i|/B              (sale.auction.weights.cost_feature)
    winner = argmin_i (C_i − V_i), ties to the cheaper agent   (sale.auction.sale.argmin_score)
    cost_t = bids_t + Σ_{j consulted} jury_{t,j} + k · exec_{t,winner}

on the initial bids (no refinement), the winner's outcome being its outcome alone. `Market` holds the inputs; the
value source is the bids' logged ratings, a perfect jury (5 × whether the bidder solves alone) or synthetic ratings
of a chosen AUROC (`synthetic_ratings`).

The synthetic jury (binormal): a bid's latent quality is z = d·y + ε, y = whether its bidder solves the task alone,
ε ~ N(0, 1) shared by every juror, d = √2·Φ⁻¹(AUROC), so that a random solver's z exceeds a random non-solver's with
probability AUROC. Within each stratum (domain) each juror's ratings are its real ratings reassigned in the order
of z: its marginal distribution is the measured one, and only which plan gets which rating changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from sale import REPO_ROOT
from sale.auction.bids import Bid, impute_own_ratings, score_bid
from sale.auction.sale import argmin_score
from sale.auction.weights import Weights, cost_feature, fit_weights

REGIME_DIR = REPO_ROOT / "data" / "regime"


# ----------------------------------------------------------------------------------------------------- the inputs


@dataclass
class Market:
    """What one replay needs, per task: every agent's initial bid (tokens, entropy, gamma_<juror>), its outcome and
    execution $ alone, and the auction's measured $ (bid, jury_<juror>, refine_all). Agents cheapest first."""

    agents: list[str]
    prices: dict[str, float]  # $/Mtok
    bid_cap: int
    bids: pd.DataFrame  # one row per (task_id, agent): tokens, entropy, gamma_<juror> [, domain]
    passed: pd.DataFrame  # [task × agent] 0/1
    exec_cost: pd.DataFrame  # [task × agent] $
    auction_cost: pd.DataFrame  # [task × (bid, jury_<juror>, refine_all)] $
    domains: pd.Series  # task_id -> domain (the stratum of the synthetic jury)
    jurors: list[str] = field(default_factory=list)  # whose gamma_<juror> the bids hold

    def __post_init__(self):
        if not self.jurors:
            self.jurors = [a for a in self.agents if f"gamma_{a}" in self.bids]
        tasks = self.passed.index
        self.bids = self.bids[self.bids["task_id"].isin(tasks)].reset_index(drop=True)
        if "domain" not in self.bids:
            self.bids["domain"] = self.bids["task_id"].map(self.domains)

    @property
    def largest(self) -> str:
        return self.agents[-1]

    @property
    def solves(self) -> np.ndarray:
        """Per bid row: whether its bidder solves the task alone."""
        return self.passed.to_numpy()[
            self.passed.index.get_indexer(self.bids["task_id"]), [self.agents.index(a) for a in self.bids["agent"]]
        ]

    def scaled(self, k: float) -> Market:
        """The same market with every execution `k` times as long (the auction unchanged)."""
        return replace(self, exec_cost=self.exec_cost * k)


def cpu_market(pool: str = "cpu", runs_dir: str | Path | None = None) -> tuple[Market, Weights]:
    """The test split as notebook 06 reads it: main-sale-<pool>'s initial bids and auction calls, each agent's
    outcome and execution alone from main-single-<pool> (else scaling-<pool>-test), and the weights SALE ran with."""
    import yaml

    from sale.analysis import counterfactuals, reading

    runs = Path(runs_dir) if runs_dir else REPO_ROOT / "data" / "runs"
    agents = reading.pool_agents(pool)
    sale = reading.load_run(runs, f"main-sale-{pool}", verbose=False)
    single = reading.load_run(runs, f"main-single-{pool}", verbose=False) or reading.load_run(
        runs, f"scaling-{pool}-test", verbose=False
    )
    if sale is None or single is None:
        raise FileNotFoundError(f"the regime map needs main-sale-{pool} and the single agents alone under {runs}")
    passed, exec_cost = counterfactuals.outcome_matrix(single["results"], agents)
    domains = single["results"].drop_duplicates("task_id").set_index("task_id")["domain"]
    cfg = yaml.safe_load((runs / f"main-sale-{pool}" / "config.yaml").read_text())
    path = cfg.get("auction", {}).get("weights", {}).get("path")
    weights = Weights.load(reading.run_input_path(cfg, path, runs)) if path else Weights.default(agents)
    market = Market(
        agents=agents,
        prices=counterfactuals.pool_prices(pool),
        bid_cap=int(cfg.get("auction", {}).get("bid_max_tokens", 128)),
        bids=counterfactuals.initial_bids(sale["bids"]),
        passed=passed,
        exec_cost=exec_cost,
        auction_cost=counterfactuals.auction_call_costs(sale["calls"]),
        domains=domains,
    )
    return market, weights


def train_market(pool: str = "cpu", weights_dir: str | Path | None = None, bid_cap: int = 128) -> Market:
    """The train split from the weight fit's features (data/weights/<pool>/features.parquet): every bid of every
    train task rated by every juror, each agent's outcome and execution $ alone, each juror's $ rating a task's
    bids. The fit records no bid $ (0 here): the train market is for fitting, not for costing a replay."""
    from sale.analysis import counterfactuals, reading

    f = pd.read_parquet(Path(weights_dir or REPO_ROOT / "data" / "weights" / pool) / "features.parquet")
    agents = reading.pool_agents(pool)
    passed = f.pivot(index="task_id", columns="agent", values="passed")[agents].astype(float)
    exec_cost = f.pivot(index="task_id", columns="agent", values="exec_cost_usd")[agents]
    jury_usd = f.groupby("task_id")[[c for c in f if c.startswith("jury_usd_")]].sum()
    auction_cost = jury_usd.rename(columns=lambda c: "jury_" + c.removeprefix("jury_usd_"))
    auction_cost.insert(0, "bid", 0.0)
    auction_cost["refine_all"] = 0.0
    return Market(
        agents=agents,
        prices=counterfactuals.pool_prices(pool),
        bid_cap=bid_cap,
        bids=f.rename(columns={"bid_tokens": "tokens"}).drop(columns=["cost"]),
        passed=passed,
        exec_cost=exec_cost,
        auction_cost=auction_cost,
        domains=f.drop_duplicates("task_id").set_index("task_id")["domain"],
    )


# ------------------------------------------------------------------------------------------------- the simulator


def consulted(weights: Weights, jurors: list[str]) -> list[str]:
    """The jurors an auction consults: those with weight > 0 (Weights.idle_jurors are never called)."""
    return [j for j in jurors if weights.w_jury.get(j, 0) > 0]


def build_auctions(bids: pd.DataFrame, jurors: list[str], drop_own: bool = False) -> dict[str, list[Bid]]:
    """Each task's initial bids as the auction's Bid objects, in the frame's order, rated by `jurors` (their
    gamma_<juror>; a missing rating is left out, as a juror not consulted). drop_own: the bidder's own rating left
    out (no self-evaluation)."""
    cols = [f"gamma_{j}" for j in jurors]
    auctions: dict[str, list[Bid]] = {}
    for row in bids[["task_id", "agent", "tokens", "entropy", *[c for c in cols if c in bids]]].to_dict("records"):
        ratings = {j: row[c] for j, c in zip(jurors, cols) if c in row and pd.notna(row[c])}
        if drop_own:
            ratings.pop(row["agent"], None)
        bid = Bid(agent=row["agent"], plan="", tokens=row["tokens"], entropy=row["entropy"], jury=ratings)
        auctions.setdefault(row["task_id"], []).append(bid)
    return auctions


def allocate(
    auctions: dict[str, list[Bid]],
    weights: Weights,
    prices: dict[str, float],
    bid_cap: int,
    self_evaluation: bool = True,
    use_entropy: bool = True,
    adjust: Callable[[list[Bid]], None] | None = None,
    jurors: list[str] | None = None,
) -> pd.Series:
    """The winner of each auction, as sale.auction.sale.run_auction picks its provisional winner: without
    self-evaluation each bidder's own rating is imputed (impute_own_ratings over the consulted jurors), every bid
    is scored by score_bid (C − V with the weights' jury rescaling) and argmin_score picks the lowest score, ties to
    the cheaper agent. `adjust` may rescore an auction's bids in place before the pick (notebook 06's readings of a
    missing self-rating that are not the auction's rule). jurors: those whose missing own rating is imputed
    (default: every juror the weights consult)."""
    rank = {a: i for i, a in enumerate(prices)}
    max_price = max(prices.values())
    jurors = consulted(weights, list(weights.w_jury)) if jurors is None else jurors
    winners = {}
    for task, bids in auctions.items():
        if not self_evaluation:
            impute_own_ratings(bids, bids, jurors)
        for bid in bids:
            score_bid(bid, weights, prices[bid.agent], max_price, bid_cap, use_entropy=use_entropy)
        if adjust is not None:
            adjust(bids)
        winners[task] = bids[argmin_score(bids, list(range(len(bids))), rank)].agent
    return pd.Series(winners, name="agent").sort_index()


def with_ratings(bids: pd.DataFrame, ratings: np.ndarray, jurors: list[str]) -> pd.DataFrame:
    """The bids with gamma_<juror> replaced by the columns of `ratings` [bid row × juror]."""
    return bids.assign(**{f"gamma_{j}": ratings[:, i] for i, j in enumerate(jurors)})


def perfect_ratings(market: Market, jurors: list[str]) -> np.ndarray:
    """A perfect jury: every juror rates a plan 5 × whether its bidder solves the task alone."""
    return np.repeat(5.0 * market.solves[:, None], len(jurors), axis=1)


def simulate(
    market: Market,
    weights: Weights,
    ratings: np.ndarray | str = "logged",
    k: float = 1.0,
    self_evaluation: bool = True,
    refinement_usd: pd.Series | None = None,
    charge: list[str] | None = None,
) -> pd.DataFrame:
    """One replay of every task's auction (module docstring). ratings: "logged" (the bids' gamma_<juror>),
    "perfect", or an array [bid row × market.jurors] (e.g. synthetic_ratings). The consulted jurors' logged $
    are charged whatever the ratings. k: every execution k times as long. refinement_usd (per domain, optional):
    charged to every auction whose winner is not the cheapest agent, as the cheaper agents would refine there.
    charge: the jurors whose logged $ are charged (default: those the weights consult).
    Per task: agent, domain, passed, exec_cost_usd, bid_usd, jury_usd, auction_cost_usd, cost_usd, largest."""
    from sale.analysis.counterfactuals import replay_outcomes

    jurors = consulted(weights, market.jurors)
    bids = market.bids
    if isinstance(ratings, str) and ratings == "perfect":
        bids = with_ratings(bids, perfect_ratings(market, jurors), jurors)
    elif not isinstance(ratings, str):
        bids = with_ratings(bids, np.asarray(ratings, dtype=float), market.jurors)
    elif ratings != "logged":
        raise ValueError(f"ratings={ratings!r}: 'logged', 'perfect' or an array")
    winners = allocate(
        build_auctions(bids, jurors, drop_own=not self_evaluation),
        weights,
        market.prices,
        market.bid_cap,
        self_evaluation=self_evaluation,
    )
    m = market.scaled(k) if k != 1 else market
    per = replay_outcomes(
        winners, m.passed, m.exec_cost, m.auction_cost, jurors if charge is None else charge, m.domains
    )
    if refinement_usd is not None:
        refine = per["domain"].map(refinement_usd).fillna(0.0) * (per["agent"] != market.agents[0])
        per["auction_cost_usd"] += refine
        per["cost_usd"] += refine
    per["largest"] = (per["agent"] == market.largest).astype(float)
    return per


def largest_alone(market: Market, k: float = 1.0) -> pd.DataFrame:
    """The largest agent alone on the market's tasks: passed and cost_usd per task."""
    return pd.DataFrame({"passed": market.passed[market.largest], "cost_usd": k * market.exec_cost[market.largest]})


def summarize(per: pd.DataFrame, market: Market, k: float = 1.0, n_boot: int = 2000, seed: int = 0) -> dict:
    """A replay against the largest agent alone: notebook 06's counterfactual row (pass@1, Δ with its paired
    bootstrap CI, cost relative to the largest, the largest's share, the auction's share of $) plus bootstrap 95%
    CIs over tasks for the cost ratio and the largest's share, and the reliance reduction (1 − share)."""
    from sale.analysis.counterfactuals import counterfactual_row

    ref = largest_alone(market, k)
    row = counterfactual_row("replay", per, ref, market.largest, n_boot=n_boot, seed=seed)
    tasks = per.index.intersection(ref.index)
    idx = np.random.default_rng(seed).integers(0, len(tasks), size=(n_boot, len(tasks)))
    cost, ref_cost = per.loc[tasks, "cost_usd"].to_numpy(), ref.loc[tasks, "cost_usd"].to_numpy()
    ratio = cost[idx].sum(axis=1) / ref_cost[idx].sum(axis=1)
    share = per.loc[tasks, "largest"].to_numpy()[idx].mean(axis=1)
    row["cost lo"], row["cost hi"] = np.quantile(ratio, [0.025, 0.975])
    row["share lo"], row["share hi"] = np.quantile(share, [0.025, 0.975])
    row["reliance reduction"] = 1 - row["largest share"]
    return row


# ------------------------------------------------------------------------------------------- the synthetic jury


def separation(auroc: float) -> float:
    """d of the binormal model: AUROC = Φ(d/√2), so d = √2·Φ⁻¹(AUROC) (inf at AUROC 1)."""
    from scipy.stats import norm

    if not 0.5 <= auroc <= 1:
        raise ValueError(f"auroc must lie in [0.5, 1], got {auroc}")
    return float("inf") if auroc >= 1 else float(np.sqrt(2) * norm.ppf(auroc))


def latent_quality(solves, auroc: float, rng: np.random.Generator) -> np.ndarray:
    """z = d·y + ε per bid (ε ~ N(0, 1)); at AUROC 1 every solver's z exceeds every non-solver's."""
    y = np.asarray(solves, dtype=float)
    eps = rng.standard_normal(len(y))
    d = separation(auroc)
    return y * 1e3 + eps if np.isinf(d) else d * y + eps


def synthetic_ratings(solves, strata, marginals: np.ndarray, auroc: float, rng: np.random.Generator) -> np.ndarray:
    """Ratings [bid × juror] of the target AUROC for "the bidder solves the task alone": within each stratum, juror
    j's ratings are `marginals[:, j]` of that stratum's bids (its real ratings there; NaN stays with no rating)
    sorted and handed out in the order of one latent z = d·y + ε shared by every juror (latent_quality). Each
    juror keeps its marginal distribution; all jurors order the plans alike, so the weighted jury has the same
    AUROC as each juror."""
    marginals = np.asarray(marginals, dtype=float)
    z = latent_quality(solves, auroc, rng)
    out = np.full_like(marginals, np.nan)
    strata = np.asarray(strata)
    for s in pd.unique(strata):
        idx = np.flatnonzero(strata == s)
        order = idx[np.argsort(z[idx], kind="stable")]  # lowest latent quality first
        for j in range(marginals.shape[1]):
            values = np.sort(marginals[idx, j])  # NaN last
            rated = np.isfinite(values)
            out[order[-rated.sum() :] if rated.sum() else [], j] = values[rated]
    return out


def auroc(scores, labels) -> float:
    """AUROC by the Mann-Whitney rank sum (ties count one half); NaN with one class only."""
    from sale.analysis.counterfactuals import _auroc

    return _auroc(scores, labels)


def stratified_auroc(scores, labels, strata) -> float:
    """AUROC over (solver, non-solver) pairs of the same stratum only: the per-stratum AUROCs weighted by their
    number of pairs. Comparisons across domains, which the auction never makes, are left out."""
    scores, labels, strata = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool), np.asarray(strata)
    num = den = 0.0
    for s in pd.unique(strata):
        m = (strata == s) & np.isfinite(scores)
        pairs = labels[m].sum() * (~labels[m]).sum()
        if pairs:
            num += pairs * auroc(scores[m], labels[m])
            den += pairs
    return num / den if den else float("nan")


def jury_term(market: Market, weights: Weights, ratings: np.ndarray | None = None) -> np.ndarray:
    """Per bid row: the jury term of its value (Weights.jury_value over the consulted jurors' ratings) with the
    logged ratings or `ratings` [bid × market.jurors]."""
    r = market.bids[[f"gamma_{j}" for j in market.jurors]].to_numpy(float) if ratings is None else ratings
    jurors = consulted(weights, market.jurors)
    cols = [market.jurors.index(j) for j in jurors]
    out = [weights.jury_value({j: v for j, v in zip(jurors, row[cols]) if np.isfinite(v)}) for row in r]
    return np.array([np.nan if v is None else v for v in out])


def logged_ratings(market: Market) -> np.ndarray:
    """The bids' logged ratings [bid × market.jurors]."""
    return market.bids[[f"gamma_{j}" for j in market.jurors]].to_numpy(dtype=float)


def market_synthetic(market: Market, auroc_: float, rng: np.random.Generator) -> np.ndarray:
    """Synthetic ratings for a market: each juror's logged ratings reassigned per domain at the target AUROC."""
    return synthetic_ratings(market.solves, market.bids["domain"], logged_ratings(market), auroc_, rng)


# ------------------------------------------------------------------------------------------ fitting the weights


def fit_arrays(market: Market, ratings: np.ndarray | None = None):
    """The weight fit's [task, agent(, juror)] arrays of a market (tasks sorted, agents cheapest first): cost
    feature, entropy, jury, passed, execution $."""
    tasks = market.passed.index.sort_values()
    ti = tasks.get_indexer(market.bids["task_id"])
    ai = np.array([market.agents.index(a) for a in market.bids["agent"]])
    shape = (len(tasks), len(market.agents))
    grid = np.full(shape, np.nan)

    def place(values):
        g = grid.copy()
        g[ti, ai] = values
        return g

    prices = np.array([market.prices[a] for a in market.bids["agent"]])
    cost = place(cost_feature(prices, max(market.prices.values()), market.bids["tokens"].to_numpy(), market.bid_cap))
    r = logged_ratings(market) if ratings is None else ratings
    jury = np.stack([place(r[:, j]) for j in range(r.shape[1])], axis=2)
    passed = market.passed.loc[tasks, market.agents].to_numpy(float)
    exec_cost = market.exec_cost.loc[tasks, market.agents].to_numpy(float)
    return cost, place(market.bids["entropy"].to_numpy(float)), jury, passed, exec_cost


def fit_market(
    market: Market, ratings: np.ndarray | None = None, lam: float = 0.5, objective: str = "minmax-solvable"
) -> Weights:
    """Weights fitted on a (train) market by the MILP of docs/method.md §4 (sale.auction.weights.fit_weights): objective
    minmax | minmax-solvable | mean, as auction.weights.objective names them; λ the cost weight of the loss."""
    worst = "solvable" if objective == "minmax-solvable" else "all"
    obj = "mean" if objective == "mean" else "minmax"
    cost, entropy, jury, passed, exec_cost = fit_arrays(market, ratings)
    fit = fit_weights(cost, entropy, jury, passed, exec_cost, market.jurors, lam=lam, objective=obj, worst_case=worst)
    return fit.weights


# ------------------------------------------------------------------------------------------------ the cpu sweep

AUROCS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0)
LAMS = (0.25, 0.5, 1.0, 2.0)  # λ, the cost weight of the fit's loss (auction.weights.lam; 0.5 the default)
COST_WEIGHTS = (0.05, 0.1, 0.2, 0.4)  # w_c, the cost weight of the bid score, set on the weights SALE ran with


def with_cost_weight(weights: Weights, w_cost: float) -> Weights:
    """`weights` with the bid score's cost weight set to w_cost and the other weights rescaled to sum to 1 − w_cost
    (the fitted vector sums to 1): the same value term, with cost counting for more or less against it."""
    rest = weights.w_entropy + sum(weights.w_jury.values())
    f = (1 - w_cost) / rest
    return Weights(w_cost, weights.w_entropy * f, {j: w * f for j, w in weights.w_jury.items()}, {"source": "sweep"})


KS = np.logspace(0, 3, 61)  # execution length multipliers, 1 → 1000


def cpu_sweep(
    test: Market,
    train: Market,
    run_weights: Weights,
    aurocs=AUROCS,
    lams=LAMS,
    cost_weights=COST_WEIGHTS,
    draws: int = 30,
    objective: str = "minmax-solvable",
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The regime sweep on a pool's test split. For each target AUROC and draw: synthetic ratings on the train
    bids and on the test bids (market_synthetic, independent draws), weights refitted on train for each λ in
    `lams` (fit_market), and the test auctions replayed with each fit, with `run_weights` (the weights the run
    used, variant "fixed": only the jury changes) and with run_weights given each cost weight w_c in
    `cost_weights` (with_cost_weight). Nothing is fitted on test.

    Returns (winners, fits): winners, one row per (variant, auroc, draw, task_id) with the winning agent's index;
    fits, one row per (variant, auroc, draw) with the weights, the jurors consulted, and the realised AUROC of the
    jury term on test and on train (within domain)."""
    variants: list[tuple[str, Weights | float]] = [
        ("fixed", run_weights),
        *[(f"fixed, w_c={c:g}", with_cost_weight(run_weights, c)) for c in cost_weights],
        *[(f"refit λ={lam:g}", lam) for lam in lams],
    ]
    tasks = test.passed.index
    win_rows, fit_rows = [], []
    for ia, a in enumerate(aurocs):
        for d in range(draws):
            rng = np.random.default_rng([seed, ia, d])
            r_train, r_test = market_synthetic(train, a, rng), market_synthetic(test, a, rng)
            for name, how in variants:
                w = how if isinstance(how, Weights) else fit_market(train, r_train, how, objective)
                per = simulate(test, w, r_test)
                won = per["agent"].reindex(tasks).map(test.agents.index).to_numpy()
                win_rows.append(pd.DataFrame({"variant": name, "auroc": a, "draw": d, "task_id": tasks, "winner": won}))
                fit_rows.append(
                    {
                        "variant": name,
                        "auroc": a,
                        "draw": d,
                        "w_cost": w.w_cost,
                        "w_entropy": w.w_entropy,
                        **{f"w_{j}": w.w_jury.get(j, 0.0) for j in test.jurors},
                        "auroc test": stratified_auroc(jury_term(test, w, r_test), test.solves, test.bids["domain"]),
                        "auroc train": stratified_auroc(
                            jury_term(train, w, r_train), train.solves, train.bids["domain"]
                        ),
                    }
                )
    winners = pd.concat(win_rows, ignore_index=True).astype({"winner": "int8"})
    return winners, pd.DataFrame(fit_rows)


@dataclass
class SweepArrays:
    """A sweep's winners as arrays for fast metrics: W [auroc, draw, task] agent index, `aux` [auroc, draw, task]
    the auction's $ (bids + consulted jurors), with the market's passed P and exec $ E [task, agent]."""

    aurocs: np.ndarray
    W: np.ndarray
    aux: np.ndarray
    P: np.ndarray
    E: np.ndarray

    @property
    def largest_pass(self) -> np.ndarray:
        return self.P[:, -1]


def sweep_arrays(winners: pd.DataFrame, fits: pd.DataFrame, market: Market, variant: str) -> SweepArrays:
    """One variant of a sweep as SweepArrays; the auction's $ per task charges the jurors each fit consults."""
    w = winners[winners["variant"] == variant]
    f = fits[fits["variant"] == variant].set_index(["auroc", "draw"])
    tasks = market.passed.index
    aurocs = np.sort(w["auroc"].unique())
    draws = np.sort(w["draw"].unique())
    W = (
        w.set_index(["auroc", "draw", "task_id"])["winner"]
        .reindex(pd.MultiIndex.from_product([aurocs, draws, tasks]))
        .to_numpy()
        .reshape(len(aurocs), len(draws), len(tasks))
    )
    ac = market.auction_cost.reindex(tasks)
    jury = np.stack([ac.get(f"jury_{j}", pd.Series(0.0, index=tasks)).to_numpy() for j in market.jurors], axis=1)
    used = np.stack([(f[f"w_{j}"] > 0).to_numpy() for j in market.jurors], axis=-1).reshape(
        len(aurocs), len(draws), len(market.jurors)
    )
    aux = ac["bid"].to_numpy()[None, None, :] + np.einsum("adj,tj->adt", used.astype(float), jury)
    return SweepArrays(aurocs, W.astype(int), aux, market.passed.to_numpy(float), market.exec_cost.to_numpy(float))


def _gather(S: SweepArrays, tasks, draws):
    """pass and exec $ of the winners on the given task and draw indices: [auroc, draw, task]."""
    W = S.W[:, draws][:, :, tasks]
    t = np.broadcast_to(tasks, W.shape)
    return S.P[t, W], S.E[t, W], S.aux[:, draws][:, :, tasks], S.P[tasks, -1], S.E[tasks, -1]


def sweep_metrics(S: SweepArrays, ks=KS, tasks=None, draws=None) -> dict[str, np.ndarray]:
    """Means over draws per target AUROC: pass@1, Δ vs the largest alone, the largest's share (reliance),
    and per (auroc, k) the cost relative to the largest alone and the auction's share of $ (executions k× longer)."""
    tasks = np.arange(S.W.shape[2]) if tasks is None else tasks
    draws = np.arange(S.W.shape[1]) if draws is None else draws
    p, e, aux, lp, le = _gather(S, tasks, draws)
    ks = np.asarray(ks, dtype=float)
    aux_sum, exec_sum = aux.sum(axis=2).mean(axis=1), e.sum(axis=2).mean(axis=1)  # [auroc]
    share = (S.W[:, draws][:, :, tasks] == S.P.shape[1] - 1).mean(axis=(1, 2))
    return {
        "pass@1": p.mean(axis=(1, 2)),
        "Δ": p.mean(axis=(1, 2)) - lp.mean(),
        "largest share": share,
        "cost": (aux_sum[:, None] + ks[None, :] * exec_sum[:, None]) / (ks[None, :] * le.sum()),
        "auction share": aux_sum[:, None] / (aux_sum[:, None] + ks[None, :] * exec_sum[:, None]),
        "aux": aux_sum,
        "exec": exec_sum,
        "largest exec": np.full(len(S.aurocs), le.sum()),
    }


def crossing(x, y, level: float = 0.0) -> float:
    """The smallest x at which the piecewise-linear curve y(x) reaches `level` (NaN if it never does)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if y[0] >= level:
        return float(x[0])
    for i in range(1, len(x)):
        if y[i] >= level:
            return float(x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))
    return float("nan")


def k_for_cost(aux: float, exec_: float, largest_exec: float, target: float = 0.65) -> float:
    """The smallest execution multiplier k at which (aux + k·exec) / (k·largest) ≤ target (inf if never)."""
    room = target * largest_exec - exec_
    return aux / room if room > 0 else float("inf")


def thresholds(
    S: SweepArrays, target_cost: float = 0.65, n_boot: int = 1000, seed: int = 0, ks=KS
) -> tuple[pd.DataFrame, np.ndarray]:
    """What the jury must achieve on this market, with bootstrap 95% CIs (tasks and draws resampled together):

    - AUROC to match: the smallest AUROC at which SALE's mean pass@1 reaches the largest agent's alone;
    - AUROC to beat by 1 point;
    - k at AUROC 1 for cost ≤ target: how many times longer executions must be for SALE's cost to fall to
      `target` × the largest's with a perfect jury, and the same at the matching AUROC.

    Returns the table and the bootstrap draws [n_boot × 4]."""
    rng = np.random.default_rng(seed)
    n_t, n_d = S.W.shape[2], S.W.shape[1]

    def stats(tasks, draws):
        m = sweep_metrics(S, ks=[1.0], tasks=tasks, draws=draws)
        a_match = crossing(S.aurocs, m["Δ"])
        a_beat = crossing(S.aurocs, m["Δ"], 0.01)
        k_perfect = k_for_cost(m["aux"][-1], m["exec"][-1], m["largest exec"][-1], target_cost)
        if np.isfinite(a_match):
            at = lambda key: np.interp(a_match, S.aurocs, m[key])  # noqa: E731
            k_match = k_for_cost(at("aux"), at("exec"), at("largest exec"), target_cost)
        else:
            k_match = float("nan")
        return [a_match, a_beat, k_perfect, k_match]

    point = stats(np.arange(n_t), np.arange(n_d))
    boots = np.array([stats(rng.integers(0, n_t, n_t), rng.integers(0, n_d, n_d)) for _ in range(n_boot)])
    names = [
        "AUROC at which SALE matches the largest's pass@1",
        "AUROC at which SALE beats it by 1 point",
        f"k for cost ≤ {target_cost:g}× the largest's, perfect jury",
        f"k for cost ≤ {target_cost:g}× the largest's, at the matching AUROC",
    ]
    rows = []
    for i, name in enumerate(names):
        b = boots[:, i]
        finite = np.isfinite(b)
        lo, hi = _quantiles_inf(b)
        rows.append(
            {
                "threshold": name,
                "value": point[i],
                "lo": lo,
                "hi": hi,
                "share of resamples where reached": finite.mean(),
            }
        )
    return pd.DataFrame(rows), boots


def _quantiles_inf(values, qs=(0.025, 0.975)) -> list[float]:
    """Quantiles of bootstrap values where NaN means "never reached" (counted as +inf), without interpolating
    across an infinite value."""
    v = np.where(np.isfinite(values), values, np.inf)
    return [float(np.quantile(v, q, method="lower" if q < 0.5 else "higher")) for q in qs]


# ------------------------------------------------------------------------------- how outcomes correlate on a task


def outcome_correlation(passed: pd.DataFrame, cells: pd.Series, n_grid: int = 100) -> tuple[float, float, float]:
    """ρ of the one-factor probit model y_{t,a} = 1[√ρ·u_t + √(1−ρ)·e_{t,a} < c_{a,cell(t)}] (the tetrachoric
    correlation of two agents' outcomes on one task, within a cell such as domain × bin): the maximum-likelihood ρ
    with the thresholds c set from each cell's pass rates, and its profile-likelihood 95% interval."""
    from scipy.stats import norm

    y = passed.to_numpy(dtype=float)
    cells = cells.reindex(passed.index).to_numpy()
    c = np.zeros_like(y)
    for s in pd.unique(cells):
        m = cells == s
        c[m] = norm.ppf(np.clip(y[m].mean(axis=0), 0.5 / m.sum(), 1 - 0.5 / m.sum()))
    x, wq = np.polynomial.hermite_e.hermegauss(60)
    wq = wq / wq.sum()

    def nll(r):
        pr = norm.cdf((c[:, :, None] - np.sqrt(r) * x[None, None, :]) / np.sqrt(1 - r))
        return -np.log(np.where(y[:, :, None] > 0, pr, 1 - pr).prod(axis=1) @ wq).sum()

    grid = np.linspace(0, 0.99, n_grid)
    ll = np.array([nll(r) for r in grid])
    ok = grid[ll <= ll.min() + 1.92]  # χ²₁(0.95)/2
    return float(grid[ll.argmin()]), float(ok.min()), float(ok.max())


# ---------------------------------------------------------------------------------------- the paper's regime


@dataclass
class PaperInputs:
    """What the paper's regime borrows from this repository's measurements on the cpu pool's TRAIN split (deep
    search): trace lengths by complexity bin relative to their mean, a failing trace's length over a passing one's,
    the spread of log length, a sample of bids (tokens, entropy) and of the jury's mean rating of a plan, and the
    tokens of one bid call and one rating call."""

    bin_length: np.ndarray  # 5 bins, mean 1
    fail_ratio: float
    length_sd: float
    bid_tokens: np.ndarray
    bid_entropy: np.ndarray
    jury_rating: np.ndarray
    bid_call_tokens: float
    jury_call_tokens: float

    @classmethod
    def measure(cls, pool: str = "cpu", domain: str = "search") -> PaperInputs:
        """From scaling-<pool>-train (trace lengths) and data/weights/<pool>/features.parquet (bids, ratings, the
        jury's $ per rating, hence its tokens); the bid call's prompt from main-sale-<pool>'s bid calls (a prompt
        length, no outcome)."""
        from sale.analysis import counterfactuals

        runs = REPO_ROOT / "data" / "runs"
        res = pd.read_parquet(runs / f"scaling-{pool}-train" / "results.parquet")
        res = res[(res["domain"] == domain) & (res["order"] == res["order"].min())]
        by_bin = res.groupby("bin")["exec_tokens"].mean()
        passed = res["passed"].astype(bool)
        logs = np.log(res["exec_tokens"])
        sd = logs.groupby([res["agent"], passed]).std().dropna()
        f = pd.read_parquet(REPO_ROOT / "data" / "weights" / pool / "features.parquet")
        f = f[f["domain"] == domain]
        prices = counterfactuals.pool_prices(pool)
        jurors = [a for a in prices if f"gamma_{a}" in f]
        per_call = np.concatenate([f[f"jury_usd_{j}"].to_numpy() / prices[j] * 1e6 for j in jurors])
        calls = pd.read_parquet(runs / f"main-sale-{pool}" / "calls.parquet", columns=["task_id", "phase", "tokens"])
        search = res["task_id"].str.split("/").str[0].iloc[0]
        bid_calls = calls[(calls["phase"] == "bid") & calls["task_id"].str.startswith(search)]
        return cls(
            bin_length=(by_bin / by_bin.mean()).to_numpy(),
            fail_ratio=float(res.loc[~passed, "exec_tokens"].mean() / res.loc[passed, "exec_tokens"].mean()),
            length_sd=float(sd.mean()),
            bid_tokens=f["bid_tokens"].to_numpy(),
            bid_entropy=f["entropy"].to_numpy(),
            jury_rating=f[[f"gamma_{j}" for j in jurors]].mean(axis=1).to_numpy(),
            bid_call_tokens=float(bid_calls["tokens"].mean()),
            jury_call_tokens=float(np.mean(per_call)),
        )


@dataclass
class PaperWorld:
    """A synthetic pool at the paper's prices whose per-bin pass@1 matches docs/method.md §2 (deep search).

    Largest agent per bin: 87.5 (easiest) and 12.5 (hardest) as reported; the three middle bins are ours, falling
    7 points a bin so that five equal bins average the reported 63.8. The smallest agent reaches `smallest_easy`
    of the largest on the easiest bin and `smallest_hard` on the hardest (the paper: 87–92% and 17–25%), linearly
    in between; an agent of P billion parameters closes the gap by log(P/4)/log(32/4). Outcomes on one task
    correlate through a shared difficulty: y_{t,a} = 1[√ρ·u_t + √(1−ρ)·e_{t,a} < Φ⁻¹(p_{a,bin(t)})] (ρ = 0:
    independent given the bin; ρ → 1: nested, a smaller agent solves only what a larger one does). Trace tokens:
    L·bin_length·fail_ratio^(1−y)·lognormal(length_sd), the same for every agent (the paper: larger agents do not
    make up for their price with shorter traces), L set so the auction is `auction_token_share` of the tokens of
    an auction plus the largest agent's trace (the paper: under 1%)."""

    agents: tuple[str, ...] = ("qwen3-4b", "qwen3-8b", "qwen3-14b", "qwen3-32b")
    params_b: tuple[float, ...] = (4, 8, 14, 32)
    prices: tuple[float, ...] = (0.05, 0.09, 0.16, 0.36)
    largest_by_bin: tuple[float, ...] = (0.875, 0.805, 0.735, 0.665, 0.125)
    smallest_easy: float = 0.895
    smallest_hard: float = 0.21
    rho: float = 0.5
    auction_token_share: float = 0.01
    n_train_per_bin: int = 20
    n_test_per_bin: int = 100

    def pass_table(self) -> np.ndarray:
        """p[agent, bin]: each agent's pass@1 per bin."""
        bins = len(self.largest_by_bin)
        ratio_small = np.linspace(self.smallest_easy, self.smallest_hard, bins)
        size = np.log(np.asarray(self.params_b) / self.params_b[-1]) / np.log(self.params_b[0] / self.params_b[-1])
        ratio = 1 - (1 - ratio_small[None, :]) * size[:, None]  # 1 for the largest, ratio_small for the smallest
        return ratio * np.asarray(self.largest_by_bin)[None, :]

    def auction_tokens(self, inputs: PaperInputs) -> float:
        n = len(self.agents)
        return n * inputs.bid_call_tokens + n * n * inputs.jury_call_tokens

    def market(self, inputs: PaperInputs, n_per_bin: int, rng: np.random.Generator) -> Market:
        """One draw of tasks, outcomes, bids, traces and the auction's $; the one juror "jury" holds draws from the
        real mean ratings' quantile function (interpolated, so that no two plans tie), independent of the outcomes
        (market_synthetic then reassigns them at an AUROC)."""
        from scipy.stats import norm

        p = self.pass_table()
        n_a, n_b = p.shape
        bins = np.repeat(np.arange(n_b), n_per_bin)
        n = len(bins)
        tasks = [f"paper/{i:04d}" for i in range(n)]
        z = np.sqrt(self.rho) * rng.standard_normal((n, 1)) + np.sqrt(1 - self.rho) * rng.standard_normal((n, n_a))
        y = (z < norm.ppf(p[:, bins].T)).astype(float)
        mean_largest = np.mean(inputs.bin_length * (p[-1] + (1 - p[-1]) * inputs.fail_ratio))
        share = self.auction_token_share
        scale = self.auction_tokens(inputs) * (1 - share) / share / mean_largest
        sd = inputs.length_sd
        tokens = (
            scale
            * inputs.bin_length[bins][:, None]
            * inputs.fail_ratio ** (1 - y)
            * np.exp(sd * rng.standard_normal((n, n_a)) - sd**2 / 2)
        )
        prices = dict(zip(self.agents, self.prices))
        price = np.asarray(self.prices)
        pick = rng.integers(0, len(inputs.bid_tokens), n * n_a)
        bids = pd.DataFrame(
            {
                "task_id": np.repeat(tasks, n_a),
                "agent": np.tile(self.agents, n),
                "tokens": inputs.bid_tokens[pick],
                "entropy": inputs.bid_entropy[pick],
                "gamma_jury": np.quantile(inputs.jury_rating, rng.random(n * n_a)),  # continuous: no ties
                "domain": "search",
                "bin": np.repeat(bins + 1, n_a),
            }
        )
        per_task = pd.DataFrame(index=pd.Index(tasks, name="task_id"))
        auction_cost = per_task.assign(
            bid=inputs.bid_call_tokens * price.sum() / 1e6,
            jury_jury=n_a * inputs.jury_call_tokens * price.sum() / 1e6,
            refine_all=0.0,
        )
        return Market(
            agents=list(self.agents),
            prices=prices,
            bid_cap=128,
            bids=bids,
            passed=pd.DataFrame(y, index=per_task.index, columns=list(self.agents)),
            exec_cost=pd.DataFrame(tokens * price / 1e6, index=per_task.index, columns=list(self.agents)),
            auction_cost=auction_cost,
            domains=pd.Series("search", index=per_task.index),
            jurors=["jury"],
        )


PAPER_HEADLINE = {"Δ pass@1": 0.035, "cost rel. largest": 0.58, "reliance reduction": 0.65}  # deep search, §2


def paper_draw(world: PaperWorld, inputs: PaperInputs, auroc_: float, rng, lam: float = 0.5) -> dict:
    """One synthetic experiment: a train market and a test market of the world, a jury of the target AUROC on
    both, weights fitted on train (our default objective), the test auctions replayed. Returns the test's
    summary against the largest agent alone."""
    train = world.market(inputs, world.n_train_per_bin, rng)
    test = world.market(inputs, world.n_test_per_bin, rng)
    w = fit_market(train, market_synthetic(train, auroc_, rng), lam)
    r_test = market_synthetic(test, auroc_, rng)
    per = simulate(test, w, r_test)
    ref = largest_alone(test)
    p = test.passed.to_numpy()
    return {
        "pass@1": per["passed"].mean(),
        "largest pass@1": ref["passed"].mean(),
        "Δ pass@1": per["passed"].mean() - ref["passed"].mean(),
        "cost rel. largest": per["cost_usd"].sum() / ref["cost_usd"].sum(),
        "largest share": per["largest"].mean(),
        "auction $ share": per["auction_cost_usd"].sum() / per["cost_usd"].sum(),
        "oracle pass@1": p.any(axis=1).mean(),
        "realised AUROC": stratified_auroc(jury_term(test, w, r_test), test.solves, test.bids["domain"]),
        "w_cost": w.w_cost,
        "w_entropy": w.w_entropy,
        "w_jury": w.w_jury["jury"],
    }


PAPER_VARIANTS = {
    "central (ρ = 0.5)": {},  # CENTRAL
    "ρ = 0": {"rho": 0.0},
    "ρ = 0.25": {"rho": 0.25},
    "ρ = 0.75": {"rho": 0.75},
    "ρ = 0.9": {"rho": 0.9},
    "smallest weakest (87%, 17%)": {"smallest_easy": 0.87, "smallest_hard": 0.17},
    "smallest strongest (92%, 25%)": {"smallest_easy": 0.92, "smallest_hard": 0.25},
}
PAPER_AUROCS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.825, 0.85, 0.875, 0.9, 0.95, 1.0)


CENTRAL = "central (ρ = 0.5)"


def paper_sweep(
    inputs: PaperInputs,
    variants=PAPER_VARIANTS,
    aurocs=PAPER_AUROCS,
    draws: int = 12,
    central_draws: int = 48,
    seed: int = 0,
    first_draw: int = 0,
) -> pd.DataFrame:
    """paper_draw over every world variant, target AUROC and draw (`central_draws` for the central world, whose
    threshold is the headline; `draws` for the others): one row each. Draw d of a world and AUROC always uses the
    same random stream, so draws first_draw, first_draw + 1, … extend an earlier sweep."""
    rows = []
    for iv, (name, change) in enumerate(variants.items()):
        world = replace(PaperWorld(), **change)
        for ia, a in enumerate(aurocs):
            for d in range(first_draw, central_draws if name == CENTRAL else draws):
                rng = np.random.default_rng([seed, iv, ia, d])
                rows.append({"world": name, "auroc": a, "draw": d, **paper_draw(world, inputs, a, rng)})
    return pd.DataFrame(rows)


def paper_crossing(draws: pd.DataFrame, world: str, target: float = PAPER_HEADLINE["Δ pass@1"], n_boot: int = 1000):
    """The AUROC at which one world's mean Δ pass@1 (over draws) reaches `target`, with a bootstrap 95% CI over
    draws (each draw a whole synthetic experiment), and the mean cost ratio and reliance reduction there."""
    d = draws[draws["world"] == world].sort_values(["auroc", "draw"])
    aurocs = np.sort(d["auroc"].unique())
    grid = lambda col: d.pivot(index="auroc", columns="draw", values=col).loc[aurocs].to_numpy()  # noqa: E731
    delta, cost, share = grid("Δ pass@1"), grid("cost rel. largest"), grid("largest share")
    point = crossing(aurocs, delta.mean(axis=1), target)
    rng = np.random.default_rng(0)
    n = delta.shape[1]
    boots = [
        crossing(aurocs, np.take_along_axis(delta, rng.integers(0, n, delta.shape), 1).mean(1), target)
        for _ in range(n_boot)
    ]
    lo, hi = _quantiles_inf(np.array(boots))
    near = lambda v: float(np.interp(point, aurocs, v.mean(axis=1))) if np.isfinite(point) else float("nan")  # noqa: E731
    return {
        "world": world,
        "AUROC for Δ = +3.5": point,
        "lo": lo,
        "hi": hi,
        "cost rel. largest there": near(cost),
        "reliance reduction there": 1 - near(share),
        "Δ at AUROC 1": delta[-1].mean(),
        "oracle Δ": (d["oracle pass@1"] - d["largest pass@1"]).mean(),
        "largest pass@1": d["largest pass@1"].mean(),
        "SD of Δ in one experiment": delta.std(axis=1, ddof=1).mean(),
    }


def curve_table(S: SweepArrays, ks=(1.0,), n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per target AUROC: pass@1, Δ vs the largest alone, the largest's share and the cost ratio at each k, with
    bootstrap 95% CIs (tasks and draws resampled together)."""
    rng = np.random.default_rng(seed)
    n_t, n_d = S.W.shape[2], S.W.shape[1]
    point = sweep_metrics(S, ks=ks)
    boots = [
        sweep_metrics(S, ks=ks, tasks=rng.integers(0, n_t, n_t), draws=rng.integers(0, n_d, n_d)) for _ in range(n_boot)
    ]
    out = pd.DataFrame({"auroc": S.aurocs})
    for key in ("pass@1", "Δ", "largest share"):
        lo, hi = np.quantile(np.array([m[key] for m in boots]), [0.025, 0.975], axis=0)
        out[key], out[f"{key} lo"], out[f"{key} hi"] = point[key], lo, hi
    for i, k in enumerate(ks):
        lo, hi = np.quantile(np.array([m["cost"][:, i] for m in boots]), [0.025, 0.975], axis=0)
        col = f"cost k={k:g}"
        out[col], out[f"{col} lo"], out[f"{col} hi"] = point["cost"][:, i], lo, hi
    return out


def correlation_table(pool: str = "cpu") -> pd.DataFrame:
    """outcome_correlation on the pool's train split (scaling-<pool>-train) and, for comparison, its test split
    (main-single-<pool>), within domain × bin, for the two agents that solve tasks and for all agents."""
    runs = REPO_ROOT / "data" / "runs"
    rows = []
    for split, name in (("train", f"scaling-{pool}-train"), ("test", f"main-single-{pool}")):
        res = pd.read_parquet(runs / name / "results.parquet")
        res = res[res["order"] == res["order"].min()]
        p = res.pivot_table(index="task_id", columns="agent", values="passed", aggfunc="first").astype(float)
        meta = res.drop_duplicates("task_id").set_index("task_id")
        cells = meta["domain"] + "/" + meta["bin"].astype(str)
        solvers = [a for a in p.columns if p[a].sum() >= 3]
        for label, agents in (("agents that solve ≥ 3 tasks", solvers), ("all agents", list(p.columns))):
            rho, lo, hi = outcome_correlation(p[agents], cells)
            rows.append({"split": split, "agents": label, "tasks": len(p), "ρ": rho, "lo": lo, "hi": hi})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- value terms beyond the paper (ours)

EMBEDDINGS = REGIME_DIR / "task_embeddings.parquet"
CALIBRATION_C = (0.1, 1.0, 10.0)  # inverse L2 strength of the calibrated jury, chosen by cross-validation on train
PRIOR_K = (1, 3, 5)  # nearest past executions of the prior, chosen by leave-one-task-out on train
PRIOR_FLOOR = (0.4, 0.5, 0.6, 0.7)  # cosine similarity below which a past task does not count


def task_embeddings(pool: str = "cpu", path: str | Path = EMBEDDINGS, compute: bool = False) -> pd.DataFrame:
    """Unit-norm sentence embeddings of the train and test task descriptions (the auction memory's embedder),
    indexed by task_id; read from `path`, computed there first when `compute` (the embedder, no language model)."""
    path = Path(path)
    if path.exists() and not compute:
        return pd.read_parquet(path).set_index("task_id")
    from sale.llm.embeddings import Embedder

    runs = REPO_ROOT / "data" / "runs"
    frames = []
    for split, name in (("train", f"scaling-{pool}-train"), ("test", f"main-single-{pool}")):
        res = pd.read_parquet(runs / name / "results.parquet", columns=["task_id", "domain", "description"])
        frames.append(res.drop_duplicates("task_id").assign(split=split))
    d = pd.concat(frames, ignore_index=True)
    e = Embedder()(d["description"].tolist())
    out = pd.DataFrame(e, columns=[f"e{i}" for i in range(e.shape[1])])
    out.insert(0, "task_id", d["task_id"].to_numpy())
    out.insert(1, "split", d["split"].to_numpy())
    out.insert(2, "domain", d["domain"].to_numpy())
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(path, index=False)
    return out.set_index("task_id")


def _vectors(emb: pd.DataFrame, tasks) -> np.ndarray:
    return emb.loc[list(tasks), [c for c in emb.columns if c.startswith("e")]].to_numpy(dtype=np.float32)


def value_market(market: Market, p: np.ndarray) -> Market:
    """The market with one juror, "value", rating each bid 5·P (P per bid row)."""
    from sale.auction.value import VALUE

    bids = market.bids.drop(columns=[f"gamma_{j}" for j in market.jurors]).assign(**{f"gamma_{VALUE}": 5.0 * p})
    return replace(market, bids=bids, jurors=[VALUE])


def fit_value_weights(train: Market, p_train: np.ndarray, lam: float = 0.5) -> Weights:
    """Score weights (w_c, w_h, w_value) for a value term, by the MILP of docs/method.md §4 (minmax-solvable) on
    the train split with P cross-fitted (each train task's P from a model that did not see it)."""
    return fit_market(value_market(train, p_train), lam=lam)


def _calibrated(train: Market, fitted, weights: Weights):
    from sale.auction.value import CalibratedJury

    return CalibratedJury(
        jurors=list(train.jurors),
        agents=list(train.agents),
        domains=sorted(train.bids["domain"].unique()),
        bid_cap=train.bid_cap,
        coef=[float(c) for c in fitted.coef_[0]],
        intercept=float(fitted.intercept_[0]),
        weights=weights,
    )


def calibration_matrix(market: Market, model) -> np.ndarray:
    """x of every bid row (CalibratedJury.features) with its logged ratings."""
    rows = market.bids.to_dict("records")
    return np.array(
        [
            model.features(
                {j: r[f"gamma_{j}"] for j in model.jurors if pd.notna(r.get(f"gamma_{j}"))},
                r["entropy"],
                r["tokens"],
                r["agent"],
                r["domain"],
            )
            for r in rows
        ]
    )


def fit_calibrated(train: Market, folds: int = 5, seed: int = 0, lam: float = 0.5):
    """The calibrated jury on the train split: a logistic regression of "the bidder solves alone" on
    CalibratedJury.features, its L2 strength chosen among CALIBRATION_C by task-grouped cross-validated log loss;
    P cross-fitted on train (out of fold) for the score weights. Returns (model, P on train out of fold, the
    choice table)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold

    shell = _calibrated(train, type("F", (), {"coef_": [[0.0]], "intercept_": [0.0]})(), Weights.default(["value"]))
    x, y, groups = calibration_matrix(train, shell), train.solves.astype(int), train.bids["task_id"].to_numpy()
    splits = list(GroupKFold(n_splits=folds).split(x, y, groups))
    rows, oof_by_c = [], {}
    for c in CALIBRATION_C:
        oof = np.zeros(len(y))
        for fit_idx, held in splits:
            oof[held] = LogisticRegression(C=c, max_iter=5000).fit(x[fit_idx], y[fit_idx]).predict_proba(x[held])[:, 1]
        oof_by_c[c] = oof
        loss = -np.mean(y * np.log(np.clip(oof, 1e-9, 1)) + (1 - y) * np.log(np.clip(1 - oof, 1e-9, 1)))
        rows.append({"C": c, "cv log loss": loss, "cv AUROC": stratified_auroc(oof, y, train.bids["domain"])})
    table = pd.DataFrame(rows)
    best = float(table.loc[table["cv log loss"].idxmin(), "C"])
    fitted = LogisticRegression(C=best, max_iter=5000).fit(x, y)
    weights = fit_value_weights(train, oof_by_c[best], lam)
    model = _calibrated(train, fitted, weights)
    model.provenance = {"source": "sale.analysis.regime values", "C": best, "train tasks": int(train.passed.shape[0])}
    return model, oof_by_c[best], table


def _prior(train: Market, emb: pd.DataFrame, k: int, floor: float, weights: Weights, exclude=None):
    from sale.auction.value import ExecutionPrior

    tasks = [t for t in train.passed.index if t != exclude]
    passed = train.passed.loc[tasks, train.agents]
    dom = train.domains.reindex(tasks)
    fallback = {d: passed[dom == d].mean().to_dict() for d in dom.unique()}
    fallback["all"] = passed.mean().to_dict()
    return ExecutionPrior(
        agents=list(train.agents),
        k=k,
        floor=floor,
        embeddings=_vectors(emb, tasks),
        outcomes=passed.to_numpy(dtype=float),
        item_tasks=list(tasks),
        fallback=fallback,
        weights=weights,
    )


def prior_probabilities(market: Market, model, emb: pd.DataFrame, extra=()) -> np.ndarray:
    """The prior's P for every bid row of a market (train memory only, plus `extra` executions)."""
    vec = dict(zip(market.passed.index, _vectors(emb, market.passed.index)))
    return np.array(
        [
            model.estimate(a, vec[t], d, extra)
            for t, a, d in zip(market.bids["task_id"], market.bids["agent"], market.bids["domain"])
        ]
    )


def fit_prior(train: Market, emb: pd.DataFrame, lam: float = 0.5):
    """The execution-grounded prior on the train split: k and the similarity floor chosen among PRIOR_K ×
    PRIOR_FLOOR by leave-one-task-out log loss on train (each train task's P from the other train tasks, the
    fallback rates too); P on train left-one-out for the score weights. Returns (model, P on train, the table)."""
    y = train.solves.astype(int)
    loo_by, rows = {}, []
    placeholder = Weights.default(["value"])
    for k in PRIOR_K:
        for floor in PRIOR_FLOOR:
            p = np.zeros(len(y))
            for t in train.passed.index:
                m = (train.bids["task_id"] == t).to_numpy()
                held = replace(train, bids=train.bids[m].reset_index(drop=True), passed=train.passed.loc[[t]])
                p[m] = prior_probabilities(held, _prior(train, emb, k, floor, placeholder, exclude=t), emb)
            loo_by[(k, floor)] = p
            q = np.clip(p, 0.02, 0.98)  # a mean of 0/1 outcomes can be 0 or 1
            rows.append(
                {
                    "k": k,
                    "floor": floor,
                    "loo log loss": -np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)),
                    "loo AUROC": stratified_auroc(p, y, train.bids["domain"]),
                }
            )
    table = pd.DataFrame(rows)
    best = table.loc[table["loo log loss"].idxmin()]
    k, floor = int(best["k"]), float(best["floor"])
    weights = fit_value_weights(train, loo_by[(k, floor)], lam)
    model = _prior(train, emb, k, floor, weights)
    model.provenance = {"source": "sale.analysis.regime values", "train tasks": int(train.passed.shape[0])}
    return model, loo_by[(k, floor)], table


def task_orders(pool: str = "cpu") -> dict[int, list[str]]:
    """Each logged task order of main-sale-<pool>: the test tasks in the order the run met them."""
    res = pd.read_parquet(REPO_ROOT / "data" / "runs" / f"main-sale-{pool}" / "results.parquet")
    return {int(o): g.sort_values("position")["task_id"].tolist() for o, g in res.groupby("order")}


def replay_prior_stream(test: Market, model, emb: pd.DataFrame, order: list[str]) -> pd.DataFrame:
    """The auction with the execution-grounded prior along one task order: each task's P from the train memory
    and the executions earlier in this order (the winner's outcome alone), as a run's memory would hold them."""
    vec = dict(zip(test.passed.index, _vectors(emb, test.passed.index)))
    executed: list[tuple[np.ndarray, str, float]] = []
    winners = {}
    by_task = {t: g for t, g in test.bids.groupby("task_id")}
    for t in order:
        if t not in by_task:
            continue
        g = by_task[t]
        p = np.array([model.estimate(a, vec[t], d, executed) for a, d in zip(g["agent"], g["domain"])])
        one = replace(value_market(replace(test, bids=g.reset_index(drop=True)), p), passed=test.passed.loc[[t]])
        winner = simulate(one, model.weights, charge=[])["agent"].iloc[0]
        winners[t] = winner
        executed.append((vec[t], winner, float(test.passed.at[t, winner])))
    return pd.Series(winners, name="agent")


def value_rows(test: Market, train: Market, run_weights: Weights, emb: pd.DataFrame, lam: float = 0.5):
    """The two value terms fitted on train and replayed on test, beside today's jury and the largest alone.
    Returns (models, replay rows, AUROC rows, the train choice tables)."""
    cal, cal_oof, cal_table = fit_calibrated(train, lam=lam)
    prior, prior_loo, prior_table = fit_prior(train, emb, lam=lam)
    p_cal = cal.probability_of(calibration_matrix(test, cal))
    p_prior = prior_probabilities(test, prior, emb)
    strata = test.bids["domain"]
    size = test.bids["agent"].map(test.agents.index).to_numpy()
    aurocs = [
        {
            "value": "today's jury term (fitted weights)",
            "AUROC test": stratified_auroc(jury_term(test, run_weights), test.solves, strata),
            "AUROC train (fitted on)": stratified_auroc(
                jury_term(train, run_weights), train.solves, train.bids["domain"]
            ),
        },
        {
            "value": "bidder size alone",
            "AUROC test": stratified_auroc(size, test.solves, strata),
            "AUROC train (fitted on)": float("nan"),
        },
        {
            "value": "calibrated jury",
            "AUROC test": stratified_auroc(p_cal, test.solves, strata),
            "AUROC train (fitted on)": stratified_auroc(cal_oof, train.solves, train.bids["domain"]),
        },
        {
            "value": "execution-grounded prior (train memory)",
            "AUROC test": stratified_auroc(p_prior, test.solves, strata),
            "AUROC train (fitted on)": stratified_auroc(prior_loo, train.solves, train.bids["domain"]),
        },
    ]
    rows = {
        "today's jury (the weights SALE ran with)": summarize(simulate(test, run_weights), test),
        "calibrated jury": summarize(
            simulate(value_market(test, p_cal), cal.weights, charge=consulted(run_weights, test.jurors)), test
        ),
        "execution-grounded prior, train memory only": summarize(
            simulate(value_market(test, p_prior), prior.weights, charge=[]), test
        ),
    }
    streams = [replay_prior_stream(test, prior, emb, o) for o in task_orders().values()]
    per = []
    for w in streams:
        one = replay_outcomes_for(test, w)
        per.append(one)
    mean = sum(p[["passed", "cost_usd", "auction_cost_usd", "exec_cost_usd", "largest"]] for p in per) / len(per)
    mean["agent"] = per[0]["agent"]
    mean["jury_usd"] = 0.0
    rows["execution-grounded prior, memory along the run (5 orders)"] = summarize(mean, test)
    return (
        {"calibrated": cal, "prior": prior},
        rows,
        pd.DataFrame(aurocs),
        {"calibrated": cal_table, "prior": prior_table},
    )


def replay_outcomes_for(market: Market, winners: pd.Series, charge=()) -> pd.DataFrame:
    """Per-task outcomes of given winners (simulate's frame), charging the bids and the jurors in `charge`."""
    from sale.analysis.counterfactuals import replay_outcomes

    per = replay_outcomes(winners, market.passed, market.exec_cost, market.auction_cost, list(charge), market.domains)
    per["largest"] = (per["agent"] == market.largest).astype(float)
    return per


def main(argv=None) -> None:
    """python -m sale.analysis.regime [cpu] [paper] [values]: run the sweeps and fit the value terms on train,
    writing data/regime/ (minutes; no language model, the sentence embedder once for the task embeddings)."""
    import argparse
    import json
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("parts", nargs="*", help="cpu, paper, values (default: all three)")
    parser.add_argument("--draws", type=int, default=30, help="synthetic juries per AUROC (cpu)")
    parser.add_argument("--paper-draws", type=int, default=12, help="synthetic experiments per AUROC and world")
    parser.add_argument("--central-draws", type=int, default=48, help="the same for the paper's central world")
    parser.add_argument("--out", default=str(REGIME_DIR))
    args = parser.parse_args(argv)
    parts = set(args.parts or ["cpu", "paper", "values"])
    if parts - {"cpu", "paper", "values"}:
        parser.error(f"unknown parts {sorted(parts - {'cpu', 'paper', 'values'})}: cpu, paper, values")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if "cpu" in parts:
        t0 = time.perf_counter()
        test, run_weights = cpu_market()
        winners, fits = cpu_sweep(test, train_market(), run_weights, draws=args.draws)
        winners.to_parquet(out / "cpu_winners.parquet", index=False)
        fits.round(6).to_csv(out / "cpu_fits.csv", index=False)
        correlation_table().to_csv(out / "outcome_correlation.csv", index=False)
        print(f"[regime] cpu sweep: {len(fits)} replays in {time.perf_counter() - t0:.0f} s -> {out}")
    if "paper" in parts:
        t0 = time.perf_counter()
        inputs = PaperInputs.measure()
        (out / "paper_inputs.json").write_text(
            json.dumps(
                {
                    k: (np.round(v, 4).tolist() if k == "bin_length" else v)
                    for k, v in inputs.__dict__.items()
                    if np.ndim(v) == 0 or k == "bin_length"
                },
                indent=2,
            )
            + "\n"
        )
        draws = paper_sweep(inputs, draws=args.paper_draws, central_draws=args.central_draws)
        draws.to_csv(out / "paper_draws.csv", index=False)
        print(f"[regime] paper sweep: {len(draws)} experiments in {time.perf_counter() - t0:.0f} s -> {out}")
    if "values" in parts:
        from sale.auction import value as value_terms

        t0 = time.perf_counter()
        test, run_weights = cpu_market()
        emb = task_embeddings(path=out / EMBEDDINGS.name)
        models, rows, aurocs, choices = value_rows(test, train_market(), run_weights, emb)
        for kind, model in models.items():
            value_terms.save(model, out / f"value-{kind}.json")
        table = pd.DataFrame(rows).T.rename_axis("value").reset_index().drop(columns=["variant"])
        table.to_csv(out / "values_replay.csv", index=False)
        aurocs.to_csv(out / "values_auroc.csv", index=False)
        pd.concat([t.assign(model=k) for k, t in choices.items()]).to_csv(out / "values_choice.csv", index=False)
        print(f"[regime] value terms fitted on train and replayed in {time.perf_counter() - t0:.0f} s -> {out}")


if __name__ == "__main__":
    main()
