#!/usr/bin/env bash
# Idempotent set-up: a virtual environment with torch (CPU build) first, then this package and its
# dependencies (prebuilt wheels: nothing compiles), then the model files of a pool, then a check that the
# llama.cpp engine runs on this CPU. Every make target calls it; a second run does next to nothing.
#   POOL=cpu (default) | tiny | qwen3 ...   which pool's model assets to fetch
#   VENV=.venv                               where the environment lives
#   EXTRAS=cluster                           optional extras to install (make test and make lint add dev)
#   SALE_CACHE_DIR=.cache                    where model files are assembled (git-ignored)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
POOL=${POOL:-cpu}
EXTRAS=${EXTRAS:-cluster}
if [ -z "${PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1 && python3.11 -c 'pass' 2>/dev/null; then PYTHON=python3.11; else PYTHON=python3; fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
stamp="$VENV/.sale-installed"  # the pyproject.toml hash it installed, then each extra it installed, one a line
want=$(sha256sum < pyproject.toml | cut -c1-16)
installed() { [ "$(head -1 "$stamp" 2>/dev/null)" = "$want" ] && for e in ${EXTRAS//,/ }; do grep -qx "$e" "$stamp" || return 1; done; }
if ! installed; then
  # torch first: with 2.13.0 present, the package's 'torch>=2.4' installs nothing more (no CUDA wheels).
  if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
    echo "[setup] installing torch==2.13.0"
    $PIP install -q torch==2.13.0
  fi
  echo "[setup] installing the sale package and its dependencies"
  # the extras already installed stay: make setup after make test keeps the dev tools
  [ "$(head -1 "$stamp" 2>/dev/null)" = "$want" ] && EXTRAS=$( (tail -n +2 "$stamp"; echo "${EXTRAS//,/$'\n'}") | sort -u | paste -sd, -)
  $PIP install -q -e ".[$EXTRAS]"
  { echo "$want"; echo "${EXTRAS//,/$'\n'}"; } > "$stamp"
fi
"$VENV/bin/python" -m sale.assets fetch "pool=$POOL"
# A crash of the engine on this CPU (an illegal instruction, say) stops here, with the CPU's features and the fix,
# rather than halfway through the tests. The stamp skips the check until the engine, the model or the CPU changes.
"$VENV/bin/python" -m sale.llm.engine_check "pool=$POOL" --stamp "${ENGINE_STAMP:-$VENV/.sale-engine-ok}"
