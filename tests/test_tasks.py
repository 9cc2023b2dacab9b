"""Task sets: the committed tau tables, bins and splits, and load_tasks (directly and through the Hydra configs)."""

import pytest
import yaml

from sale.config import compose
from sale.tasks import humaneval, load_tasks, phantomwiki
from sale.tasks.base import N_BINS
from sale.tasks.humaneval import bin_of, load_humaneval
from sale.tasks.phantomwiki import load_phantomwiki

BINS = yaml.safe_load((humaneval.TAU_TABLE.parent / "bins.yaml").read_text())


def by_bin(tasks):
    return {b: [t for t in tasks if t.bin == b] for b in range(1, N_BINS + 1)}


def test_humaneval_all_164_tasks_load_with_tau_and_payload():
    tasks = load_humaneval("all")
    assert len(tasks) == 164
    assert len({t.id for t in tasks}) == 164
    assert tasks[0].id == "humaneval/HumanEval-0" and tasks[-1].id == "humaneval/HumanEval-163"
    for t in tasks:
        assert t.domain == "coding" and t.tau_minutes > 0
        assert t.description == t.payload["prompt"] and t.payload["entry_point"] in t.payload["prompt"]
        assert "def check(candidate)" in t.payload["test"] and t.payload["canonical_solution"].strip()
    assert all(len(group) >= 30 for group in by_bin(tasks).values())  # quintiles of 164


def test_humaneval_table_is_what_the_tau_model_gives():
    rows, edges = humaneval.build_table()
    assert rows == humaneval.read_table()
    assert edges == BINS["humaneval"]["edges_minutes"] and edges == sorted(edges)
    for r in rows:
        expected = humaneval.tau_minutes(r["prompt_words"], r["solution_lines"], r["cyclomatic"])
        assert r["tau_minutes"] == expected and r["bin"] == bin_of(expected, edges)


def test_humaneval_bins_order_by_solution_complexity():
    rows = humaneval.read_table()
    mean_lines = [
        sum(r["solution_lines"] for r in rows if r["bin"] == b) / sum(r["bin"] == b for r in rows) for b in range(1, 6)
    ]
    assert mean_lines == sorted(mean_lines)
    easiest = next(r for r in rows if r["id"] == "HumanEval/23")  # strlen: return len(string)
    assert easiest["bin"] == 1 and easiest["solution_lines"] == 1 and easiest["cyclomatic"] == 1


def test_humaneval_splits_are_disjoint_stratified_and_stable():
    train, test = load_humaneval("train"), load_humaneval("test")
    assert {t.id for t in train}.isdisjoint({t.id for t in test})
    assert len(train) + len(test) == 164
    for b, group in by_bin(train + test).items():
        n_train = sum(t.split == "train" for t in group)
        assert n_train == round(0.4 * len(group)), b
        assert BINS["humaneval"]["counts"][b] == {"train": n_train, "test": len(group) - n_train}
    again = humaneval.stratified_split([f"t{i}" for i in range(50)], [1 + i % 5 for i in range(50)], 0.4, seed=0)
    assert again == humaneval.stratified_split(
        [f"t{i}" for i in range(50)], [1 + i % 5 for i in range(50)], 0.4, seed=0
    )
    assert sum(s == "train" for s in again.values()) == 20


def test_phantomwiki_both_universes_have_five_bins_of_clean_questions():
    tasks = load_phantomwiki("all")
    assert len({t.id for t in tasks}) == len(tasks)
    edges = BINS["phantomwiki"]["edges_minutes"]
    for split in ("train", "test"):
        part = [t for t in tasks if t.split == split]
        assert {t.payload["universe"] for t in part} == {split}
        assert all(len(group) >= phantomwiki.MIN_PER_BIN for group in by_bin(part).values()), split
    for t in tasks:
        assert t.domain == "search" and t.description == t.payload["question"]
        assert 1 <= len(t.payload["answers"]) <= phantomwiki.MAX_ANSWERS
        assert t.payload["answers"] == sorted(t.payload["answers"])
        assert t.tau_minutes == phantomwiki.tau_minutes(t.payload["hops"]) and t.bin == bin_of(t.tau_minutes, edges)
    assert len({t.description for t in tasks if t.split == "test"}) == sum(t.split == "test" for t in tasks)


def test_phantomwiki_bin_edges_are_the_recorded_quintiles():
    rows, edges = phantomwiki.build_table({"train": "train", "test": "test"})
    assert rows == phantomwiki.read_table()
    assert edges == BINS["phantomwiki"]["edges_minutes"]
    hops = [r["hops"] for r in rows]
    assert min(hops) == 1 and max(hops) >= 15


def test_load_tasks_samples_per_bin_deterministically():
    cfg = {"name": "x", "sources": ["humaneval", "phantomwiki"], "split": "test", "per_bin": 3, "seed": 7, "bins": None}
    tasks = load_tasks(cfg)
    assert len(tasks) == 2 * N_BINS * 3
    assert [t.id for t in tasks] == [t.id for t in load_tasks(cfg)]
    assert [t.domain for t in tasks] == ["coding"] * 15 + ["search"] * 15
    for domain in ("coding", "search"):
        assert all(len(g) == 3 for g in by_bin([t for t in tasks if t.domain == domain]).values())
    assert [t.id for t in load_tasks({**cfg, "seed": 8})] != [t.id for t in tasks]
    only_5 = load_tasks({**cfg, "bins": [5]})
    assert [t.id for t in only_5] == [t.id for t in tasks if t.bin == 5]  # a bin's draw does not depend on the others


def test_take_per_bin_gives_nested_subsets_of_one_sample():
    cfg = {"sources": ["humaneval", "phantomwiki"], "split": "test", "per_bin": 10}
    full = load_tasks(cfg)
    three, five = (load_tasks({**cfg, "take_per_bin": n}) for n in (3, 5))
    assert len(three) == 2 * N_BINS * 3 and len(five) == 2 * N_BINS * 5
    ids = [t.id for t in full]
    assert [t.id for t in three] == [i for i in ids if i in {t.id for t in three}]  # same order as the sample
    assert {t.id for t in three} < {t.id for t in five} < set(ids)
    for domain in ("coding", "search"):
        for b, group in by_bin([t for t in full if t.domain == domain]).items():
            assert [t.id for t in three if t.domain == domain and t.bin == b] == [t.id for t in group[:3]]


def test_load_tasks_takes_all_with_a_warning_when_per_bin_is_too_large():
    with pytest.warns(UserWarning, match="taking all"):
        tasks = load_tasks({"sources": ["humaneval"], "split": "train", "per_bin": 1000})
    assert len(tasks) == len(load_humaneval("train"))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"sources": ["mbpp"]}, "unknown sources"),
        ({"sources": []}, "at least one"),
        ({"sources": ["humaneval"], "split": "dev"}, "split must be"),
        ({"sources": ["humaneval"], "per_bin": 0}, "per_bin"),
        ({"sources": ["humaneval"], "bins": [0, 6]}, "bins"),
        ({"sources": ["humaneval"], "per_bins": 3}, "unknown keys"),
        ({"sources": ["humaneval"], "take_per_bin": 0}, "take_per_bin"),
    ],
)
def test_load_tasks_rejects_bad_config(bad, message):
    with pytest.raises(ValueError, match=message):
        load_tasks(bad)


def test_hydra_task_configs_compose_and_load():
    cfg = compose(*["tasks=mixed", "tasks.per_bin=2", "tasks.split=train"])
    single = {name: compose(*[f"tasks={name}"]).tasks for name in ("humaneval", "phantomwiki")}
    tasks = load_tasks(cfg.tasks)
    assert cfg.tasks.name == "mixed" and len(tasks) == 2 * N_BINS * 2
    assert {t.split for t in tasks} == {"train"} and {t.domain for t in tasks} == {"coding", "search"}
    assert len(load_tasks(single["humaneval"])) == len(load_humaneval("test"))
    assert len(load_tasks(single["phantomwiki"])) == len(load_phantomwiki("test"))
