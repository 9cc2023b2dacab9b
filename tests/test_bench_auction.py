"""The auction-overhead benchmark's shares on a hand-made log with known answers."""

import pandas as pd
import pytest

from sale.analysis import tables


def test_overhead_shares_per_bin_domain_and_order():
    results = pd.DataFrame(
        [
            {"arm": "sale", "order": o, "task_id": t, "domain": d, "bin": b}
            for o in (0, 1)
            for t, d, b in [("c1", "coding", 1), ("s5", "search", 5)]
        ]
    )
    calls = []
    for o in (0, 1):
        # coding: auction 30 of 100 tokens in order 0, 10 of 100 in order 1; search: auction 50 of 200 both times
        calls += [
            {
                "arm": "sale",
                "order": o,
                "task_id": "c1",
                "phase": "bid",
                "tokens": 30 - 20 * o,
                "cost_usd": 1.0,
                "latency_s": 1.0,
            },
            {
                "arm": "sale",
                "order": o,
                "task_id": "c1",
                "phase": "execute",
                "tokens": 70 + 20 * o,
                "cost_usd": 3.0,
                "latency_s": 1.0,
            },
            {
                "arm": "sale",
                "order": o,
                "task_id": "s5",
                "phase": "jury",
                "tokens": 50,
                "cost_usd": 1.0,
                "latency_s": 3.0,
            },
            {
                "arm": "sale",
                "order": o,
                "task_id": "s5",
                "phase": "execute",
                "tokens": 150,
                "cost_usd": 1.0,
                "latency_s": 1.0,
            },
        ]
    per_order = tables.overhead_by_order(pd.DataFrame(calls), results)
    coding = per_order[(per_order["scope"] == "domain") & (per_order["domain"] == "coding")].set_index("order")
    assert coding.loc[0, "tokens_share"] == pytest.approx(0.3) and coding.loc[1, "tokens_share"] == pytest.approx(0.1)
    overall = per_order[per_order["scope"] == "all"].set_index("order")
    assert overall.loc[0, "tokens_share"] == pytest.approx(80 / 300)
    assert overall.loc[0, "usd_share"] == pytest.approx(2 / 6)
    assert overall.loc[0, "model_s_share"] == pytest.approx(4 / 6)

    table = tables.summarise(per_order).set_index(["domain", "bin"])
    assert table.loc[("coding", "all"), "tokens %"] == "20.0 ± 14.1"  # mean and sample std of 30% and 10%
    assert table.loc[("search", "5"), "tokens %"] == "25.0 ± 0.0"
    assert table.loc[("all", "all"), "orders"] == 2
