"""The Hydra entry point: run a method on a task set with an agent pool, log everything, print a summary.

    python -m sale.run experiment=demo                              # the README's main job (cpu pool)
    python -m sale.run method=single tasks=humaneval tasks.per_bin=2  # every agent alone
    python -m sale.run experiment=ablations ablation=no_memory      # one ablation of the paper's table
    python -m sale.run --help                                       # usage, groups and their options

Rerunning the same command resumes: journalled tasks are skipped (sale.harness.runlog describes the run directory).
run.concurrency=N keeps N tasks (and N calls per agent) in flight (sale.harness.concurrency); results do not depend
on N. The loop itself is sale.harness.runner; this module checks the command line and prints the summary.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from sale import CONF_DIR


def preflight(argv: list[str]) -> str | None:
    """What must be refused before Hydra starts (it creates the run directory and writes its logs there first):
    an override of a key the config does not have, and a run directory that cannot be written. Returns the error, or
    None. Plain single runs only: with Hydra flags (-m, --config-dir, ...) Hydra checks alone."""
    from sale.config import compose

    if any(a.startswith("-") for a in argv):
        return None
    try:
        cfg = compose(*list(argv))
        run_dir = Path(str(cfg.run.dir))
    except Exception:
        return check_override_keys(argv)  # None for any other problem: Hydra reports it
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        why = "a read-only file system" if _read_only_fs(existing) else "no write permission"
        return (
            f"error: the run directory {run_dir} cannot be written ({existing}: {why}).\n"
            f"  fix: make it writable, or copy the run somewhere writable and point run.dir=... there"
        )
    return None


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_override_keys(argv: list[str]) -> str | None:
    """The error for an override of a key the config does not have (a typo such as auction.jury.enabld=false),
    naming the closest keys; None when every key exists. Hydra refuses such an override too, but advises appending
    it (+key=...), which is never what a typo needs. Plain single runs only: with Hydra flags (-m, --config-dir, ...)
    Hydra checks alone."""
    import difflib

    from omegaconf import DictConfig

    from sale.config import compose

    if any(a.startswith("-") for a in argv):
        return None
    plain = [a for a in argv if "=" in a and not a.startswith(("+", "~"))]
    dotted = [a for a in plain if "." in a.split("=", 1)[0] and not a.startswith("hydra")]
    if not dotted:
        return None
    try:
        cfg = compose(*[a for a in plain if a not in dotted])
    except Exception:
        return None  # a bad group choice or value: Hydra says which
    for override in dotted:
        key = override.split("=", 1)[0]
        node, path = cfg, []
        for part in key.split("."):
            if not isinstance(node, DictConfig):
                break
            if part not in node.keys():
                known = [str(k) for k in node.keys()]
                where = ".".join(path) or "the config"
                close = difflib.get_close_matches(part, known, n=3, cutoff=0.6)
                guess = (
                    f"did you mean {' or '.join('.'.join(path + [c]) for c in close)}?"
                    if close
                    else f"{where} has no such key"
                )
                return (
                    f"error: {key} is not a config key (from the override {override}).\n"
                    f"  {guess} Keys of {where}: {', '.join(known)}.\n"
                    f"  To add a new key on purpose, write +{override}"
                )
            node = node._get_node(part)
            path.append(part)
    return None


def run(cfg: DictConfig) -> Path:
    """Run `cfg` (resuming its run directory), then print the end-of-run summary and draw its figure."""
    from sale.analysis.summary import print_summary, summary_figure
    from sale.harness.runner import execute

    outcome = execute(cfg)
    frames, run_dir = outcome.frames, outcome.run_dir
    if outcome.cache is not None:
        print(f"[sale] call cache: {outcome.cache.hits} hits, {outcome.cache.misses} new calls ({cfg.run.cache})")
    print_summary(frames["results"], frames["calls"], outcome.pool)
    if cfg.run.figure:
        print(f"[sale] figure: {summary_figure(frames['results'], run_dir / 'summary.png')}")
    print(f"[sale] logs: {run_dir}/{{results,calls,bids}}.parquet")
    return run_dir


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)
def main(cfg: DictConfig) -> None:
    from sale import StorageError
    from sale.harness.concurrency import Interrupted
    from sale.llm import LLMError

    try:
        run(cfg)
    except Interrupted:
        print("[sale] stopped; every finished task is journalled: rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except (LLMError, ValueError, FileNotFoundError, StorageError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    problem = preflight(sys.argv[1:])
    if problem:
        print(problem, file=sys.stderr)
        sys.exit(1)
    main()
