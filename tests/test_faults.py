"""The fault-injection suite's fast cases (tests/faults.py), one test per fault: no task lost or duplicated,
results equal to an uninterrupted run's where the run can finish, a clear error for every bad input, hostile code
contained (its writes, signals, processes, and its reads of files outside the sandbox). The slow cases (SIGKILL at
20 random moments of tiny and real-model runs) run only in the script: `python scripts/faults.py` (all, writes
data/bench/faults.{parquet,md}) or `python scripts/faults.py --fast`."""

import faults
import pytest

FAST = [f for f in faults.FAULTS if f.fast]
NEEDS_MODEL_FILES = ("model files",)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory, tiny_pool):
    return faults.Context(tmp_path_factory.mktemp("faults"))


def test_the_suite_covers_every_kind_of_fault():
    names = [f.name for f in faults.FAULTS]
    assert len(set(names)) == len(names) >= 25
    assert {f.category for f in faults.FAULTS} == {
        "process death",
        "storage",
        "served pools",
        "bad config",
        "model files",
        "hostile code",
        "malformed output",
    }
    assert sum("20 random moments" in n for n in names) == 4  # tiny SALE and a real model, at 1 and 4 in flight
    assert sum(n.startswith("hostile code: peeks at") for n in names) == 7  # one per place generated code may read


def test_the_table_has_the_issue_columns(tmp_path):
    import pandas as pd

    df = faults.run_faults([f for f in faults.FAULTS if f.name == "config: tasks.per_bin=-3"], tmp_path)
    assert set(faults.COLUMNS) <= set(df.columns)
    assert faults.verdict(df.iloc[0].to_dict()) == "ok"
    assert "| config: tasks.per_bin=-3 | 1 |" in faults.to_markdown(df.assign(contained=None))
    assert isinstance(df, pd.DataFrame)


@pytest.mark.parametrize(
    "fault",
    [pytest.param(f, id=f.name, marks=[pytest.mark.models] if f.category in NEEDS_MODEL_FILES else []) for f in FAST],
)
def test_fault(fault, ctx):
    row = fault.fn(ctx)
    if str(row.get("outcome", "")).startswith("skipped"):
        pytest.skip(row["outcome"])
    assert faults.verdict(row) == "ok", row
