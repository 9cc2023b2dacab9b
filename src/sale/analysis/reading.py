"""Reading finished (or unfinished) runs for the notebooks: a run's logs by name, the inputs its config names, the
pool's agents and prices, and writing a table as csv + markdown. The tables themselves are in sale.analysis.tables
(notebooks 02-05) and sale.analysis.counterfactuals (notebook 06)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sale import REPO_ROOT
from sale.harness.runlog import DATA_DIR_PREFIX, load_logs, relative_to_data_dir

MAIN_METHODS = ("single", "oracle", "cascade", "knn", "mlc", "random", "sale")
ABLATIONS = (
    "full",
    "no_memory",
    "no_refinement",
    "no_jury",
    "no_self_evaluation",
    "no_entropy",
    "largest_juror",
    "outcome_label",
    "k1",
    "short_bids",
    "mean_objective",
    "spec_minmax",
    "overhead_fit",
)
SWEPT = ("knn", "mlc", "random")  # methods whose arms trace a cost-quality curve (AIQ)


def pool_agents(pool: str = "cpu") -> list[str]:
    """The pool's agent names, cheapest first (the last is the largest), from conf/pool/<pool>.yaml."""
    from sale.llm import load_pool

    return load_pool(pool).names


def run_command(name: str) -> str:
    """The command that makes run directory `name`: the experiment whose composed config names its run `name`
    (conf/experiment/*.yaml holds the naming scheme; nothing here repeats it)."""
    from sale.config import compose, options

    pools = sorted((p for p in options("pool") if p in name.split("-")), key=lambda p: p != "cpu")
    for pool in pools:
        extra = [] if pool == "cpu" else [f"pool={pool}"]
        candidates = [["experiment=demo", *extra], ["experiment=scaling", *extra]]
        candidates += [["experiment=scaling", *extra, "tasks.split=train"]]
        candidates += [["experiment=main", f"method={m}", *extra] for m in options("method")]
        candidates += [["experiment=ablations", f"ablation={a}", *extra] for a in options("ablation")]
        for overrides in candidates:
            if compose(*overrides).run.name == name:
                return "python -m sale.run " + " ".join(overrides)
    return "python -m sale.run ..."


def load_run(runs_dir: str | Path, name: str, verbose: bool = True) -> dict[str, pd.DataFrame] | None:
    """The logs of runs_dir/name, or None (saying so, with the command that makes it) when it has no results."""
    run_dir = Path(runs_dir) / name
    logs = load_logs(run_dir)
    results = logs["results"]
    if results.empty:
        if verbose:
            print(f"{name}: not run yet ({run_command(name)})")
        return None
    if verbose:
        parquet = run_dir / "results.parquet"
        from_journal = not parquet.exists() or len(pd.read_parquet(parquet, columns=["task_id"])) < len(results)
        print(
            f"{name}: {len(results)} results, {results['task_id'].nunique()} tasks, "
            f"{results['arm'].nunique()} arm(s), orders {sorted(results['order'].unique().tolist())}"
            + (" (read from journal.jsonl: unfinished or interrupted)" if from_journal else "")
        )
    return logs


def run_input_path(run_cfg: dict, path: str, runs_dir: str | Path) -> Path:
    """An input a run's config.yaml names (its weights file, the routers' train run), found where it is now.

    A run records its inputs under the data_dir it ran with; a run staged under data/next and moved into data/runs
    (scripts/rerun_search_agent.sh) finds them under the data dir that now holds it, runs_dir's parent, as
    sale.run does when it resumes."""
    relative = relative_to_data_dir(path, str(run_cfg.get("data_dir", "data")))
    if relative.startswith(DATA_DIR_PREFIX):
        return Path(runs_dir).parent / relative[len(DATA_DIR_PREFIX) :]
    return Path(path) if Path(path).is_absolute() else REPO_ROOT / path


def write_table(table: pd.DataFrame, stem: str | Path, title: str = "", shown: pd.DataFrame | None = None) -> None:
    """`table` to stem.csv (full precision) and stem.md (`shown`, a formatted copy, or `table` to 3 significant
    digits) under an optional title paragraph."""
    stem = Path(stem)
    table.to_csv(stem.with_suffix(".csv"), index=False)
    text = (shown if shown is not None else table).to_markdown(index=False, floatfmt=".3g")
    stem.with_suffix(".md").write_text((f"{title}\n\n" if title else "") + text + "\n")
