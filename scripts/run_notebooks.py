"""Execute the numbered notebooks against the logs (they only read logs) and write figures/.

python scripts/run_notebooks.py                 # every notebooks/NN_*.ipynb, outputs saved in place
python scripts/run_notebooks.py 01_scaling      # just one
"""

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebook names (without .ipynb); default: all")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = parser.parse_args()
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names]
    failed = []
    for path in paths:
        t0 = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        try:
            NotebookClient(
                nb, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
            ).execute()
            nbformat.write(nb, path)
            print(f"[notebooks] {path.name}: ok ({time.perf_counter() - t0:.0f} s)")
        except Exception as e:  # report every notebook, then fail
            failed.append(path.name)
            print(f"[notebooks] {path.name}: FAILED\n{e}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
