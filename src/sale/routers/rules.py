"""Decision rules that turn predicted success probabilities P[t, a] into one agent per task
(docs/method.md §5), and sweeps over their parameter to trace a cost-quality curve.

Agents are indexed in price order (0 = cheapest, last = largest); the rules also take the
prices or mean costs, and order by them, so they stay correct for any indexing.
"""

import numpy as np


def cheapest_above(P, prices, theta: float) -> np.ndarray:
    """Per task, the cheapest agent with p̂_a ≥ θ; if none qualifies, the most expensive agent.
    Returns agent indices, shape [tasks]."""
    P = np.asarray(P, dtype=float)
    by_price = np.argsort(np.asarray(prices, dtype=float), kind="stable")
    ok = P[:, by_price] >= theta
    first_ok = by_price[ok.argmax(axis=1)]
    return np.where(ok.any(axis=1), first_ok, by_price[-1])


def willingness_to_pay(P, mean_cost, lam: float) -> np.ndarray:
    """Per task, argmax_a λ·p̂_a − c̄_a, where c̄_a is agent a's mean cost per task ($) and λ is
    the value of a success in $. Exact ties go to the cheaper agent. λ = 0 picks the
    cheapest agent; a huge λ picks the most likely to succeed. Returns indices, shape [tasks]."""
    P = np.asarray(P, dtype=float)
    mean_cost = np.asarray(mean_cost, dtype=float)
    by_cost = np.argsort(mean_cost, kind="stable")
    utility = lam * P[:, by_cost] - mean_cost[by_cost]
    return by_cost[utility.argmax(axis=1)]  # argmax returns the first, i.e. cheapest, maximiser


def default_thetas(n: int = 21) -> np.ndarray:
    """θ grid over [0, 1]."""
    return np.linspace(0.0, 1.0, n)


def default_lambdas(mean_cost, n: int = 25) -> np.ndarray:
    """λ grid: 0, then geometric from 1e-2 to 1e3 × the largest mean cost, so that it spans
    "always cheapest" to "always the most likely to succeed"."""
    top = float(np.max(mean_cost))
    return np.concatenate([[0.0], np.geomspace(1e-2 * top, 1e3 * top, n - 1)])


def sweep_theta(P, prices, thetas=None) -> np.ndarray:
    """`cheapest_above` for each θ: chosen agents, shape [len(thetas), tasks]."""
    thetas = default_thetas() if thetas is None else thetas
    return np.stack([cheapest_above(P, prices, theta) for theta in thetas])


def sweep_lambda(P, mean_cost, lams=None) -> np.ndarray:
    """`willingness_to_pay` for each λ: chosen agents, shape [len(lams), tasks]."""
    lams = default_lambdas(mean_cost) if lams is None else lams
    return np.stack([willingness_to_pay(P, mean_cost, lam) for lam in lams])


def outcomes(choices, Y, cost) -> dict[str, np.ndarray]:
    """Score chosen agents against the true outcome matrix Y[t, a] and cost matrix cost[t, a]
    of the evaluation tasks. `choices` is [tasks] or a sweep [settings, tasks]. Returns
    pass@1, $ per task and the largest agent's share (last index) per setting."""
    choices = np.atleast_2d(choices)
    Y, cost = np.asarray(Y, dtype=float), np.asarray(cost, dtype=float)
    tasks = np.arange(Y.shape[0])
    return {
        "pass_at_1": Y[tasks, choices].mean(axis=1),
        "cost_per_task": cost[tasks, choices].mean(axis=1),
        "largest_share": (choices == Y.shape[1] - 1).mean(axis=1),
    }
