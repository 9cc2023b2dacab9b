"""Execute the numbered notebooks and save them in place with their outputs. Notebooks 01-06 only read the logs
and write figures/; notebook 00 runs one auction live on the cpu pool (minutes, or seconds from the call cache).

python scripts/run_notebooks.py                          # every notebooks/NN_*.ipynb
python scripts/run_notebooks.py 01_scaling               # just one
python scripts/run_notebooks.py 02_cost_tables 03_cost_quality -p POOL qwen3_server -p FIGURES /tmp/figures

-p NAME VALUE sets a parameter (the names in each notebook's first code cell, tagged `parameters`) as papermill
does: a cell tagged `injected-parameters` goes after that cell. VALUE is read as a Python literal when it is one
(3, None, "x"), else as text. A parameter a notebook does not have is skipped for that notebook.
"""

import argparse
import sys
import time
from pathlib import Path

import nbformat

from sale.analysis.notebooks import execute, parameter_names, parse_value

ROOT = Path(__file__).resolve().parents[1]


def declared(path: Path) -> list[str]:
    """The parameters a notebook declares (none without a `parameters` cell)."""
    try:
        return parameter_names(nbformat.read(path, as_version=4))
    except ValueError:
        return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook names (without .ipynb); default: all")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"), help="set a parameter"
    )
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        missing = sorted(set(args.names) - {p.stem for p in paths})
        if missing:
            parser.error(f"no notebook {missing} in notebooks/ (there are {[p.stem for p in paths]})")
        paths = [p for p in paths if p.stem in args.names]
    params = {name: parse_value(value) for name, value in args.parameter}
    names = {p: declared(p) for p in paths}
    unused = sorted(set(params) - {n for ns in names.values() for n in ns})
    if unused:
        parser.error(f"no notebook run here has the parameter(s) {unused}")
    failed = []
    for path in paths:
        mine = {k: v for k, v in params.items() if k in names[path]}
        t0 = time.perf_counter()
        try:
            execute(path, mine, timeout=args.timeout, save=True)
            shown = " ".join(f"{k}={v!r}" for k, v in mine.items())
            print(f"[notebooks] {path.name}: ok ({time.perf_counter() - t0:.0f} s){' ' + shown if shown else ''}")
        except Exception as e:  # report every notebook, then fail
            failed.append(path.name)
            print(f"[notebooks] {path.name}: FAILED\n{e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
