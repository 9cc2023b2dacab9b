"""Notebook 06's counterfactuals: when does an auction pay? The jury's AUROC, auctions replayed on their logged bids
with other weights or a perfect jury, break-even execution lengths and re-pricing, all from run logs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sale.analysis.metrics import overhead_share, paired_bootstrap_ci, relative_cost
from sale.analysis.tables import AUCTION_PHASES


def pool_prices(pool: str = "cpu") -> dict[str, float]:
    """Each agent's price in $/Mtok, from conf/pool/<pool>.yaml."""
    from sale.llm import load_pool

    p = load_pool(pool)
    return {name: p.spec(name).price for name in p.names}


def outcome_matrix(single: pd.DataFrame, agents: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """[task × agent] frames of each agent's outcome alone (0/1) and its execution $, from a single-agent run
    (first order); only the tasks every agent ran."""
    df = single[single["agent"].isin(agents) & (single["order"] == single["order"].min())]
    passed = df.pivot_table(index="task_id", columns="agent", values="passed", aggfunc="first").astype(float)
    cost = df.pivot_table(index="task_id", columns="agent", values="exec_cost_usd", aggfunc="first")
    keep = passed.notna().all(axis=1) & cost.notna().all(axis=1)
    return passed.loc[keep, agents], cost.loc[keep, agents]


def initial_bids(bids: pd.DataFrame) -> pd.DataFrame:
    """The original (unrefined) bids of each task's auction in its first logged order: they do not depend on the
    memory, so every order has the same ones."""
    b = bids[~bids["refined"].astype(bool)]
    first = b.groupby("task_id")["order"].transform("min")
    return b[b["order"] == first].drop_duplicates(["task_id", "agent"])


def _auroc(scores, labels) -> float:
    """AUROC by the Mann-Whitney rank sum (ties count one half); NaN with one class only."""
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def jury_auroc(
    bids: pd.DataFrame, passed: pd.DataFrame, agents: list[str], domains: pd.Series, n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """How well each juror's ratings (gamma_<juror> of the initial bids) tell whether the bidder solves the task
    alone, as AUROC per domain (and 'all'), beside the bidder's size alone (its rank in the pool) as the score.
    95% CIs by a bootstrap over tasks. A juror that rated no bid (not consulted) is left out. `domains`: task_id ->
    domain."""
    b = initial_bids(bids)
    b = b[b["task_id"].isin(passed.index)].copy()
    b["solves"] = [passed.at[t, a] for t, a in zip(b["task_id"], b["agent"])]
    b["size"] = b["agent"].map({a: i for i, a in enumerate(agents)})
    b["domain"] = b["task_id"].map(domains)
    raters = [(f"juror {j}", f"gamma_{j}") for j in agents if f"gamma_{j}" in b and b[f"gamma_{j}"].notna().any()]
    raters.append(("bidder size alone", "size"))
    rng = np.random.default_rng(seed)
    rows = []
    for domain in [*sorted(b["domain"].dropna().unique()), "all"]:
        d = (b if domain == "all" else b[b["domain"] == domain]).reset_index(drop=True)
        rows_of = list(d.groupby("task_id").indices.values())  # each task's bid rows
        draws = [
            np.concatenate([rows_of[i] for i in rng.integers(0, len(rows_of), len(rows_of))]) for _ in range(n_boot)
        ]
        for name, col in raters:
            score, label = d[col].to_numpy(dtype=float), d["solves"].to_numpy(dtype=bool)
            ok = ~np.isnan(score)
            boots = np.array([_auroc(score[i][ok[i]], label[i][ok[i]]) for i in draws])
            lo, hi = np.nanquantile(boots, [0.025, 0.975]) if np.isfinite(boots).any() else (np.nan, np.nan)
            rows.append(
                {
                    "domain": domain,
                    "rater": name,
                    "AUROC": _auroc(score[ok], label[ok]),
                    "lo": lo,
                    "hi": hi,
                    "bids": int(ok.sum()),
                    "solved": int(label[ok].sum()),
                }
            )
    return pd.DataFrame(rows)


def self_preference(bids: pd.DataFrame, agents: list[str]) -> pd.Series:
    """Per juror, the share of auctions (initial bids) in which it rates its own plan strictly above every other."""
    b = initial_bids(bids)
    out = {}
    for j in agents:
        col = f"gamma_{j}"
        if col not in b or b[col].isna().all():
            continue
        wins = []
        for _, g in b.groupby("task_id"):
            own, others = g.loc[g["agent"] == j, col], g.loc[g["agent"] != j, col]
            if len(own) and len(others):
                wins.append(float(own.iloc[0] > others.max()))
        out[j] = float(np.mean(wins)) if wins else np.nan
    return pd.Series(out, name="rates its own plan highest")


def solver_groups(passed: pd.DataFrame, domains: pd.Series) -> pd.DataFrame:
    """Tasks counted by which agents solve them alone ('none', or the solvers joined by ' + '), per domain."""
    label = passed.apply(lambda r: " + ".join(a for a in passed.columns if r[a] > 0) or "none", axis=1)
    table = pd.crosstab(label, domains.reindex(passed.index), margins=True, margins_name="all")
    return table.rename_axis(index="solved by", columns=None)


def oracle_costs(passed: pd.DataFrame, exec_cost: pd.DataFrame, domains: pd.Series) -> pd.DataFrame:
    """The oracle (the cheapest agent that solves a task executes it) under each fallback for the tasks no agent
    solves: the cheapest agent or the largest (the paper's). pass@1, $/task and cost relative to the largest alone, per
    domain and overall. Execution $ only: the oracle holds no auction."""
    agents = list(passed.columns)
    solved = passed.to_numpy() > 0
    first = np.where(solved.any(axis=1), solved.argmax(axis=1), -1)
    rows = []
    for domain in [*sorted(domains.reindex(passed.index).unique()), "all"]:
        mask = np.ones(len(passed), bool) if domain == "all" else (domains.reindex(passed.index) == domain).to_numpy()
        largest = exec_cost.to_numpy()[mask, -1]
        for fallback, idx in (("cheapest", 0), ("largest", len(agents) - 1)):
            pick = np.where(first[mask] >= 0, first[mask], idx)
            cost = exec_cost.to_numpy()[mask][np.arange(mask.sum()), pick]
            rows.append(
                {
                    "domain": domain,
                    "fallback": fallback,
                    "tasks": int(mask.sum()),
                    "pass@1": float(solved[mask].any(axis=1).mean()),
                    "$/task": cost.mean(),
                    "cost rel. largest": cost.sum() / largest.sum(),
                    "largest share": float((pick == len(agents) - 1).mean()),
                }
            )
    return pd.DataFrame(rows)


def auction_call_costs(calls: pd.DataFrame) -> pd.DataFrame:
    """Per task (first logged order), the $ of the initial bids, each juror's $ rating them (the jury calls before
    the auction's first refine call) and of refinement with its jury: columns bid, jury_<juror>, refine_all."""
    c = calls[calls["order"] == calls.groupby("task_id")["order"].transform("min")]
    first_refine = c[c["phase"] == "refine"].groupby("task_id")["call_index"].min()
    limit = c["task_id"].map(first_refine).fillna(np.inf)
    initial = c["call_index"] < limit
    out = pd.DataFrame({"bid": c[c["phase"] == "bid"].groupby("task_id")["cost_usd"].sum()})
    jury = c[(c["phase"] == "jury") & initial].pivot_table(
        index="task_id", columns="agent", values="cost_usd", aggfunc="sum"
    )
    out = out.join(jury.add_prefix("jury_"), how="outer")
    later = c[~initial & c["phase"].isin(AUCTION_PHASES)].groupby("task_id")["cost_usd"].sum()
    out["refine_all"] = later
    return out.fillna(0.0)


SELF_RATINGS = ("kept", "rescaled", "dropped", "imputed")


def replay_auction(
    bids: pd.DataFrame,
    weights,
    prices: dict[str, float],
    bid_cap: int,
    jurors=None,
    perfect: pd.DataFrame | None = None,
    self_rating: str = "kept",
) -> pd.Series:
    """The winner of each task's auction on its logged initial bids, rescored with `weights` (sale.auction.weights
    .Weights) and no refinement, by the regime simulator's allocate (the auction's score_bid and argmin_score):
    score = C − V by score_bid, the jury term over `jurors` (default:
    those with weight > 0) rescaled as the auction does (Weights.jury_value), ties to the cheaper agent.
    `perfect`, a [task × agent] 0/1 frame, replaces every rating by 5 × whether the bidder solves the task alone
    (a perfect jury).

    `self_rating` replays the auction without self-evaluation, from logs that have every juror's rating:
    kept (self-evaluation on), imputed (the bidder's own rating replaced by that juror's mean rating of the other
    plans, as `auction.jury.self_evaluation=false` does: sale.auction.bids.impute_own_ratings), rescaled (the own
    rating left out and the jury's weight spread over the others, the auction's rule before 2026-12-06; a bid no
    weighted juror rated gets its auction's mean jury term) or dropped (the paper's Σ_j w_j·γ_j with the self term
    absent, no rescaling)."""
    from sale.analysis.regime import allocate, build_auctions

    if self_rating not in SELF_RATINGS:
        raise ValueError(f"self_rating={self_rating!r}: one of {SELF_RATINGS}")
    jurors = [j for j in (jurors or list(prices)) if weights.w_jury.get(j, 0) > 0]
    b = initial_bids(bids)
    if perfect is not None:
        solves = [5.0 * perfect.at[t, a] for t, a in zip(b["task_id"], b["agent"])]
        b = b.assign(**{f"gamma_{j}": solves for j in jurors})

    def dropped(auction):  # the paper's sum without the self term, not rescaled
        for bid in auction:
            bid.value = weights.w_entropy * bid.entropy + sum(weights.w_jury[j] * v for j, v in bid.jury.items())
            bid.score = bid.cost - bid.value

    def rescaled(auction):  # a bid no weighted juror rated gets its auction's mean jury term
        terms = [weights.jury_value(bid.jury) for bid in auction]
        rated = [v for v in terms if v is not None]
        for bid, term in zip(auction, terms):
            if term is None and rated:
                bid.score -= float(np.mean(rated))

    return allocate(
        build_auctions(b, jurors, drop_own=self_rating != "kept"),
        weights,
        prices,
        bid_cap,
        self_evaluation=self_rating != "imputed",
        adjust={"dropped": dropped, "rescaled": rescaled}.get(self_rating),
        jurors=jurors,
    )


def replay_outcomes(
    winners: pd.Series,
    passed: pd.DataFrame,
    exec_cost: pd.DataFrame,
    auction_costs: pd.DataFrame,
    jurors: list[str],
    domains: pd.Series,
) -> pd.DataFrame:
    """Per task of a replayed auction: the winner, whether it solves the task alone, and the $ of the bids, of the
    jurors consulted (their logged ratings of the initial bids) and of the winner's execution alone."""
    tasks = winners.index.intersection(passed.index).intersection(auction_costs.index)
    w = winners.loc[tasks]
    jury_cols = [f"jury_{j}" for j in jurors if f"jury_{j}" in auction_costs]
    out = pd.DataFrame(
        {
            "agent": w,
            "domain": domains.reindex(tasks),
            "passed": [passed.at[t, a] for t, a in w.items()],
            "exec_cost_usd": [exec_cost.at[t, a] for t, a in w.items()],
            "bid_usd": auction_costs.loc[tasks, "bid"],
            "jury_usd": auction_costs.loc[tasks, jury_cols].sum(axis=1),
        }
    )
    out["auction_cost_usd"] = out["bid_usd"] + out["jury_usd"]
    out["cost_usd"] = out["auction_cost_usd"] + out["exec_cost_usd"]
    return out


def counterfactual_row(
    name: str,
    per: pd.DataFrame,
    largest_per: pd.DataFrame,
    largest: str,
    reference: pd.DataFrame | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """One row of the counterfactual table: per-task frame `per` (passed, cost_usd, auction_cost_usd, agent)
    against the largest alone (`largest_per`: passed, cost_usd) on the same tasks, and Δpass@1 against
    `reference` (another such frame) with a paired bootstrap CI."""
    tasks = per.index.intersection(largest_per.index)
    per, ref_l = per.loc[tasks], largest_per.loc[tasks]
    d, lo, hi = paired_bootstrap_ci(per["passed"], ref_l["passed"], n_boot=n_boot, seed=seed)
    row = {
        "variant": name,
        "tasks": len(tasks),
        "pass@1": per["passed"].mean(),
        "Δ vs largest": d,
        "Δ lo": lo,
        "Δ hi": hi,
        "cost rel. largest": relative_cost(per["cost_usd"], ref_l["cost_usd"]),
        "largest share": per["largest"].mean() if "largest" in per else float((per["agent"] == largest).mean()),
        "auction $ share": overhead_share(per["auction_cost_usd"], per["cost_usd"]),
        "jury $/task": per["jury_usd"].mean() if "jury_usd" in per else np.nan,
    }
    if reference is not None:
        common = tasks.intersection(reference.index)
        row["Δ vs ref."], row["ref. lo"], row["ref. hi"] = paired_bootstrap_ci(
            per.loc[common, "passed"], reference.loc[common, "passed"], n_boot=n_boot, seed=seed
        )
    return row


def break_even(auction: float, sale_exec: float, largest_exec: float, scale) -> pd.DataFrame:
    """If every execution were `scale`× as long (auction unchanged): the auction's share of SALE's total and SALE's
    cost relative to the largest agent alone. Inputs are per-task means ($ or tokens)."""
    k = np.asarray(scale, dtype=float)
    return pd.DataFrame(
        {
            "scale": k,
            "auction share": auction / (auction + k * sale_exec),
            "cost rel. largest": (auction + k * sale_exec) / (k * largest_exec),
        }
    )


def scale_for_share(auction: float, sale_exec: float, share: float) -> float:
    """How many times longer executions must be for the auction to be `share` of SALE's total."""
    return auction * (1 - share) / (share * sale_exec)


def scale_for_parity(auction: float, sale_exec: float, largest_exec: float) -> float:
    """How many times longer executions must be for SALE to cost what the largest agent alone does (inf if SALE's
    executions alone cost as much as the largest's)."""
    saved = largest_exec - sale_exec
    return auction / saved if saved > 0 else float("inf")


def cached_prefix_tokens(calls: pd.DataFrame, plan_tokens: int = 128) -> pd.Series:
    """An estimate of each call's prompt tokens that an earlier call of the same agent on the same task already
    sent, i.e. what a provider's prompt cache would bill at a discount. Jury: a juror's ratings of one task share
    everything before the plan, so each rating after its first is cached up to its shortest rating prompt less
    `plan_tokens` (the bid cap, an upper bound on a plan). Other phases: a call's prompt extends the previous
    call's of the same agent and phase (a multi-turn trace), so min(previous prompt, this prompt) is cached. The
    first call of each is not cached."""
    c = calls.sort_values(["arm", "order", "task_id", "call_index"])
    key = [c["arm"], c["order"], c["task_id"], c["agent"], c["phase"]]
    prev = c.groupby(key)["prompt_tokens"].shift(1)
    first = prev.isna()
    cached = np.minimum(prev.fillna(0), c["prompt_tokens"])
    jury = c["phase"] == "jury"
    shared = (c.groupby(key)["prompt_tokens"].transform("min") - plan_tokens).clip(lower=0)
    cached = cached.where(~jury, np.minimum(shared, c["prompt_tokens"]))
    return cached.where(~first, 0).reindex(calls.index)


PRICE_SCHEMES = {
    "one price for all tokens (ours)": "every token at the agent's price, prompt and completion alike "
    "(docs/method.md §6)",
    "output tokens only": "completion tokens at the agent's price, prompts free",
    "input at 1/4 of output, cached prefixes at 1/10 of input": "completion at the agent's price, prompt tokens at a "
    "quarter of it, and the estimated cached prefix (cached_prefix_tokens) at a tenth of that",
}


def reprice(calls: pd.DataFrame, scheme: str, plan_tokens: int = 128) -> pd.Series:
    """Each call's $ under one of PRICE_SCHEMES (the agent's logged price per Mtok taken as the output price)."""
    p = calls["price_per_mtok"] / 1e6
    if scheme == "one price for all tokens (ours)":
        return (calls["prompt_tokens"] + calls["completion_tokens"]) * p
    if scheme == "output tokens only":
        return calls["completion_tokens"] * p
    if scheme == "input at 1/4 of output, cached prefixes at 1/10 of input":
        cached = cached_prefix_tokens(calls, plan_tokens)
        return (calls["completion_tokens"] + (calls["prompt_tokens"] - cached) / 4 + cached / 40) * p
    raise ValueError(f"unknown price scheme {scheme!r}; one of {list(PRICE_SCHEMES)}")


def cost_sensitivity(
    sale_calls: pd.DataFrame,
    sale_results: pd.DataFrame,
    largest_calls: pd.DataFrame,
    largest_results: pd.DataFrame,
    plan_tokens: int = 128,
) -> pd.DataFrame:
    """SALE against the largest agent alone under each price scheme, per domain and overall, on the tasks both
    hold: $/task of each (SALE: per-task means over its orders), SALE's cost relative to the largest and the
    auction's share of SALE's $."""
    common = set(sale_results["task_id"]) & set(largest_results["task_id"])
    domain = pd.concat([sale_results, largest_results]).drop_duplicates("task_id").set_index("task_id")["domain"]
    rows = []
    for scheme in PRICE_SCHEMES:
        s = sale_calls[sale_calls["task_id"].isin(common)].assign(usd=reprice(sale_calls, scheme, plan_tokens))
        l_ = largest_calls[largest_calls["task_id"].isin(common)].assign(
            usd=reprice(largest_calls, scheme, plan_tokens)
        )
        s_task = s.groupby(["order", "task_id"])["usd"].sum().groupby("task_id").mean()
        s_auction = (
            s[s["phase"].isin(AUCTION_PHASES)]
            .groupby(["order", "task_id"])["usd"]
            .sum()
            .groupby("task_id")
            .mean()
            .reindex(s_task.index, fill_value=0.0)
        )
        l_task = l_.groupby("task_id")["usd"].sum().reindex(s_task.index, fill_value=0.0)
        for d in [*sorted(domain.reindex(s_task.index).unique()), "all"]:
            m = np.ones(len(s_task), bool) if d == "all" else (domain.reindex(s_task.index) == d).to_numpy()
            rows.append(
                {
                    "scheme": scheme,
                    "domain": d,
                    "tasks": int(m.sum()),
                    "SALE $/task": s_task[m].mean(),
                    "largest $/task": l_task[m].mean(),
                    "cost rel. largest": s_task[m].sum() / l_task[m].sum(),
                    "auction $ share": s_auction[m].sum() / s_task[m].sum(),
                }
            )
    return pd.DataFrame(rows)


def counterfactual_table(
    sale: dict[str, pd.DataFrame],
    passed: pd.DataFrame,
    exec_cost: pd.DataFrame,
    domains: pd.Series,
    prices: dict[str, float],
    bid_cap: int,
    run_weights,
    run_name: str,
    other_weights: dict | None = None,
) -> tuple[pd.DataFrame, float]:
    """Notebook 06's counterfactual table: SALE as logged, then its auctions replayed on their logged initial bids
    (no refinement, the winner's logged run alone) with the weights it ran with, a perfect jury, the largest agent
    as the only juror, the three readings of no self-evaluation, every other fitted weights file (`other_weights`:
    name -> Weights) and the default weights, and the oracle with no auction; each row against the largest agent
    alone and, for the replays, against the replay with the run's weights (paired, counterfactual_row). Also returns
    the share of auctions in which that replay picks the logged provisional winner.

    sale: the SALE run's logs (results, calls, bids); passed, exec_cost: [task x agent] outcomes and execution $ of
    every agent alone (outcome_matrix); run_weights: the Weights the run used, named run_name."""
    from sale.auction.weights import Weights

    agents = list(prices)
    largest = agents[-1]
    auction_costs = auction_call_costs(sale["calls"])
    largest_per = pd.DataFrame({"passed": passed[largest], "cost_usd": exec_cost[largest]})

    def replay(weights, jurors=None, perfect=None, self_rating="kept"):
        consulted = [j for j in (jurors or agents) if weights.w_jury.get(j, 0) > 0]
        unlogged = [j for j in consulted if f"gamma_{j}" not in sale["bids"] or sale["bids"][f"gamma_{j}"].isna().all()]
        if unlogged and perfect is None:  # the logged run did not consult them (weight 0 in its weights)
            print(
                f"  note: no logged ratings by {unlogged}; this replay rescales the jury over the others and "
                "leaves their cost out"
            )
        winners = replay_auction(
            sale["bids"], weights, prices, bid_cap, jurors=jurors, perfect=perfect, self_rating=self_rating
        )
        return replay_outcomes(winners, passed, exec_cost, auction_costs, consulted, domains), winners

    base, base_winners = replay(run_weights)
    b0 = initial_bids(sale["bids"])
    logged_provisional = b0[b0["provisional_winner"].astype(bool)].set_index("task_id")["agent"]
    agreement = float((base_winners.reindex(logged_provisional.index) == logged_provisional).mean())

    variants = {
        f"replay: weights SALE ran with ({run_name})": base,
        "replay: perfect jury": replay(run_weights, perfect=passed)[0],
        "replay: largest agent as the only juror": replay(run_weights, jurors=[largest])[0],
    }
    for rule, how in (
        ("imputed", "imputed (the own rating = that juror's mean of the other plans, as the ablation runs)"),
        ("rescaled", "rescaled (the jury's weight spread over the other jurors)"),
        ("dropped", "dropped (the own rating left out of the jury's sum)"),
    ):
        variants[f"replay: no self-evaluation, {how}"] = replay(run_weights, self_rating=rule)[0]
    for name, weights in sorted((other_weights or {}).items()):
        if name != run_name:
            variants[f"replay: weights {name}"] = replay(weights)[0]
    if run_name != "default":
        variants["replay: default weights"] = replay(Weights.default(agents))[0]

    res = sale["results"]
    logged = (
        res.assign(passed=res["passed"].astype(float), largest=(res["agent"] == largest).astype(float))
        .groupby("task_id")[["passed", "cost_usd", "auction_cost_usd", "largest"]]
        .mean()
    )
    calls = sale["calls"]
    jury_logged = calls[calls["phase"] == "jury"].groupby(["order", "task_id"])["cost_usd"].sum().groupby("task_id")
    logged["jury_usd"] = jury_logged.mean().reindex(logged.index, fill_value=0.0)
    rows = [
        counterfactual_row("SALE as logged (5 orders, refinement, plan in the prompt)", logged, largest_per, largest)
    ]
    rows += [counterfactual_row(name, per, largest_per, largest, reference=base) for name, per in variants.items()]
    solved = passed.to_numpy()
    oracle_pick = np.where(solved.any(axis=1), solved.argmax(axis=1), len(agents) - 1)
    oracle_per = pd.DataFrame(
        {
            "agent": [agents[i] for i in oracle_pick],
            "passed": solved.any(axis=1),
            "cost_usd": exec_cost.to_numpy()[np.arange(len(passed)), oracle_pick],
            "auction_cost_usd": 0.0,
            "jury_usd": 0.0,
        },
        index=passed.index,
    ).astype({"passed": float})
    rows.append(
        counterfactual_row("oracle (fallback: largest), no auction", oracle_per, largest_per, largest, reference=base)
    )
    return pd.DataFrame(rows), agreement
