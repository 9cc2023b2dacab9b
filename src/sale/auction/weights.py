"""The auction's weights: the bid score C − V, its default weights, and the min-max MILP fit (docs/method.md §3–§4).

A bid of agent i for task t has three kinds of features:

- cost c: ``cost_feature(price, max_price, bid_tokens, bid_cap)`` = price / max_price · bid_tokens / bid_cap,
  in [0, 1]. docs/method.md §3 (step 2) writes C = w_c · π · |s|; we divide π by the pool's largest price and |s| by the
  bid cap B **(our choice)**. Inside one pool that is a constant rescaling, which a fitted w_c absorbs
  (the fit reaches the same auction rules either way), but it puts cost on the same footing in every pool:
  raw π·|s| is ≈ 2 for a 1.5B model and ≈ 46 for Qwen3-32B at 128 tokens, so raw-scale weights would not
  transfer between pools;
- entropy h: mean per-token entropy of the bid in nats (≈ 0.3–2);
- jury γ_j: the expected 0–5 score juror j gives the plan.

score = w_c · c − (w_h · h + Σ_j w_j · γ_j), lower wins, ties go to the cheaper agent (lower index;
agents are ordered by price). Entropy enters the value V with a positive sign, as in docs/method.md §3 (step 4).

Everything here is linear in w = (w_c, w_h, w_1 … w_J): score = features · w with
features = (c, −h, −γ_1 … −γ_J). Arrays are indexed [task, agent] and [task, agent, juror]; the juror
axis follows the order of ``juror_names`` / ``Weights.w_jury``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

OBJECTIVES = ("minmax", "mean")

# Default weights (used when no fit exists, docs/method.md §4 and §7). They sum to 1 like a fitted vector.
# With the normalised cost feature, the cost gap between the cheapest and the largest agent is ≈ 0.6–0.9
# for a full-length bid (Qwen3 pool 0.14 vs 1.0; cpu pool 0.09 vs 1.0). At w_c = 0.3 that gap is worth
# ≈ 0.2–0.27 of score, and the jury (0.6 in total, split equally, so it acts on the mean jury score) turns
# that into ≈ 0.33–0.45 of a point on the 0–5 scale: a cheap agent wins unless the jury rates the
# expensive plan clearly better. Entropy gets 0.1: docs/method.md §3 counts it as value, but its direction as a
# signal of plan quality is the least certain of the three, so its swing (≈ 0.1 · 0.5–1 nat) stays
# below the cost and jury terms.
DEFAULT_W_COST = 0.3
DEFAULT_W_ENTROPY = 0.1
DEFAULT_W_JURY_TOTAL = 0.6

# Default strictness of the fitted argmin, see fit_weights.
DEFAULT_MARGIN = 1e-4


def cost_feature(price, max_price, bid_tokens, bid_cap):
    """The cost feature of a bid: price / max_price · bid_tokens / bid_cap (in [0, 1]; arrays broadcast)."""
    if not max_price > 0 or not bid_cap > 0:
        raise ValueError(f"max_price and bid_cap must be positive, got max_price={max_price}, bid_cap={bid_cap}")
    return np.asarray(price, dtype=float) / max_price * np.asarray(bid_tokens, dtype=float) / bid_cap


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Weights:
    w_cost: float
    w_entropy: float
    w_jury: dict[str, float]
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        self.w_cost = float(self.w_cost)
        self.w_entropy = float(self.w_entropy)
        self.w_jury = {str(name): float(w) for name, w in self.w_jury.items()}
        for name, w in [("w_cost", self.w_cost), ("w_entropy", self.w_entropy), *self.w_jury.items()]:
            if not math.isfinite(w) or w < 0:
                raise ValueError(f"weight {name!r} must be finite and >= 0, got {w}")

    @classmethod
    def default(cls, juror_names) -> Weights:
        """Documented defaults (see DEFAULT_W_* above): 0.3 cost, 0.1 entropy, 0.6 split equally over jurors."""
        juror_names = list(juror_names)
        if not juror_names:
            raise ValueError("default weights need at least one juror")
        if len(set(juror_names)) != len(juror_names):
            raise ValueError(f"juror names must be unique, got {juror_names}")
        share = DEFAULT_W_JURY_TOTAL / len(juror_names)
        return cls(
            DEFAULT_W_COST,
            DEFAULT_W_ENTROPY,
            {name: share for name in juror_names},
            provenance={"source": "default", "created_at": _now()},
        )

    @property
    def juror_names(self) -> list[str]:
        return list(self.w_jury)

    def vector(self) -> np.ndarray:
        """w = (w_c, w_h, w_1 … w_J), in the order of features()."""
        return np.array([self.w_cost, self.w_entropy, *self.w_jury.values()])

    def idle_jurors(self, jurors) -> list[str]:
        """The jurors among `jurors` whose weight is 0. Their ratings add nothing to any bid's value (the jury term
        is rescaled over the weight of the jurors who rated, see jury_value), so the auction does not consult them:
        no call, no cost, and every value is what a full jury gives."""
        return [j for j in jurors if self.w_jury.get(j, 0.0) == 0]

    def jury_value(self, ratings: dict[str, float]) -> float | None:
        """The jury term Σ_j w_j·γ_j of a bid rated by the jurors in `ratings`, rescaled to the jury's total
        weight Σ_j w_j over the jurors who rated it (so a subset of jurors, e.g. the largest agent alone, keeps the
        jury's weight). None when no juror with weight > 0 rated it: the ratings say nothing (the auction imputes a
        bidder's own rating without self-evaluation, sale.auction.bids.impute_own_ratings, so this is rare)."""
        weighted = {j: self.w_jury.get(j, 0.0) for j in ratings}
        mass = sum(weighted.values())
        if mass <= 0:
            return None
        return sum(w * ratings[j] for j, w in weighted.items()) * sum(self.w_jury.values()) / mass

    def score(self, cost: float, entropy: float, jury: dict[str, float]) -> float:
        """The bid score C − V of one bid; lower wins."""
        if set(jury) != set(self.w_jury):
            raise ValueError(f"jury scores are for {sorted(jury)}, weights are for {sorted(self.w_jury)}")
        value = self.w_entropy * entropy + sum(w * jury[name] for name, w in self.w_jury.items())
        return self.w_cost * cost - value

    def to_dict(self) -> dict:
        return {
            "w_cost": self.w_cost,
            "w_entropy": self.w_entropy,
            "w_jury": dict(self.w_jury),
            "provenance": dict(self.provenance),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Weights:
        missing = {"w_cost", "w_entropy", "w_jury"} - set(data)
        if missing:
            raise ValueError(f"weights file lacks {sorted(missing)}")
        return cls(data["w_cost"], data["w_entropy"], data["w_jury"], dict(data.get("provenance", {})))

    def save(self, path) -> None:
        data = self.to_dict()
        data["provenance"]["saved_at"] = _now()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, path) -> Weights:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _check_finite(name: str, array: np.ndarray) -> None:
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")


def _check_features(cost, entropy, jury, n_jurors: int | None = None):
    cost = np.asarray(cost, dtype=float)
    entropy = np.asarray(entropy, dtype=float)
    jury = np.asarray(jury, dtype=float)
    if cost.ndim != 2 or cost.size == 0:
        raise ValueError(f"cost must be a non-empty [tasks, agents] array, got shape {cost.shape}")
    if entropy.shape != cost.shape:
        raise ValueError(f"entropy has shape {entropy.shape}, cost has {cost.shape}; they must match")
    if jury.ndim != 3 or jury.shape[:2] != cost.shape:
        raise ValueError(f"jury must have shape [tasks, agents, jurors] = {cost.shape + ('J',)}, got {jury.shape}")
    if n_jurors is not None and jury.shape[2] != n_jurors:
        raise ValueError(f"jury has {jury.shape[2]} jurors, the weights have {n_jurors}")
    for name, array in [("cost", cost), ("entropy", entropy), ("jury", jury)]:
        _check_finite(name, array)
    return cost, entropy, jury


def _check_outcomes(passed, exec_cost, shape, lam: float):
    passed = np.asarray(passed, dtype=float)
    exec_cost = np.asarray(exec_cost, dtype=float)
    for name, array in [("passed", passed), ("exec_cost", exec_cost)]:
        if array.shape != shape:
            raise ValueError(f"{name} has shape {array.shape}, cost has {shape}; they must match")
        _check_finite(name, array)
    if not np.all((passed == 0) | (passed == 1)):
        raise ValueError("passed must hold only 0 and 1")
    if np.any(exec_cost < 0):
        raise ValueError("exec_cost must be >= 0")
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be finite and >= 0, got {lam}")
    return passed, exec_cost


def features(cost, entropy, jury) -> np.ndarray:
    """[tasks, agents, 2 + jurors] features (c, −h, −γ_1 … −γ_J), so that score = features @ w."""
    cost, entropy, jury = _check_features(cost, entropy, jury)
    return np.concatenate([cost[..., None], -entropy[..., None], -jury], axis=2)


def losses(passed, exec_cost, lam: float = 0.5) -> np.ndarray:
    """Per-(task, agent) loss ℓ = (1 − y) + λ · exec_cost / max(exec_cost)."""
    passed = np.asarray(passed, dtype=float)
    exec_cost = np.asarray(exec_cost, dtype=float)
    passed, exec_cost = _check_outcomes(passed, exec_cost, passed.shape, lam)
    top = exec_cost.max() if exec_cost.size else 0.0
    scaled = exec_cost / top if top > 0 else np.zeros_like(exec_cost)
    return (1 - passed) + lam * scaled


def choose(weights: Weights, cost, entropy, jury) -> np.ndarray:
    """The winning agent per task: argmin of C − V, ties to the lower index (the cheaper agent)."""
    cost, entropy, jury = _check_features(cost, entropy, jury, n_jurors=len(weights.w_jury))
    scores = features(cost, entropy, jury) @ weights.vector()
    return np.argmin(scores, axis=1)  # np.argmin returns the first minimiser


@dataclass
class Evaluation:
    chosen: np.ndarray
    pass_rate: float
    mean_loss: float
    max_loss: float


def evaluate(weights: Weights, cost, entropy, jury, passed, exec_cost, lam: float = 0.5) -> Evaluation:
    """Run the score rule with `weights` on every task and report what the chosen agents achieve.

    Losses are normalised by the largest exec_cost of the arrays given, as in the fit.
    """
    chosen = choose(weights, cost, entropy, jury)
    loss = losses(passed, exec_cost, lam)
    if loss.shape != np.shape(cost):
        raise ValueError(f"passed/exec_cost have shape {loss.shape}, cost has {np.shape(cost)}; they must match")
    rows = np.arange(len(chosen))
    picked = loss[rows, chosen]
    return Evaluation(chosen, float(np.asarray(passed)[rows, chosen].mean()), float(picked.mean()), float(picked.max()))


@dataclass
class FitResult:
    weights: Weights
    chosen: np.ndarray
    objective_value: float
    status: str
    mean_loss: float
    max_loss: float


def _argmin_rows(feats: np.ndarray, margin: float, big_m: float | None):
    """Big-M rows  Σ_k w_k·(f_ti − f_tj)_k + M_tij·x_ti ≤ M_tij − δ_tij  for every task t and i ≠ j.

    Big-M: w lies on the simplex, so w·d ≤ max_k d_k for any difference vector d. With x_ti = 0 the row
    reads w·d ≤ M − δ, so M_tij = max_k d_k + δ is valid and the tightest such bound (the paper's single
    M = largest absolute feature difference bounds every one of them at δ = 0); a row whose max_k d_k + δ ≤ 0
    always holds and is dropped. A user `big_m` replaces every M_tij and must be at least the largest. δ_tij is
    the margin, except 0 when i < j and the two bids have identical features: then the tie already goes to the
    cheaper i at prediction time.
    """
    from scipy import sparse

    n_tasks, n_agents, n_weights = feats.shape
    diff = feats[:, :, None, :] - feats[:, None, :, :]  # [t, i, j, k] = f_ti − f_tj
    agent = np.arange(n_agents)
    identical_towards_dearer = (agent[:, None] < agent[None, :]) & ~diff.any(axis=3)
    delta = np.where(identical_towards_dearer, 0.0, margin)
    worst = diff.max(axis=3) + delta
    t, i, j = np.nonzero((worst > 0) & (agent[:, None] != agent[None, :]))
    needed = float(worst[t, i, j].max(initial=0.0))
    if big_m is not None and big_m < needed:
        raise ValueError(f"big_m={big_m} is too small for this data; the argmin rows need at least {needed:.6g}")
    m = worst[t, i, j] if big_m is None else np.full(len(t), float(big_m))
    n_rows = len(t)
    values = np.column_stack([diff[t, i, j], m]).ravel()
    cols = np.column_stack([np.tile(np.arange(n_weights), (n_rows, 1)), n_weights + t * n_agents + i]).ravel()
    row_ids = np.repeat(np.arange(n_rows), n_weights + 1)
    matrix = sparse.csr_matrix((values, (row_ids, cols)), shape=(n_rows, n_weights + n_tasks * n_agents))
    upper = m - delta[t, i, j]
    return matrix, upper, needed


def _solve(feats, loss, objective, eps, margin, big_m, time_limit_s, bounded=None, juror_loss=None):
    """The MILP over (w, x, u, Q): u (one binary per juror) only when juror_loss is given, Q only for min-max."""
    from scipy import sparse  # the fit alone needs scipy: an auction runs without it
    from scipy.optimize import Bounds, LinearConstraint, milp

    n_tasks, n_agents, n_weights = feats.shape
    n_x = n_tasks * n_agents
    with_q = objective == "minmax"
    n_u = 0 if juror_loss is None else n_weights - 2
    n_vars = n_weights + n_x + n_u + int(with_q)
    u0 = n_weights + n_x  # first use variable

    argmin_matrix, argmin_upper, needed_m = _argmin_rows(feats, margin, big_m)
    argmin_matrix = sparse.hstack([argmin_matrix, sparse.csr_matrix((argmin_matrix.shape[0], n_u + int(with_q)))])

    simplex = np.zeros((1, n_vars))
    simplex[0, :n_weights] = 1
    one_hot = sparse.hstack(
        [
            sparse.csr_matrix((n_tasks, n_weights)),
            sparse.kron(sparse.eye(n_tasks), np.ones((1, n_agents))),
            sparse.csr_matrix((n_tasks, n_u + int(with_q))),
        ]
    )
    constraints = [LinearConstraint(simplex, 1, 1), LinearConstraint(one_hot, 1, 1)]
    if argmin_matrix.shape[0]:
        constraints.append(LinearConstraint(argmin_matrix, -np.inf, argmin_upper))
    penalty = np.zeros(n_vars)  # Σ_j p_j·u_j: what the jurors kept cost on every task, in loss units
    if n_u:
        use = np.zeros((n_u, n_vars))  # w_j − u_j ≤ 0: a juror the fit switches off gets weight 0
        use[np.arange(n_u), 2 + np.arange(n_u)] = 1
        use[np.arange(n_u), u0 + np.arange(n_u)] = -1
        constraints.append(LinearConstraint(use, -np.inf, 0))
        penalty[u0 : u0 + n_u] = juror_loss

    c = np.zeros(n_vars)
    if with_q:
        # z_t + Σ_j p_j·u_j − Q ≤ 0 with z_t = Σ_i ℓ_ti·x_ti for the bounded tasks;
        # objective Q + ε·Σ_t (z_t + Σ_j p_j·u_j) over all tasks.
        task_loss = sparse.hstack(
            [
                sparse.csr_matrix((n_tasks, n_weights)),
                sparse.block_diag([row[None, :] for row in loss]),
                sparse.csr_matrix(np.tile(penalty[u0 : u0 + n_u], (n_tasks, 1))),
                -np.ones((n_tasks, 1)),
            ]
        ).tocsr()
        if bounded is not None:
            task_loss = task_loss[np.flatnonzero(bounded)]
        constraints.append(LinearConstraint(task_loss, -np.inf, 0))
        c[n_weights : n_weights + n_x] = eps * loss.ravel()
        c += eps * n_tasks * penalty
        c[-1] = 1
    else:
        c[n_weights : n_weights + n_x] = loss.ravel() / n_tasks
        c += penalty

    integrality = np.zeros(n_vars)
    integrality[n_weights : n_weights + n_x + n_u] = 1
    upper = np.ones(n_vars)
    if with_q:
        upper[-1] = np.inf
    # A tight gap so that the ε·Σz tie-break (≈ 1e-3 · 0.05 per task) is resolved, not left in the gap.
    result = milp(
        c,
        integrality=integrality,
        bounds=Bounds(np.zeros(n_vars), upper),
        constraints=constraints,
        options={"time_limit": time_limit_s, "mip_rel_gap": 1e-6},
    )
    return result, needed_m


def _check_fit_options(juror_names, objective, eps, margin, time_limit_s) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if len(set(juror_names)) != len(juror_names):
        raise ValueError(f"juror names must be unique, got {juror_names}")
    if not (eps >= 0 and margin >= 0 and time_limit_s > 0):
        raise ValueError(f"eps and margin must be >= 0 and time_limit_s > 0, got {eps}, {margin}, {time_limit_s}")


WORST_CASE = ("all", "solvable")


def fit_weights(
    cost,
    entropy,
    jury,
    passed,
    exec_cost,
    juror_names,
    lam: float = 0.5,
    objective: str = "minmax",
    eps: float = 1e-3,
    big_m: float | None = None,
    time_limit_s: float = 60,
    margin: float = DEFAULT_MARGIN,
    worst_case: str = "all",
    juror_cost=None,
) -> FitResult:
    """Fit w = (w_c, w_h, w_1 … w_J) by the mixed-integer program of docs/method.md §4 (scipy.optimize.milp, HiGHS).

    cost[T,N] is cost_feature(...) of each bid, entropy[T,N] its entropy, jury[T,N,J] the jurors' scores in
    the order of juror_names; passed[T,N] (0/1) and exec_cost[T,N] come from running every agent to
    completion. Agents are ordered by price, index 0 the cheapest.

    objective="minmax" minimises Q + ε·Σ_t z_t with z_t ≤ Q; "mean" minimises (1/T)·Σ_t z_t.

    margin: the paper's argmin rows (docs/method.md §4) let x pick any minimiser, including one that loses the
    tie-break at prediction time, so a fit could claim a choice the auction will not make. With margin δ > 0 (our
    choice, default 1e-4, small next to score gaps of order 0.01–1) the chosen agent must beat every other
    bid by δ, which makes x the unique argmin of choose(); identical bids are exempt towards a more
    expensive twin. If no w achieves that (near-identical bids), the fit is redone with δ = 0 and the
    status says so. margin=0 is the paper's constraint as written.

    worst_case (min-max only): "all" bounds every task's loss by Q, as docs/method.md §4 writes it. "solvable" (our
    option) bounds only the tasks some agent passes; the others still count in the ε·Σ_t z_t term. Why: on a task
    no agent solves, every choice loses 1 and the loss differs only by cost, so when such tasks exist Q is set by
    them and the fit must route every one of them to its cheapest agent — with small models, where many tasks
    are unsolvable, that pins the weights to "always the cheapest".

    juror_cost[J] (our extension beyond the paper, the overhead-aware fit): each juror's measured mean $ per task
    for rating a task's bids. Given it, the MILP gets one binary use variable u_j per juror with w_j ≤ u_j, and
    every juror it keeps adds p_j = λ · juror_cost_j / max exec_cost to every task's loss (the loss's own cost
    scale): z_t + Σ_j p_j·u_j ≤ Q for min-max, (1/T)·Σ_t z_t + Σ_j p_j·u_j for the mean. A juror stays only if its
    ratings are worth its price; one switched off gets weight exactly 0, and the auction then does not consult it
    (Weights.idle_jurors). mean_loss and max_loss include the kept jurors' p_j.
    """
    juror_names = list(juror_names)
    _check_fit_options(juror_names, objective, eps, margin, time_limit_s)
    if worst_case not in WORST_CASE:
        raise ValueError(f"worst_case must be one of {WORST_CASE}, got {worst_case!r}")
    cost, entropy, jury = _check_features(cost, entropy, jury, n_jurors=len(juror_names))
    passed, exec_cost = _check_outcomes(passed, exec_cost, cost.shape, lam)
    feats = features(cost, entropy, jury)
    loss = losses(passed, exec_cost, lam)
    bounded = passed.any(axis=1) if worst_case == "solvable" else None
    juror_loss = None
    if juror_cost is not None:
        juror_cost = np.asarray(juror_cost, dtype=float)
        if juror_cost.shape != (len(juror_names),) or not np.all(np.isfinite(juror_cost)) or np.any(juror_cost < 0):
            raise ValueError(f"juror_cost must hold one finite $ >= 0 per juror ({len(juror_names)}), got {juror_cost}")
        top = exec_cost.max()
        juror_loss = lam * juror_cost / top if top > 0 else np.zeros_like(juror_cost)

    result, needed_m = _solve(feats, loss, objective, eps, margin, big_m, time_limit_s, bounded, juror_loss)
    note = ""
    if result.status == 2 and margin > 0:
        note = f" (margin {margin} infeasible, refitted with margin 0)"
        margin = 0.0
        result, needed_m = _solve(feats, loss, objective, eps, margin, big_m, time_limit_s, bounded, juror_loss)
    if result.x is None or result.status not in (0, 1):
        raise RuntimeError(f"weight fit found no solution: {result.message}")
    status = ("optimal" if result.status == 0 else f"not proven optimal: {result.message}") + note

    n_tasks, n_agents, n_weights = feats.shape
    w = np.clip(result.x[:n_weights], 0, None)
    n_x = n_tasks * n_agents
    kept_loss = 0.0
    if juror_loss is not None:
        used = result.x[n_weights + n_x : n_weights + n_x + len(juror_names)] > 0.5
        w[2:][~used] = 0.0  # switched off: exactly 0, so the auction does not consult it
        used &= w[2:] > 0
        kept_loss = float(juror_loss[used].sum())
    w = w / w.sum()
    chosen = result.x[n_weights : n_weights + n_x].reshape(n_tasks, n_agents).argmax(axis=1)
    picked = loss[np.arange(n_tasks), chosen] + kept_loss
    provenance = {
        "source": "fit",
        "objective": objective,
        "worst_case": worst_case,
        "lambda": lam,
        "eps": eps,
        "margin": margin,
        "big_m": big_m if big_m is not None else needed_m,
        "n_tasks": n_tasks,
        "n_agents": n_agents,
        "status": status,
        "objective_value": float(result.fun),
        "mean_loss": float(picked.mean()),
        "max_loss": float(picked.max()),
        "created_at": _now(),
    }
    if juror_loss is not None:
        provenance.update(
            overhead_aware=True,
            juror_cost_usd=dict(zip(juror_names, map(float, juror_cost))),
            juror_loss=dict(zip(juror_names, map(float, juror_loss))),
            jurors_kept=[j for j, keep in zip(juror_names, used) if keep],
        )
    weights = Weights(w[0], w[1], dict(zip(juror_names, w[2:])), provenance)
    return FitResult(weights, chosen, float(result.fun), status, float(picked.mean()), float(picked.max()))
