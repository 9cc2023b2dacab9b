"""Fit the auction's weights on the train split (docs/method.md §4) and save them for later runs.

    python -m sale.fit                                   # cpu pool; reads data/runs/scaling-cpu-train
    python -m sale.fit pool=qwen3 fit.train_run=...      # any pool with a finished train run

Step 1 of docs/method.md §4 (every agent to completion on the train tasks) is a `method=single` run, e.g.
`python -m sale.run experiment=scaling tasks.split=train`; its results give y[t, i] and the execution cost.
Step 2 runs what an auction computes before refinement, for every train task: each agent's bid (|s|, H) and
every juror's rating γ of every bid. Those calls go through the persistent call cache, so an interrupted fit
resumes where it stopped and a refit costs nothing. Step 3 solves the MILP three ways and writes, under
fit.out_dir:

    features.parquet     one row per (task, agent): cost feature, entropy, gamma_<juror>, passed, exec cost
    minmax.json          the paper's min-max fit, docs/method.md §4 (auction.weights.path=<out_dir>/minmax.json)
    minmax-solvable.json min-max over the tasks some agent solves (see sale.auction.weights.fit_weights)
    mean.json            the average-loss ablation
    overhead.json        min-max over solvable tasks, overhead-aware (ours, beyond the paper): each juror the fit
                         keeps adds its mean $ per task (jury_usd_<juror>) to every task's loss, so it may drop jurors
    fit.md               the fitted weights and what they choose on the train tasks, beside the defaults, and
                         how each fit does on train tasks it did not see (k-fold cross-validation within train)

fit.reuse_features=true refits from an existing out_dir/features.parquet without a model call. Features made before
the jury's cost was recorded lack the jury_usd_<juror> columns; fit.juror_cost_run=<a SALE run directory> then
measures each juror's mean $ per task from that run's jury calls on the initial bids (prices and prompt lengths,
no outcome).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import cast

import hydra
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

import sale.config  # noqa: F401  (registers the resolver that lists the groups in --help)
from sale import CONF_DIR

# (file name, objective, worst_case, overhead-aware): the paper's min-max, min-max bounded on solvable tasks only, the
# mean ablation, and our default made overhead-aware (jurors priced into the loss).
FITS = (
    ("minmax", "minmax", "all", False),
    ("minmax-solvable", "minmax", "solvable", False),
    ("mean", "mean", "all", False),
    ("overhead", "minmax", "solvable", True),
)


def collect_features(cfg: DictConfig, pool, tasks, cache) -> pd.DataFrame:
    """One row per (task, agent): the original bid's features as the auction computes them (no refinement), and
    jury_usd_<juror>, the $ that juror spent rating this bid."""
    from tqdm.auto import tqdm

    from sale.auction.bids import bid_messages, make_bid
    from sale.auction.jury import rate
    from sale.auction.sale import jurors_for
    from sale.auction.weights import cost_feature
    from sale.harness.ledger import Ledger

    auction = cfg.auction
    if not auction.jury.self_evaluation:
        raise ValueError(
            "the weight fit scores every bid with every juror; run it with auction.jury.self_evaluation=true"
        )
    jurors = jurors_for(auction, pool.names)
    cap = int(auction.bid_max_tokens)
    max_price = pool.largest.price
    root = Ledger(pool, cache, method="fit")
    rows = []
    for task in tqdm(tasks, desc="auction features (bids + jury)", unit="task", dynamic_ncols=True, file=sys.stdout):
        ledger = root.for_task(task_id=task.id)
        messages = bid_messages(task, cap, auction.prompts)
        bids = [make_bid(ledger, agent, task, cap, messages) for agent in pool.names]
        scores = rate(
            ledger,
            jurors,
            task,
            bids,
            list(auction.jury.options),
            random.Random(f"{cfg.seed}/fit/{task.id}"),
            prompts=auction.prompts,
        )
        for i, b in enumerate(bids):
            rows.append(
                {
                    "task_id": task.id,
                    "domain": task.domain,
                    "bin": task.bin,
                    "agent": b.agent,
                    "bid_tokens": b.tokens,
                    "cost": cost_feature(pool.spec(b.agent).price, max_price, b.tokens, cap),
                    "entropy": b.entropy if auction.entropy.enabled else 0.0,
                    **{f"gamma_{j}": b.jury[j] for j in jurors},
                    **{f"jury_usd_{j}": scores[(j, i)].prompt_tokens * pool.spec(j).price / 1e6 for j in jurors},
                }
            )
    return pd.DataFrame(rows)


def arrays(features: pd.DataFrame, agents: list[str], jurors: list[str]):
    """[task, agent] arrays (and [task, agent, juror] for the jury) in pool order, tasks sorted by id."""
    f = features.set_index(["task_id", "agent"]).sort_index()
    tasks = sorted(features["task_id"].unique())
    idx = pd.MultiIndex.from_product([tasks, agents])
    f = f.reindex(idx)
    shape = (len(tasks), len(agents))
    grid = lambda col: f[col].to_numpy(dtype=float).reshape(shape)  # noqa: E731
    jury = np.stack([grid(f"gamma_{j}") for j in jurors], axis=2)
    return tasks, grid("cost"), grid("entropy"), jury, grid("passed"), grid("exec_cost_usd")


def juror_costs(features: pd.DataFrame, jurors: list[str], run: str | None = None) -> tuple[np.ndarray, str]:
    """Each juror's mean $ per task for rating a task's initial bids, and where it was measured: the features'
    jury_usd_<juror> columns (the fit's own jury calls), else the jury calls on the initial bids of the SALE run
    `run` (those before the auction's first refine call)."""
    cols = [f"jury_usd_{j}" for j in jurors]
    if set(cols) <= set(features.columns):
        per_task = features.groupby("task_id")[cols].sum()
        return per_task.mean().to_numpy(dtype=float), f"the fit's jury calls on {len(per_task)} train tasks"
    if not run:
        raise ValueError(
            "the features have no jury_usd_<juror> columns (made before the fit recorded the jury's "
            "cost): rerun python -m sale.fit to collect them, or set fit.juror_cost_run to a SALE run "
            "directory to measure each juror's cost there"
        )
    from sale.harness.runlog import load_logs

    calls = load_logs(run)["calls"]
    if calls.empty or not (calls["phase"] == "jury").any():
        raise ValueError(f"fit.juror_cost_run={run!r} has no jury calls")
    key = ["arm", "order", "task_id"]
    first_refine = calls[calls["phase"] == "refine"].groupby(key)["call_index"].min().rename("first_refine")
    jury = calls[calls["phase"] == "jury"].join(first_refine, on=key)
    jury = jury[jury["first_refine"].isna() | (jury["call_index"] < jury["first_refine"])]
    auctions = jury.groupby(key).ngroups
    per_juror = jury.groupby("agent")["cost_usd"].sum() / auctions
    missing = [j for j in jurors if j not in per_juror.index]
    if missing:
        raise ValueError(f"fit.juror_cost_run={run!r} has no jury call by {missing}")
    return per_juror.reindex(jurors).to_numpy(
        dtype=float
    ), f"{run}: jury calls on the initial bids of {auctions} auctions"


def choice_table(name, weights, cost, entropy, jury, passed, exec_cost, lam, agents, juror_cost=None) -> dict:
    from sale.auction.weights import evaluate

    ev = evaluate(weights, cost, entropy, jury, passed, exec_cost, lam)
    rows = np.arange(len(ev.chosen))
    row = {
        "weights": name,
        "w_cost": weights.w_cost,
        "w_entropy": weights.w_entropy,
        **{f"w_{j}": w for j, w in weights.w_jury.items()},
        "pass@1": ev.pass_rate,
        "mean loss": ev.mean_loss,
        "max loss": ev.max_loss,
        "exec $/task": float(exec_cost[rows, ev.chosen].mean()),
    }
    if juror_cost is not None:  # what the jurors this weight vector consults cost per task
        row["jury $/task"] = float(sum(c for w, c in zip(weights.w_jury.values(), juror_cost) if w > 0))
    for i, a in enumerate(agents):
        row[f"share {a}"] = float((ev.chosen == i).mean())
    return row


def fit_all(cost, entropy, jury, passed, exec_cost, jurors, lam, juror_cost, time_limit_s: float):
    """Every fit of FITS on these tasks: (file name, overhead-aware, FitResult)."""
    from sale.auction.weights import fit_weights

    for name, objective, worst_case, overhead in FITS:
        yield (
            name,
            overhead,
            fit_weights(
                cost,
                entropy,
                jury,
                passed,
                exec_cost,
                jurors,
                lam=lam,
                objective=objective,
                worst_case=worst_case,
                time_limit_s=time_limit_s,
                juror_cost=juror_cost if overhead else None,
            ),
        )


def _markdown(table: pd.DataFrame) -> str:
    """The table with blank cells where a row has no value (tabulate leaves None blank but prints NaN)."""
    return table.astype(object).where(table.notna(), None).to_markdown(index=False, floatfmt=".3g", missingval="")


def cross_validate(
    cost,
    entropy,
    jury,
    passed,
    exec_cost,
    jurors,
    agents,
    lam,
    juror_cost,
    folds: int,
    repeats: int,
    time_limit_s: float,
    seed: int = 0,
) -> pd.DataFrame:
    """Each fit of FITS refitted on (folds - 1) / folds of the train tasks and scored on the rest, over `repeats`
    random splits: what the weights do on tasks they were not fitted on, measured without the test split."""
    from sale.auction.weights import Weights, evaluate

    rng = np.random.default_rng(seed)
    n = len(passed)
    folds = min(folds, n)
    on = lambda idx: (cost[idx], entropy[idx], jury[idx], passed[idx], exec_cost[idx])  # noqa: E731
    rows = []
    for repeat in range(repeats):
        for held in np.array_split(rng.permutation(n), folds):
            seen = np.setdiff1d(np.arange(n), held)
            candidates = [("default", Weights.default(jurors))] + [
                (f"fit {name}", result.weights)
                for name, _, result in fit_all(*on(seen), jurors, lam, juror_cost, time_limit_s)
            ]
            for name, weights in candidates:
                ev = evaluate(weights, *on(held), lam)
                rows.append(
                    {
                        "weights": name,
                        "repeat": repeat,
                        "held-out pass@1": ev.pass_rate,
                        "fitted-on pass@1": evaluate(weights, *on(seen), lam).pass_rate,
                        "held-out mean loss": ev.mean_loss,
                        **{f"share {a}": float((ev.chosen == i).mean()) for i, a in enumerate(agents)},
                    }
                )
    table = pd.DataFrame(rows).groupby("weights", sort=False).mean().drop(columns="repeat").reset_index()
    largest = len(agents) - 1
    alone = passed[:, largest].mean()
    return pd.concat(
        [
            table,
            pd.DataFrame(
                [
                    {
                        "weights": f"only {agents[largest]}",
                        "held-out pass@1": alone,
                        "fitted-on pass@1": alone,
                        "held-out mean loss": None,
                        **{f"share {a}": float(i == largest) for i, a in enumerate(agents)},
                    }
                ]
            ),
        ],
        ignore_index=True,
    )


def train_features(cfg: DictConfig, pool) -> pd.DataFrame:
    """Steps 1-2 of docs/method.md §4: the train tasks every agent ran (fit.train_run), each bid's features and every
    juror's rating (collect_features), joined to each agent's outcome and execution cost there."""
    from sale.harness.runlog import load_logs
    from sale.llm.cache import open_cache
    from sale.tasks import load_tasks

    train = load_logs(cfg.fit.train_run)["results"]
    if train.empty:
        raise FileNotFoundError(
            f"fit.train_run={cfg.fit.train_run!r} has no results.parquet; run every agent on "
            "the train split first: python -m sale.run experiment=scaling tasks.split=train"
        )
    train = train[train["arm"].isin(pool.names)]
    complete = train.groupby("task_id")["agent"].nunique() == len(pool.names)
    task_ids = set(complete[complete].index)
    if not task_ids:
        raise ValueError(f"{cfg.fit.train_run} has no task that every agent of pool {pool.name} ran")
    if (train["split"] != "train").any():
        raise ValueError(f"{cfg.fit.train_run} holds non-train tasks; fit on the train split only")
    all_train = {
        t.id: t
        for t in load_tasks(
            {
                **cast(dict, OmegaConf.to_container(cfg.tasks, resolve=True)),
                "split": "train",
                "per_bin": None,
                "bins": None,
            }
        )
    }
    tasks = [all_train[i] for i in sorted(task_ids)]
    print(f"[sale.fit] {len(tasks)} train tasks with outcomes for every agent ({cfg.fit.train_run}); pool {pool.name}")

    cache = open_cache(cfg)
    features = collect_features(cfg, pool, tasks, cache)
    outcomes = train[["task_id", "agent", "passed", "exec_cost_usd"]].drop_duplicates(["task_id", "agent"])
    features = features.merge(outcomes, on=["task_id", "agent"], how="left", validate="one_to_one")
    features["passed"] = features["passed"].astype(float)
    return features


def fit(cfg: DictConfig) -> Path:
    from sale.auction.sale import jurors_for
    from sale.auction.weights import Weights
    from sale.llm import Pool

    pool = Pool.from_config(cfg.pool)
    out = Path(cfg.fit.out_dir)
    if cfg.fit.get("reuse_features"):
        features = pd.read_parquet(out / "features.parquet")
        print(
            f"[sale.fit] {features['task_id'].nunique()} train tasks from {out / 'features.parquet'} "
            "(fit.reuse_features: no model call)"
        )
    else:
        features = train_features(cfg, pool)
        out.mkdir(parents=True, exist_ok=True)
        features.to_parquet(out / "features.parquet", index=False)
    n_tasks = features["task_id"].nunique()

    jurors = jurors_for(cfg.auction, pool.names)
    lam = float(cfg.auction.weights.lam)
    _, cost, entropy, jury, passed, exec_cost = arrays(features, pool.names, jurors)
    juror_cost, juror_cost_source = juror_costs(features, jurors, cfg.fit.get("juror_cost_run"))
    table = [
        choice_table(
            "default", Weights.default(jurors), cost, entropy, jury, passed, exec_cost, lam, pool.names, juror_cost
        )
    ]
    for i in (0, len(pool.names) - 1):  # the cheapest and the largest agent alone, for reference
        table.append(
            {
                "weights": f"only {pool.names[i]}",
                "pass@1": passed[:, i].mean(),
                "exec $/task": exec_cost[:, i].mean(),
                **{f"share {a}": float(a == pool.names[i]) for a in pool.names},
            }
        )
    oracle = np.where(passed.any(axis=1), passed.argmax(axis=1), len(pool.names) - 1)  # cheapest that passes
    rows = np.arange(len(oracle))
    table.append(
        {
            "weights": "oracle",
            "pass@1": passed[rows, oracle].mean(),
            "exec $/task": exec_cost[rows, oracle].mean(),
            **{f"share {a}": float((oracle == i).mean()) for i, a in enumerate(pool.names)},
        }
    )
    for name, overhead, result in fit_all(
        cost, entropy, jury, passed, exec_cost, jurors, lam, juror_cost, float(cfg.fit.time_limit_s)
    ):
        result.weights.provenance.update(
            train_run=str(cfg.fit.train_run), pool=pool.name, bid_max_tokens=int(cfg.auction.bid_max_tokens)
        )
        if overhead:
            result.weights.provenance["juror_cost_source"] = juror_cost_source
        result.weights.save(out / f"{name}.json")
        table.append(
            choice_table(
                f"fit {name} ({result.status})",
                result.weights,
                cost,
                entropy,
                jury,
                passed,
                exec_cost,
                lam,
                pool.names,
                juror_cost,
            )
        )
    report = pd.DataFrame(table)
    folds, repeats = int(cfg.fit.get("cv_folds") or 0), int(cfg.fit.get("cv_repeats") or 0)
    cv_text = ""
    if folds > 1 and repeats > 0:
        print(f"[sale.fit] cross-validation within train: {folds} folds x {repeats} repeats")
        cv = cross_validate(
            cost,
            entropy,
            jury,
            passed,
            exec_cost,
            jurors,
            pool.names,
            lam,
            juror_cost,
            folds,
            repeats,
            float(cfg.fit.time_limit_s),
        )
        cv_text = (
            f"\n## On train tasks the fit did not see\n\nEach fit refitted on {folds - 1} of {folds} folds "
            f"of the {n_tasks} train tasks and scored on the fold left out, averaged over the folds and "
            f"{repeats} random splits (fit.cv_folds, fit.cv_repeats). `fitted-on pass@1` is the same "
            f"weights on the tasks they were fitted on: the gap between the two is how much the fit "
            f"overfits. The test split is not used.\n\n"
            f"{_markdown(cv)}\n"
        )
    costs = ", ".join(f"{j} {c:.3g}" for j, c in zip(jurors, juror_cost))
    text = (
        f"# Weight fit on {n_tasks} train tasks ({cfg.fit.train_run}, pool {pool.name})\n\n"
        f"Loss per task: (1 - passed) + {lam} * exec cost / max exec cost. `only <agent>` rows are that agent "
        f"alone, for reference. `jury $/task`: what the jurors a weight vector consults (weight > 0) cost per "
        f"task; each juror's mean $ per task ({juror_cost_source}): {costs}. The overhead-aware fit adds "
        f"{lam} * that / max exec cost to every task's loss for each juror it keeps; its mean and max loss "
        f"below leave that out, as the other rows have none.\n\n"
        f"{_markdown(report)}\n{cv_text}"
    )
    (out / "fit.md").write_text(text)
    print(text)
    names = ", ".join(f"{name}.json" for name, *_ in FITS)
    print(f"[sale.fit] weights in {out}: {names}; e.g. auction.weights.path={out}/minmax.json")
    return out


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    from sale.llm import LLMError

    try:
        fit(cfg)
    except (LLMError, ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
