"""The report tables (notebooks 02-05) on small hand-made logs whose answers are worked out by hand."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sale import REPO_ROOT
from sale.analysis import counterfactuals, reading, tables

S, L = "small", "large"
TASKS = {"t1": ("coding", 1), "t2": ("coding", 5), "t3": ("search", 1), "t4": ("search", 5)}
COST = {S: 1.0, L: 4.0}  # $ per execution; every row has 1e6 tokens, so $/Mtok = $/task


def rows(method, arm, order, agents, passed, tasks=("t1", "t2", "t3", "t4"), extra_cost=0.0, refined=None):
    out = []
    for position, (t, agent, p) in enumerate(zip(tasks, agents, passed)):
        domain, b = TASKS.get(t, ("coding", 1))
        out.append(
            {
                "method": method,
                "arm": arm,
                "order": order,
                "position": position,
                "task_id": t,
                "domain": domain,
                "bin": b,
                "agent": agent,
                "passed": bool(p),
                "tokens": 1e6,
                "cost_usd": COST[agent] + extra_cost,
                "auction_tokens": 0.0,
                "winner_refined": None if refined is None else refined[position],
            }
        )
    return out


@pytest.fixture
def runs():
    single = pd.DataFrame(rows("single", S, 0, [S] * 4, [1, 0, 1, 0]) + rows("single", L, 0, [L] * 4, [1, 1, 1, 0]))
    # SALE, two orders: 3/4 then 4/4 passed; half the executions by the largest; 1 $ of auction per task
    sale = pd.DataFrame(
        rows("sale", "sale", 0, [S, L, S, L], [1, 1, 1, 0], extra_cost=1.0)
        + rows("sale", "sale", 1, [S, L, S, L], [1, 1, 1, 1], extra_cost=1.0)
    )
    knn = pd.DataFrame(
        rows("knn", "knn:theta=0.2", 0, [S] * 4, [1, 0, 1, 0]) + rows("knn", "knn:theta=0.8", 0, [L] * 4, [1, 1, 1, 0])
    )
    return {"single": single, "knn": knn, "sale": sale}


def test_comparison_table_by_hand(runs):
    table = tables.comparison_table(runs, L).set_index("arm")
    sale = table.loc["sale"]
    assert sale["tasks"] == 4 and sale["orders"] == 2
    assert sale["pass@1"] == pytest.approx(7 / 8)
    assert sale["pass@1 std"] == pytest.approx(np.std([0.75, 1.0], ddof=1))
    assert sale["bin 1"] == 1.0 and sale["bin 5"] == pytest.approx(3 / 4)
    assert sale["$/task"] == pytest.approx(3.5) and sale["$/Mtok"] == pytest.approx(3.5)
    assert sale["largest share"] == 0.5
    # against the largest alone (pass 3/4, 4 $ per task): per-task SALE means 1, 1, 1, 0.5
    assert sale["Δpass@1"] == pytest.approx(7 / 8 - 3 / 4)
    assert sale["cost rel."] == pytest.approx(14 / 16)
    assert sale["beats largest"] and sale["cuts cost"]
    small = table.loc[S]
    assert small["Δpass@1"] == pytest.approx(-0.25) and small["cost rel."] == pytest.approx(0.25)
    assert not small["beats largest"] and small["cuts cost"]
    assert table.loc[L, "Δpass@1"] == 0 and not table.loc[L, "cuts cost"]
    # the kNN sweep: (1 $, 0.5) to (4 $, 0.75), a straight hull averaging 0.625 over its cost range
    assert table.loc["knn:theta=0.2", "AIQ"] == pytest.approx(0.625)
    assert table.loc["knn:theta=0.8", "AIQ"] == pytest.approx(0.625)
    assert np.isnan(sale["AIQ"]) and np.isnan(small["AIQ"])
    # RouteLLM's measures: weak = the small agent alone (0.5), strong = the largest alone (0.75)
    assert small["PGR"] == 0 and table.loc[L, "PGR"] == 1 and sale["PGR"] == pytest.approx((7 / 8 - 0.5) / 0.25)
    # the kNN sweep: PGR 0 at share 0, 1 at share 1: APGR 0.5, half the gap first recovered at share 0.5
    assert table.loc["knn:theta=0.2", "APGR"] == pytest.approx(0.5)
    assert table.loc["knn:theta=0.8", "CPT(50%)"] == pytest.approx(0.5)
    assert np.isnan(sale["APGR"]) and np.isnan(sale["CPT(50%)"])
    shown = tables.format_comparison(tables.comparison_table(runs, L)).set_index("arm")
    assert shown.loc["knn:theta=0.2", "CPT(50%)"] == "50%" and shown.loc["sale", "PGR"] == "1.50"


def test_comparison_table_without_runs():
    assert tables.comparison_table({}, L).empty
    only_sale = tables.comparison_table({"sale": pd.DataFrame(rows("sale", "sale", 0, [S] * 4, [1] * 4))}, L)
    assert only_sale.loc[0, "common tasks"] == 0 and np.isnan(only_sale.loc[0, "Δpass@1"])


def test_sale_vs_largest_per_domain_and_bin(runs):
    sale = pd.concat([runs["sale"], pd.DataFrame(rows("sale", "sale", 0, [S], [1], tasks=["t9"]))])  # t9: SALE only
    largest = runs["single"][runs["single"]["arm"] == L]
    table = tables.sale_vs_largest(sale, largest, L, n_boot=200).set_index(["domain", "bin"])
    assert list(table.index) == [
        ("coding", "1"),
        ("coding", "5"),
        ("coding", "all"),
        ("search", "1"),
        ("search", "5"),
        ("search", "all"),
        ("all", "all"),
    ]
    overall = table.loc[("all", "all")]
    assert overall["tasks"] == 4 and overall["orders"] == 2  # t9 is dropped: the largest never ran it
    assert overall["largest pass@1"] == pytest.approx(0.75) and overall["SALE pass@1"] == pytest.approx(7 / 8)
    assert overall["SALE std"] == pytest.approx(np.std([0.75, 1.0], ddof=1))
    assert overall["Δpass@1"] == pytest.approx(0.125) and overall["Δ lo"] <= 0.125 <= overall["Δ hi"]
    assert overall["cost rel."] == pytest.approx(14 / 16)
    assert overall["largest $/Mtok"] == pytest.approx(4.0) and overall["SALE $/Mtok"] == pytest.approx(3.5)
    assert overall["SALE largest share"] == 0.5 and overall["reliance reduction"] == 0.5
    hardest_search = table.loc[("search", "5")]  # t4: the largest fails, SALE passes in one order of two
    assert hardest_search["largest pass@1"] == 0 and hardest_search["SALE pass@1"] == 0.5
    assert hardest_search["SALE largest share"] == 1.0 and hardest_search["reliance reduction"] == 0.0
    assert table.loc[("coding", "1"), "SALE $/task"] == pytest.approx(2.0)
    shown = tables.format_sale_vs_largest(table.reset_index()).set_index(["domain", "bin"])
    assert shown.loc[("search", "5"), "Δ [95% CI]"].startswith("+50.0")
    assert shown.loc[("all", "all"), "reliance on largest"] == "50 ± 0%"  # both orders send half to the largest
    assert overall["SALE $/task std"] == 0 and overall["cost rel. std"] == 0


def test_sale_vs_largest_std_over_orders():
    # order 0 sends half the tasks to the largest (2+5+2+5 $), order 1 none (2 $ each); the largest alone: 4 $ each
    sale = pd.DataFrame(
        rows("sale", "sale", 0, [S, L, S, L], [1, 1, 1, 0], extra_cost=1.0)
        + rows("sale", "sale", 1, [S, S, S, S], [1, 0, 1, 0], extra_cost=1.0)
    )
    largest = pd.DataFrame(rows("single", L, 0, [L] * 4, [1, 1, 1, 0]))
    table = tables.sale_vs_largest(sale, largest, L, n_boot=50)
    overall = table.set_index(["domain", "bin"]).loc[("all", "all")]
    assert overall["SALE $/task"] == pytest.approx(2.75)
    assert overall["SALE $/task std"] == pytest.approx(np.std([3.5, 2.0], ddof=1))
    assert overall["SALE $/Mtok std"] == pytest.approx(np.std([3.5, 2.0], ddof=1))
    assert overall["cost rel. std"] == pytest.approx(np.std([14 / 16, 8 / 16], ddof=1))
    assert overall["SALE largest share std"] == pytest.approx(np.std([0.5, 0.0], ddof=1))
    assert overall["reliance reduction std"] == pytest.approx(np.std([0.5, 1.0], ddof=1))
    shown = tables.format_sale_vs_largest(table).iloc[-1]  # the last row is all / all
    assert shown["reliance on largest"] == "25 ± 35%" and shown["cost rel."] == "0.69 ± 0.27"
    one_order = tables.sale_vs_largest(sale[sale["order"] == 0], largest, L, n_boot=50)
    assert one_order["SALE $/task std"].isna().all()
    assert tables.format_sale_vs_largest(one_order)["reliance on largest"].iloc[-1] == "50%"


def test_stream_curves_expanding_and_rolling():
    # order 0: L s s s; order 1: s s L L
    results = pd.DataFrame(
        {
            "order": [0] * 4 + [1] * 4,
            "position": list(range(4)) * 2,
            "agent": [L, S, S, S, S, S, L, L],
            "winner_refined": [False, True, True, False, False, False, False, True],
        }
    )
    expanding = tables.cheap_win_curve(results, L)
    assert expanding["mean"].tolist() == pytest.approx([0.5, 0.75, 2 / 3, 0.625])
    assert expanding["std"].iloc[0] == pytest.approx(np.std([0, 1], ddof=1))
    assert expanding["orders"].tolist() == [2, 2, 2, 2]
    rolling = tables.cheap_win_curve(results, L, window=2)
    assert rolling["mean"].tolist() == pytest.approx([0.5, 0.75, 0.75, 0.5])
    refined = tables.refined_win_curve(results)
    assert refined["mean"].tolist() == pytest.approx([0, 0.25, (2 / 3 + 0) / 2, (0.5 + 0.25) / 2])
    shorter = tables.cheap_win_curve(results[(results["order"] == 0) | (results["position"] < 2)], L)
    assert shorter["orders"].tolist() == [2, 2, 1, 1]  # an unfinished order reaches fewer positions


def test_ablation_table_pairs_with_full_on_common_tasks():
    full = pd.DataFrame(rows("sale", "sale", 0, [S, L, S, L], [1, 1, 1, 0], refined=[True, False, False, False]))
    no_memory = pd.DataFrame(
        rows("sale", "sale", 0, [L, L, L], [1, 1, 0], tasks=["t1", "t2", "t3"], refined=[False] * 3)
    )
    table = tables.ablation_table({"full": full, "no_memory": no_memory}, L, n_boot=200).set_index("ablation")
    assert table.loc["full", "Δpass@1"] == 0 and table.loc["full", "cost rel."] == 1
    row = table.loc["no_memory"]
    assert row["tasks"] == 3 and row["common tasks"] == 3
    assert row["pass@1"] == pytest.approx(2 / 3) and row["full pass@1"] == 1.0  # full on t1-t3 only
    assert row["Δpass@1"] == pytest.approx(-1 / 3)
    assert row["largest share"] == 1.0 and row["full largest share"] == pytest.approx(1 / 3)
    assert row["refined share"] == 0 and row["full refined share"] == pytest.approx(1 / 3)
    assert row["cost rel."] == pytest.approx(12 / 6)
    alone = tables.ablation_table({"no_memory": no_memory}, L).iloc[0]  # full not run yet
    assert alone["pass@1"] == pytest.approx(2 / 3) and np.isnan(alone["full pass@1"]) and alone["common tasks"] == 0


def test_runs_and_formatting(tmp_path, capsys):
    assert reading.pool_agents("cpu")[-1] == "qwen2.5-coder-1.5b"
    assert reading.run_command("main-sale-cpu") == "python -m sale.run experiment=main method=sale"
    assert reading.run_command("ablation-no_memory-cpu") == "python -m sale.run experiment=ablations ablation=no_memory"
    assert reading.run_command("main-sale-qwen3").endswith("method=sale pool=qwen3")
    assert reading.run_command("scaling-cpu-test") == "python -m sale.run experiment=scaling"
    assert reading.load_run(tmp_path, "main-sale-cpu") is None
    assert "main-sale-cpu: not run yet (python -m sale.run experiment=main method=sale)" in capsys.readouterr().out
    (tmp_path / "main-single-cpu").mkdir()
    single = pd.DataFrame(rows("single", S, 0, [S] * 4, [1, 0, 1, 0]))
    single.to_parquet(tmp_path / "main-single-cpu" / "results.parquet")
    logs = reading.load_run(tmp_path, "main-single-cpu")
    assert len(logs["results"]) == 4 and logs["calls"].empty
    assert "main-single-cpu: 4 results, 4 tasks" in capsys.readouterr().out
    assert tables.fmt_pct(0.673, 0.6, 0.75, std=0.012) == "67.3 ± 1.2 [60.0, 75.0]"
    assert tables.fmt_pct(0.035, signed=True) == "+3.5" and tables.fmt_pct(float("nan")) == "–"
    reading.write_table(pd.DataFrame({"a": [0.12345]}), tmp_path / "t", title="# T")
    assert (tmp_path / "t.md").read_text().startswith("# T\n\n|") and "0.123" in (tmp_path / "t.md").read_text()
    assert (tmp_path / "t.csv").read_text() == "a\n0.12345\n"


def test_no_common_tasks_and_cost_quality_points(runs):
    largest = runs["single"][runs["single"]["arm"] == L]
    disjoint = pd.DataFrame(rows("sale", "sale", 0, [S], [1], tasks=["t9"]))
    assert tables.sale_vs_largest(disjoint, largest, L).empty
    points = tables.cost_quality_points(pd.concat(runs.values()), L)
    assert sorted(points["domain"].unique()) == ["all", "coding", "search"]
    assert len(points) == 3 * 5  # five arms, per domain and overall
    sale_coding = points[(points["arm"] == "sale") & (points["domain"] == "coding")].iloc[0]
    assert sale_coding["pass@1"] == 1.0 and sale_coding["$/task"] == pytest.approx(3.5)
    assert set(points["family"].dropna()) == {"knn:theta"}


def test_replayed_auction_rescores_the_logged_bids_and_prices_the_consulted_jurors():
    from sale.auction.weights import Weights

    prices = {S: 1.0, L: 4.0}
    # one task, two bids: the jury (both jurors) prefers the large plan; the small juror alone prefers the small one
    bids = pd.DataFrame(
        [
            {
                "task_id": "t1",
                "order": 0,
                "agent": a,
                "refined": False,
                "tokens": 128,
                "entropy": 1.0,
                f"gamma_{S}": gs,
                f"gamma_{L}": gl,
            }
            for a, gs, gl in ((S, 4.0, 1.0), (L, 3.0, 5.0))
        ]
    )
    w = Weights(0.1, 0.0, {S: 0.45, L: 0.45})
    assert counterfactuals.replay_auction(bids, w, prices, 128)["t1"] == L
    assert counterfactuals.replay_auction(bids, w, prices, 128, jurors=[S])["t1"] == S
    assert counterfactuals.replay_auction(bids, Weights(0.1, 0.0, {S: 0.9, L: 0.0}), prices, 128)["t1"] == S
    perfect = pd.DataFrame({S: [1.0], L: [1.0]}, index=["t1"])  # both solve: the cost term picks the cheaper
    assert counterfactuals.replay_auction(bids, w, prices, 128, perfect=perfect)["t1"] == S
    passed = pd.DataFrame({S: [0.0], L: [1.0]}, index=["t1"])
    exec_cost = pd.DataFrame({S: [1.0], L: [4.0]}, index=["t1"])
    costs = pd.DataFrame({"bid": [2.0], f"jury_{S}": [0.5], f"jury_{L}": [3.0]}, index=["t1"])
    out = counterfactuals.replay_outcomes(
        pd.Series({"t1": L}), passed, exec_cost, costs, [S], pd.Series({"t1": "coding"})
    )
    assert out.loc["t1", "passed"] == 1 and out.loc["t1", "jury_usd"] == 0.5
    assert out.loc["t1", "cost_usd"] == pytest.approx(2.0 + 0.5 + 4.0)


def test_break_even_and_the_oracle_by_fallback():
    curve = counterfactuals.break_even(auction=3.0, sale_exec=1.0, largest_exec=2.0, scale=[1, 3])
    assert curve["auction share"].tolist() == pytest.approx([0.75, 0.5])
    assert curve["cost rel. largest"].tolist() == pytest.approx([2.0, 1.0])
    assert counterfactuals.scale_for_share(3.0, 1.0, 0.5) == pytest.approx(3.0)
    assert counterfactuals.scale_for_parity(3.0, 1.0, 2.0) == pytest.approx(3.0)
    assert counterfactuals.scale_for_parity(3.0, 2.0, 2.0) == float("inf")
    passed = pd.DataFrame({S: [1.0, 0.0, 0.0], L: [1.0, 1.0, 0.0]}, index=["a", "b", "c"])
    cost = pd.DataFrame({S: [1.0, 1.0, 1.0], L: [4.0, 4.0, 4.0]}, index=["a", "b", "c"])
    table = counterfactuals.oracle_costs(passed, cost, pd.Series({"a": "coding", "b": "coding", "c": "coding"}))
    row = table[table["domain"] == "all"].set_index("fallback")
    assert row.loc["cheapest", "$/task"] == pytest.approx(2.0) and row.loc["largest", "$/task"] == pytest.approx(3.0)
    assert row.loc["largest", "cost rel. largest"] == pytest.approx(0.75) and (row["pass@1"] == 2 / 3).all()


def test_price_schemes_and_cached_prefixes():
    calls = pd.DataFrame(
        [
            {
                "arm": "x",
                "order": 0,
                "task_id": "t",
                "call_index": 0,
                "agent": S,
                "phase": "jury",
                "prompt_tokens": 300,
                "completion_tokens": 0,
                "price_per_mtok": 1e6,
            },
            {
                "arm": "x",
                "order": 0,
                "task_id": "t",
                "call_index": 1,
                "agent": S,
                "phase": "jury",
                "prompt_tokens": 280,
                "completion_tokens": 0,
                "price_per_mtok": 1e6,
            },
            {
                "arm": "x",
                "order": 0,
                "task_id": "t",
                "call_index": 2,
                "agent": L,
                "phase": "execute",
                "prompt_tokens": 100,
                "completion_tokens": 50,
                "price_per_mtok": 1e6,
            },
            {
                "arm": "x",
                "order": 0,
                "task_id": "t",
                "call_index": 3,
                "agent": L,
                "phase": "execute",
                "prompt_tokens": 200,
                "completion_tokens": 50,
                "price_per_mtok": 1e6,
            },
        ]
    )
    # a juror's second rating shares its shortest prompt less the plan cap (280 - 128); a second turn its first prompt
    assert counterfactuals.cached_prefix_tokens(calls, plan_tokens=128).tolist() == [0, 152, 0, 100]
    assert counterfactuals.reprice(calls, "one price for all tokens (ours)").tolist() == [300, 280, 150, 250]
    assert counterfactuals.reprice(calls, "output tokens only").tolist() == [0, 0, 50, 50]
    quarter = counterfactuals.reprice(
        calls, "input at 1/4 of output, cached prefixes at 1/10 of input", plan_tokens=128
    )
    assert quarter.tolist() == pytest.approx([75, 128 / 4 + 152 / 40, 50 + 25, 50 + 25 + 100 / 40])
    with pytest.raises(ValueError, match="unknown price scheme"):
        counterfactuals.reprice(calls, "free")


def test_jury_auroc_against_the_bidders_outcome():
    bids = pd.DataFrame(
        [
            {"task_id": t, "order": 0, "agent": a, "refined": False, f"gamma_{L}": g}
            for t, a, g in (("a", S, 1.0), ("a", L, 4.0), ("b", S, 2.0), ("b", L, 3.0))
        ]
    )
    passed = pd.DataFrame({S: [0.0, 1.0], L: [1.0, 0.0]}, index=["a", "b"])
    table = counterfactuals.jury_auroc(bids, passed, [S, L], pd.Series({"a": "coding", "b": "coding"}), n_boot=50)
    row = table[(table["domain"] == "coding")].set_index("rater")
    # solvers' plans rated 4 and 2, non-solvers' 1 and 3: 3 of 4 pairs in order
    assert row.loc[f"juror {L}", "AUROC"] == pytest.approx(0.75) and row.loc[f"juror {L}", "solved"] == 2
    assert row.loc["bidder size alone", "AUROC"] == pytest.approx(0.5)
    assert f"juror {S}" not in row.index  # never consulted: no ratings


def test_a_moved_runs_inputs_resolve_under_the_data_dir_that_holds_it(tmp_path):
    # The committed SALE run was staged under data/next and moved in: its config.yaml still names data/next/...
    committed = REPO_ROOT / "data/runs/main-sale-cpu/config.yaml"
    run_cfg = yaml.safe_load(committed.read_text())
    weights = run_cfg["auction"]["weights"]["path"]
    resolved = reading.run_input_path(run_cfg, weights, REPO_ROOT / "data/runs")
    assert resolved == REPO_ROOT / "data/weights/cpu" / Path(weights).name
    assert resolved.exists()
    # under another data dir (a copy of the runs elsewhere) the same path follows the runs
    assert (
        reading.run_input_path({"data_dir": "data"}, "data/weights/cpu/x.json", tmp_path / "runs")
        == tmp_path / "weights/cpu/x.json"
    )
    # a path outside the run's data_dir is read from the repository
    assert (
        reading.run_input_path({"data_dir": "data/next"}, "conf/x.json", tmp_path / "runs") == REPO_ROOT / "conf/x.json"
    )


def test_replayed_auction_without_self_evaluation_fills_the_bidders_own_rating_by_each_rule():
    from sale.auction.weights import Weights

    prices = {"s": 1.0, "m": 2.0, "l": 4.0}
    # the small juror is heavy and harsh; rows are bids, columns the jurors' ratings
    table = {
        "s": {"s": 1.5, "m": 3.0, "l": 3.0},
        "m": {"s": 1.0, "m": 4.0, "l": 2.0},
        "l": {"s": 1.0, "m": 4.0, "l": 4.0},
    }
    bids = pd.DataFrame(
        [
            {
                "task_id": "t1",
                "order": 0,
                "agent": a,
                "refined": False,
                "tokens": 64,
                "entropy": 1.0,
                **{f"gamma_{j}": v for j, v in r.items()},
            }
            for a, r in table.items()
        ]
    )
    w = Weights(0.0, 0.0, {"s": 0.6, "m": 0.2, "l": 0.2})
    # kept: s 0.9+0.6+0.6 = 2.1, m 0.6+0.8+0.4 = 1.8, l 0.6+0.8+0.8 = 2.2
    assert counterfactuals.replay_auction(bids, w, prices, 128)["t1"] == "l"
    # rescaled to the jury's weight 1.0: s (0.6+0.6)/0.4 = 3.0 escapes its harsh juror; m 1.0/0.8, l 1.4/0.8
    assert counterfactuals.replay_auction(bids, w, prices, 128, self_rating="rescaled")["t1"] == "s"
    # dropped: s 1.2, m 1.0, l 1.4
    assert counterfactuals.replay_auction(bids, w, prices, 128, self_rating="dropped")["t1"] == "l"
    # imputed by the juror's mean of the other plans: s 1.2+0.6·1 = 1.8, m 1.0+0.2·3.5 = 1.7, l 1.4+0.2·2.5 = 1.9
    assert counterfactuals.replay_auction(bids, w, prices, 128, self_rating="imputed")["t1"] == "l"
    with pytest.raises(ValueError, match="self_rating"):
        counterfactuals.replay_auction(bids, w, prices, 128, self_rating="ignored")


def test_notebook_06s_counterfactual_table_comes_from_the_committed_logs():
    """counterfactuals.counterfactual_table, which notebook 06 calls, rebuilds the committed table from the logs:
    the same rows, the same numbers."""
    from sale.analysis.counterfactuals import counterfactual_table, outcome_matrix, pool_prices
    from sale.auction.weights import Weights

    runs = REPO_ROOT / "data" / "runs"
    sale = reading.load_run(runs, "main-sale-cpu", verbose=False)
    single = reading.load_run(runs, "main-single-cpu", verbose=False)
    prices = pool_prices("cpu")
    passed, exec_cost = outcome_matrix(single["results"], list(prices))
    domains = single["results"].drop_duplicates("task_id").set_index("task_id")["domain"]
    weights_dir = REPO_ROOT / "data" / "weights" / "cpu"
    table, agreement = counterfactual_table(
        sale,
        passed,
        exec_cost,
        domains,
        prices,
        128,
        Weights.load(weights_dir / "minmax-solvable.json"),
        "minmax-solvable",
        other_weights={p.stem: Weights.load(p) for p in weights_dir.glob("*.json")},
    )
    committed = pd.read_csv(REPO_ROOT / "figures" / "06_counterfactual.csv")
    assert agreement == 1.0 and list(table["variant"]) == list(committed["variant"])
    numbers = committed.select_dtypes("number").columns
    pd.testing.assert_frame_equal(table[numbers].reset_index(drop=True), committed[numbers], check_dtype=False)
