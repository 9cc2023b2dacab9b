"""Make the committed task data: the HumanEval tau table and the PhantomWiki universes with their tau table.

    python scripts/make_task_data.py              # both
    python scripts/make_task_data.py humaneval    # data/tasks/humaneval_tau.csv (seconds)
    python scripts/make_task_data.py phantomwiki  # data/phantomwiki/{train,test}/ + data/tasks/phantomwiki_tau.csv

Both write the bin edges into data/tasks/bins.yaml. The output is a pure function of the pinned packages, the
SWI-Prolog version (made with 9.0.4) and the seeds below: running the script twice gives the same bytes.
Time on 2 CPU cores: HumanEval ~2 s; PhantomWiki ~50 s a universe.

PhantomWiki needs SWI-Prolog and phantom-wiki, which are not dependencies of the package (the data is committed):
    apt-get install -y swi-prolog-core
    .venv/bin/pip install --ignore-requires-python --no-deps phantom-wiki==1.0.3
    .venv/bin/pip install pyswip nltk pydot tabulate
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import yaml

from sale import DATA_DIR
from sale.tasks import humaneval, phantomwiki
from sale.tasks.base import N_BINS

BINS_FILE = DATA_DIR / "tasks" / "bins.yaml"

# The exact generator flags (ASSETS.md's sizing: ~100 people and 500 questions a universe).
PHANTOMWIKI_FLAGS = [
    "--num-family-trees", "4",
    "--max-family-tree-size", "25",
    "--max-family-tree-depth", "20",
    "--question-depth", "20",
    "--num-questions-per-type", "10",
    "--article-format", "json",
    "--question-format", "json",
    "--skip-solution-traces",
    "--quiet",
]  # fmt: skip
# universe -> (split, seed). The seed also seeds the friendship graph, which otherwise defaults to 1 for every
# universe. Seed 1 is not used: one of its depth-20 questions has ~460k Prolog solutions and takes minutes alone.
PHANTOMWIKI_UNIVERSES = {"train": ("train", 2), "test": ("test", 3)}


def write_csv(path: Path, rows: list[dict], columns) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: r[c] for c in columns} for r in rows)


def bin_counts(rows: list[dict]) -> dict:
    return {
        b: {s: sum(r["bin"] == b and r["split"] == s for r in rows) for s in ("train", "test")}
        for b in range(1, N_BINS + 1)
    }


def record_bins(domain: str, entry: dict) -> None:
    bins = yaml.safe_load(BINS_FILE.read_text()) if BINS_FILE.exists() else {}
    bins[domain] = entry
    BINS_FILE.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by scripts/make_task_data.py. Bin k holds tau in (edge[k-1], edge[k]]: right-closed quintiles.\n"
    )
    BINS_FILE.write_text(header + yaml.safe_dump(bins, sort_keys=True, width=100, default_flow_style=None))


def make_humaneval() -> None:
    rows, edges = humaneval.build_table()
    write_csv(humaneval.TAU_TABLE, rows, humaneval.TABLE_COLUMNS)
    model = (
        f"tau = prompt_words / {humaneval.READ_WPM:g} + {humaneval.MINUTES_PER_LINE:g} * solution_lines"
        f" + {humaneval.MINUTES_PER_BRANCH:g} * (cyclomatic - 1)"
    )
    record_bins(
        "humaneval",
        {
            "tau_model": model,
            "edges_minutes": edges,
            "split": f"stratified by bin, train fraction {humaneval.TRAIN_FRACTION}, seed {humaneval.SPLIT_SEED}",
            "counts": bin_counts(rows),
        },
    )
    print(f"humaneval: {len(rows)} tasks, tau edges {edges}, counts {bin_counts(rows)}")


def generate_universe(universe: str, seed: int, raw_dir: Path) -> list[str]:
    command = ["-m", "phantom_wiki", "-od", str(raw_dir), "--seed", str(seed), "--friendship-seed", str(seed)]
    command += PHANTOMWIKI_FLAGS
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # nothing may depend on str hashing order
    start = time.time()
    done = subprocess.run([sys.executable, *command], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"phantom-wiki-generate failed for universe {universe}:\n{done.stderr[-3000:]}")
    print(f"phantomwiki: generated universe {universe} (seed {seed}) in {time.time() - start:.0f} s")
    return ["phantom-wiki-generate", *command[2:]]


def make_phantomwiki() -> None:
    try:
        version("phantom-wiki")
    except PackageNotFoundError:
        sys.exit("phantom-wiki is not installed: see the install lines at the top of scripts/make_task_data.py")
    if shutil.which("swipl") is None:
        sys.exit("SWI-Prolog is missing: apt-get install -y swi-prolog-core")
    universes = {}
    for universe, (split, seed) in PHANTOMWIKI_UNIVERSES.items():
        with tempfile.TemporaryDirectory() as tmp:
            raw_dir = Path(tmp) / universe
            command = generate_universe(universe, seed, raw_dir)
            articles, questions, dropped = phantomwiki.extract_universe(raw_dir)
        phantomwiki.write_jsonl(phantomwiki.UNIVERSES_DIR / universe / "articles.jsonl", articles)
        phantomwiki.write_jsonl(phantomwiki.UNIVERSES_DIR / universe / "questions.jsonl", questions)
        universes[universe] = {
            "split": split,
            "seed": seed,
            "command": " ".join(command).replace(str(raw_dir), "OUT"),
            "articles": len(articles),
            "questions_generated": len(questions) + sum(dropped.values()),
            "questions_dropped": dropped,
            "questions_kept": len(questions),
        }
    provenance = {
        "generator": f"phantom-wiki=={version('phantom-wiki')}",
        "filter": f"dropped: empty gold answer list, more than {phantomwiki.MAX_ANSWERS} gold answers, "
        "repeated question text",
        "universes": universes,
    }
    header = "# Written by scripts/make_task_data.py: how each universe was generated (OUT: a temporary folder).\n"
    (phantomwiki.UNIVERSES_DIR / "universes.yaml").write_text(
        header + yaml.safe_dump(provenance, sort_keys=True, width=1000, default_flow_style=None)
    )

    rows, edges = phantomwiki.build_table({u: split for u, (split, _) in PHANTOMWIKI_UNIVERSES.items()})
    write_csv(phantomwiki.TAU_TABLE, rows, phantomwiki.TABLE_COLUMNS)
    hop_edges = [round((e - phantomwiki.BASE_MINUTES) / phantomwiki.MINUTES_PER_HOP, 2) for e in edges]
    record_bins(
        "phantomwiki",
        {
            "tau_model": f"tau = {phantomwiki.BASE_MINUTES:g} + {phantomwiki.MINUTES_PER_HOP:g} * hops",
            "edges_minutes": edges,
            "edges_hops": hop_edges,
            "split": "one universe per split: "
            + ", ".join(f"{u} -> {s}" for u, (s, _) in PHANTOMWIKI_UNIVERSES.items()),
            "counts": bin_counts(rows),
        },
    )
    print(f"phantomwiki: {len(rows)} questions, tau edges {edges} (hops {hop_edges}), counts {bin_counts(rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="?", default="all", choices=["all", "humaneval", "phantomwiki"])
    args = parser.parse_args()
    if args.which in ("all", "humaneval"):
        make_humaneval()
    if args.which in ("all", "phantomwiki"):
        make_phantomwiki()


if __name__ == "__main__":
    main()
