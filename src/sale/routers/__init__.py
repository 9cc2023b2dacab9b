"""Routers that see only the task description (docs/method.md §5): kNN and multi-label classifier
predictors of per-agent success, and the decision rules that pick an agent from them."""

from sale.routers.knn import KNNRouter
from sale.routers.mlc import MLCRouter
from sale.routers.rules import (
    cheapest_above,
    default_lambdas,
    default_thetas,
    outcomes,
    sweep_lambda,
    sweep_theta,
    willingness_to_pay,
)

__all__ = [
    "KNNRouter",
    "MLCRouter",
    "cheapest_above",
    "willingness_to_pay",
    "sweep_theta",
    "sweep_lambda",
    "default_thetas",
    "default_lambdas",
    "outcomes",
]
