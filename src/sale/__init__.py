"""SALE: Strategy Auctions for Workload Efficiency (a reproduction of Alazraki et al., ICML 2026)."""

import os
from pathlib import Path

# llama.cpp's threads own the cores during decoding; BLAS threads that spin between numpy calls steal them.
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

__version__ = "0.1.0"

REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"
DATA_DIR = REPO_ROOT / "data"


class StorageError(RuntimeError):
    """A file the run writes or reads (journal, logs, call cache, run directory) cannot be used: a full disk, a
    read-only directory, a corrupt file. The message names the file, what went wrong and the fix."""
