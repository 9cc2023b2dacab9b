"""PhantomWiki deep-search questions: one fictional universe per split, tau from the number of reasoning hops.

The tau model (our choice). PhantomWiki's `difficulty` field is the number of reasoning hops: the relations
to follow from the named person to the answer ("great-grandparent" counts 3). A person answers by searching
the wiki, opening an article (~150 words: under a minute at 200 wpm), finding the relation line and noting
the names it leads to, about MINUTES_PER_HOP a hop since a hop often fans out to several people; plus
BASE_MINUTES to read the question and write the answer:

    tau = BASE_MINUTES + MINUTES_PER_HOP * hops        (1 hop: 5 min; 20 hops: 62 min)

That puts the hardest questions near the paper's 60 minutes. Bins are quintiles of tau over the questions of
all universes together, computed once by scripts/make_task_data.py and recorded in data/tasks/phantomwiki_tau.csv
and data/tasks/bins.yaml; the script refuses edges that leave fewer than MIN_PER_BIN questions of a universe in
a bin.

Filtering (our choice), applied when the data is made: questions whose gold answer list is empty, or has more than
MAX_ANSWERS names (deep family chains can fan out to dozens of people: an answer no one would write out), are
dropped, and so is a repeated question text within a universe (the generator can sample one twice).
"""

from __future__ import annotations

import json

from sale import DATA_DIR
from sale.tasks.base import N_BINS, Task, read_tau_table
from sale.tasks.humaneval import bin_of, quantile_edges  # one binning rule for both domains

UNIVERSES_DIR = DATA_DIR / "phantomwiki"
TAU_TABLE = DATA_DIR / "tasks" / "phantomwiki_tau.csv"
TABLE_COLUMNS = ("id", "universe", "hops", "n_answers", "tau_minutes", "bin", "split")

BASE_MINUTES = 2.0
MINUTES_PER_HOP = 3.0
MAX_ANSWERS = 5
MIN_PER_BIN = 15


def tau_minutes(hops: int) -> float:
    return BASE_MINUTES + MINUTES_PER_HOP * hops


def extract_universe(raw_dir) -> tuple[list[dict], list[dict], dict]:
    """Articles, kept questions and the count of dropped questions by reason, from a
    `phantom-wiki-generate --article-format json --question-format json` output folder. Large or random fields
    are left out (Prolog facts, solution traces, uuid ids). Question ids are positions in the generator's output,
    so they stay stable under the filter."""
    raw_articles = json.loads((raw_dir / "articles.json").read_text())
    raw_questions = json.loads((raw_dir / "questions.json").read_text())
    articles = [{"title": a["title"], "article": a["article"]} for a in raw_articles]
    questions, seen = [], set()
    dropped = {"no_answer": 0, "too_many_answers": 0, "repeated": 0}
    for i, q in enumerate(raw_questions):
        answers = sorted(str(a) for a in q["answer"])
        if not answers:
            dropped["no_answer"] += 1
        elif len(answers) > MAX_ANSWERS:
            dropped["too_many_answers"] += 1
        elif q["question"] in seen:
            dropped["repeated"] += 1
        else:
            seen.add(q["question"])
            questions.append(
                {
                    "id": f"q{i:04d}",
                    "question": q["question"],
                    "answers": answers,
                    "hops": int(q["difficulty"]),
                    "template": int(q["type"]),
                    "is_aggregation": bool(q["is_aggregation_question"]),
                }
            )
    return articles, questions, dropped


def build_table(universes: dict[str, str]) -> tuple[list[dict], list[float]]:
    """The per-question table for {universe: split} and the quintile edges of tau over all of them."""
    rows = []
    for universe, split in universes.items():
        for q in read_questions(universe):
            rows.append(
                {
                    "id": q["id"],
                    "universe": universe,
                    "hops": q["hops"],
                    "n_answers": len(q["answers"]),
                    "tau_minutes": tau_minutes(q["hops"]),
                    "split": split,
                }
            )
    edges = quantile_edges([r["tau_minutes"] for r in rows])
    for r in rows:
        r["bin"] = bin_of(r["tau_minutes"], edges)
    for universe in universes:
        counts = [sum(r["universe"] == universe and r["bin"] == b for r in rows) for b in range(1, N_BINS + 1)]
        if min(counts) < MIN_PER_BIN:
            raise ValueError(
                f"universe {universe}: bins {counts} have fewer than {MIN_PER_BIN} questions (edges {edges})"
            )
    return rows, edges


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def read_articles(universe: str) -> list[dict]:
    path = UNIVERSES_DIR / universe / "articles.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no PhantomWiki universe {universe!r} at {path}: run scripts/make_task_data.py")
    return read_jsonl(path)


def read_questions(universe: str) -> list[dict]:
    return read_jsonl(UNIVERSES_DIR / universe / "questions.jsonl")


def read_table(path=TAU_TABLE) -> list[dict]:
    return read_tau_table(path, ("hops", "n_answers", "bin"), "phantomwiki")


def load_phantomwiki(split: str = "all") -> list[Task]:
    """Questions of a split ("train" | "test" | "all"), universe by universe in generator order."""
    questions = {}
    tasks = []
    for r in read_table():
        if split != "all" and r["split"] != split:
            continue
        universe = r["universe"]
        if universe not in questions:
            questions[universe] = {q["id"]: q for q in read_questions(universe)}
        q = questions[universe][r["id"]]
        tasks.append(
            Task(
                id=f"phantomwiki/{universe}/{r['id']}",
                domain="search",
                description=q["question"],
                payload={"question": q["question"], "answers": q["answers"], "universe": universe, "hops": q["hops"]},
                tau_minutes=r["tau_minutes"],
                bin=r["bin"],
                split=r["split"],
            )
        )
    return tasks
