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
from typing import Any, cast

import hydra
from omegaconf import DictConfig

import sale.config  # noqa: F401  (registers the resolver that lists the groups in --help)
from sale import CONF_DIR


def preflight(argv: list[str]) -> str | None:
    """What must be refused before Hydra starts, since Hydra creates the run directory (and writes .hydra/ and its
    log there) before the app runs: an unknown group option (method=salee), an override of a key the config does
    not have (also in a multirun), a run directory that is a file or cannot be written, a run directory that holds a
    run of another config, and a sweep whose points would share a run directory. Returns the error, one line that
    names the fix, or None. A custom config (--config-dir, --config-name, ...) is left to Hydra."""
    args = _hydra_args(argv)
    if args is None or args.help or args.hydra_help or args.shell_completion:
        return None
    if args.config_path or args.config_name or args.config_dir or args.experimental_rerun:
        return None
    overrides = list(args.overrides)
    problem = check_group_options(overrides)
    if problem or args.cfg or args.info:  # --cfg and --info print a config: nothing is created
        return problem
    from sale.config import compose, sweep

    try:
        points = sweep(*overrides) if args.multirun else [overrides]
    except Exception:
        return None  # a malformed override: Hydra says which
    claimed: dict[Path, tuple[list[str], dict]] = {}
    for point in points:
        label = f"the sweep point {' '.join(point)}: " if args.multirun else ""
        problem = check_override_keys(point, as_written=overrides)
        if problem:
            return problem
        try:
            cfg = compose(*point)
            run_dir = Path(str(cfg.run.dir))
        except Exception:
            return None  # a bad value: Hydra, or the run's own checks, say which
        problem = check_run_dir(run_dir, cfg)
        if problem:
            return problem.replace("error: ", f"error: {label}", 1)
        if args.multirun:
            from omegaconf import OmegaConf

            plain = cast(dict, OmegaConf.to_container(cfg, resolve=True))
            plain["run"].pop("only_order", None)  # SALE's task orders as separate jobs share one run directory
            if run_dir in claimed and claimed[run_dir][1] != plain:
                swept = [o.split("=", 1)[0] for o in point if o not in claimed[run_dir][0]]
                name = "-".join([str(cfg.run.name)] + [f"${{{key}}}" for key in swept])
                return (
                    f"error: the sweep points {' '.join(claimed[run_dir][0])} and {' '.join(point)} would both write "
                    f"{run_dir}; fix: put the swept key in the run's name, e.g. 'run.name={name}'"
                )
            claimed.setdefault(run_dir, (point, plain))
    return None


def _hydra_args(argv: list[str]):
    """Hydra's own reading of the command line (flags and overrides), or None where Hydra would refuse it."""
    import contextlib
    import io

    from hydra._internal.utils import get_args_parser

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            return get_args_parser().parse_args(argv)
    except SystemExit:
        return None


def check_group_options(overrides: list[str]) -> str | None:
    """The error for a group option that does not exist (method=salee, pool=cpuu, ablation=no_jury,no_jurry),
    naming the closest option and every known one."""
    from sale import config

    try:
        config.check_group_options(overrides)
    except config.ConfigError as e:
        fix = "" if "did you mean" in str(e) else f"; fix: {e.group}=<one of these>"
        return f"error: {e}{fix}"
    return None


def check_run_dir(run_dir: Path, cfg: DictConfig) -> str | None:
    """The error for a run directory that is a file (or lies under one), cannot be written, or holds a run of another
    config (sale.harness.runner.check_same_config)."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return (
            f"error: the run directory {run_dir} cannot be created: {existing} is a file; "
            f"fix: point run.dir=... at a directory (a new one, or a run to resume)"
        )
    if not os.access(existing, os.W_OK):
        why = "a read-only file system" if _read_only_fs(existing) else "no write permission"
        return (
            f"error: the run directory {run_dir} cannot be written ({existing}: {why}); "
            f"fix: make it writable, or copy the run somewhere writable and point run.dir=... there"
        )
    from sale.harness.runner import check_same_config

    try:
        check_same_config(run_dir, cfg, save=False)
    except SystemExit as e:
        return " ".join(line.strip() for line in str(e.code).splitlines())
    return None


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_override_keys(argv: list[str], as_written: list[str] | None = None) -> str | None:
    """The error for an override of a key the config does not have (a typo such as auction.jury.enabld=false),
    naming the closest keys; None when every key exists. Hydra refuses such an override too, but advises appending
    it (+key=...), which is never what a typo needs. Takes overrides only (a multirun's points one at a time;
    as_written: the command line's own overrides, which the message quotes)."""
    import difflib

    from omegaconf import DictConfig

    from sale.config import compose

    plain = [a for a in argv if "=" in a and not a.startswith(("+", "~", "-"))]
    dotted = [a for a in plain if "." in a.split("=", 1)[0] and not a.startswith("hydra")]
    if not dotted:
        return None
    try:
        cfg = compose(*[a for a in plain if a not in dotted])
    except Exception:
        return None  # a bad group choice or value: Hydra says which
    for override in dotted:
        key = override.split("=", 1)[0]
        override = next((a for a in as_written or [] if a.split("=", 1)[0] == key), override)
        node: Any = cfg
        path: list[str] = []
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
                    else f"fix: one of the keys of {where}: {', '.join(known)}"
                )
                return (
                    f"error: {key} is not a config key (from {override}); {guess} (a new key on purpose: +{override})"
                )
            node = node._get_node(part)
            path.append(part)
    return None


class Footprint:
    """What one invocation adds to the run directories it may write (Hydra's .hydra/ and log, an empty run directory,
    a sweep directory), so that a refused run can take it back: a run that journalled no task leaves nothing behind.
    A run that journalled a task keeps everything, Hydra's record included."""

    def __init__(self, dirs: list[Path]):
        self.dirs = [Path(d) for d in dirs]
        self.state = {d: self._snapshot(d) for d in self.dirs}
        self.existing = {d: self._first_existing(d) for d in self.dirs}  # what a new directory was made under

    @staticmethod
    def _first_existing(d: Path) -> Path:
        d = d.absolute()
        while not d.exists() and d != d.parent:
            d = d.parent
        return d

    @staticmethod
    def _snapshot(d: Path) -> dict | None:
        if not d.is_dir():
            return None
        entries: dict[str, object] = {}
        for entry in d.iterdir():
            if entry.is_dir() and entry.name == ".hydra":
                entries[entry.name] = {f.name: f.read_bytes() for f in entry.iterdir() if f.is_file()}
            elif entry.is_file():
                entries[entry.name] = entry.stat().st_size
            else:
                entries[entry.name] = None
        return entries

    def worked(self) -> bool:
        """Whether a task was journalled in one of the directories since the snapshot."""
        for d, before in self.state.items():
            journal = d / "journal.jsonl"
            size = journal.stat().st_size if journal.is_file() else 0
            if size > int((before or {}).get("journal.jsonl") or 0):
                return True
        return False

    def undo(self) -> None:
        import shutil

        for d, before in self.state.items():
            if not d.is_dir():
                continue
            if before is None:  # this invocation made the directory, and no task landed in it
                shutil.rmtree(d, ignore_errors=True)
                parent = d.absolute().parent
                while parent != self.existing[d] and parent.is_dir() and not any(parent.iterdir()):
                    parent.rmdir()  # made by this invocation too, on the way to d
                    parent = parent.parent
                continue
            for entry in d.iterdir():
                if entry.name not in before:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
                elif entry.name == ".hydra" and isinstance(before[entry.name], dict):
                    for name, data in before[entry.name].items():
                        (entry / name).write_bytes(data)
                elif entry.suffix == ".log" and isinstance(before[entry.name], int) and entry.is_file():
                    os.truncate(entry, before[entry.name])


def footprint(argv: list[str]) -> Footprint | None:
    """The directories this command line may write: each point's run directory and, for a multirun, the sweep
    directory's parent (runs/multirun). None where it runs nothing (--help, --cfg) or Hydra reads another config."""
    args = _hydra_args(argv)
    if args is None or args.help or args.hydra_help or args.cfg or args.info or args.shell_completion:
        return None
    if args.config_path or args.config_name or args.config_dir or args.experimental_rerun:
        return None
    from sale.config import compose, sweep

    try:
        points = sweep(*args.overrides) if args.multirun else [list(args.overrides)]
        dirs = [Path(str(compose(*point).run.dir)) for point in points]
        if args.multirun:
            dirs.append(Path(str(compose(*points[0], return_hydra_config=True).hydra.sweep.dir)).parent)
    except Exception:
        return None
    return Footprint(list(dict.fromkeys(dirs)))


def run(cfg: DictConfig) -> Path:
    """Run `cfg` (resuming its run directory), then print the end-of-run summary and draw its figure."""
    from sale.analysis.summary import print_summary, summary_figure
    from sale.harness.runner import execute

    outcome = execute(cfg)
    frames, run_dir = outcome.frames, outcome.run_dir
    cache: Any = outcome.cache  # sale.llm.cache.CallCache or None
    if cache is not None:
        print(f"[sale] call cache: {cache.hits} hits, {cache.misses} new calls ({cfg.run.cache})")
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
    trace = footprint(sys.argv[1:])
    try:
        main()
    except BaseException as e:  # a refusal inside the run (SystemExit(1), Hydra's own exit, Ctrl-C): tidy up first
        if trace is not None and not (isinstance(e, SystemExit) and e.code in (0, None)) and not trace.worked():
            trace.undo()
        raise
