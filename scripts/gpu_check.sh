#!/usr/bin/env bash
# The paper's pool (Qwen3 4B/8B/14B/32B, random weights) on one GPU, in one command sized for a short GPU session
# (it stops itself within GPU_CHECK_BUDGET_S, 450 s by default). docs/gpu.md says what it measures.
#
#   make gpu-wheels                       # once, on a machine with a package index: .gpu-wheels/
#   bash scripts/gpu_check.sh             # on the GPU machine (one CUDA GPU with 80 GB)
#   bash scripts/gpu_check.sh --shrunk    # the same path on a CPU, every architecture shrunk (a few minutes)
#
# 1. dependencies: python (PYTHON, else .venv/bin/python, else python3) must have torch, transformers, pandas and
#    pyarrow; when `import hydra` fails, the wheels of .gpu-wheels/ that are not installed go into .gpu-wheels/site
#    (pip --no-index --no-deps --target; nothing outside the checkout changes), and the tokenizer into the cache.
# 2. scripts/bench_gpu_qwen3.py: each architecture's build time, memory against sale.llm.placement, decode speed at
#    1 and 8 sequences, the batched jury's speed-up, KV reuse at turn 6.
# 3. scripts/bench_gpu_qwen3.py --harness: experiment=demo on pool=qwen3_random with run.gpus=1x80GB, end to end.
# 4. scripts/bench_gpu_qwen3.py --report: gpu_check.md, with the prediction for one order of the main run.
# Everything goes to $OUT if set, else data/bench/gpu-<gpu name>/ (--shrunk: runs/gpu-shrunk-cpu/).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SHRUNK=0
for arg in "$@"; do
  case "$arg" in
    --shrunk) SHRUNK=1 ;;
    *) echo "usage: bash scripts/gpu_check.sh [--shrunk]" >&2; exit 2 ;;
  esac
done
if [[ -n "${PYTHON:-}" ]]; then PY="$PYTHON"; elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
WHEELS="${GPU_WHEELS:-$ROOT/.gpu-wheels}"
BUDGET=${GPU_CHECK_BUDGET_S:-450}
export PYTHONPATH="$ROOT/src:$WHEELS/site${PYTHONPATH:+:$PYTHONPATH}"  # the checkout's package, with its conf/ and data/
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export SALE_CACHE_DIR="${SALE_CACHE_DIR:-$ROOT/.cache}"
START=$SECONDS

# 1. dependencies
if ! "$PY" -c "import hydra, omegaconf" 2>/dev/null; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    echo "error: $PY cannot import hydra and $WHEELS holds no wheels." >&2
    echo "  fix: run make gpu-wheels on a machine with a package index, and bring .gpu-wheels/ along" >&2
    exit 1
  fi
  mapfile -t MISSING < <("$PY" - "$WHEELS" <<'EOF'
import importlib.metadata as md, pathlib, sys
for wheel in sorted(pathlib.Path(sys.argv[1]).glob("*.whl")):
    try:
        md.version(wheel.name.split("-")[0])
    except md.PackageNotFoundError:
        print(wheel)
EOF
  )
  echo "[gpu_check] installing ${#MISSING[@]} wheels into $WHEELS/site"
  if ! "$PY" -m pip install --quiet --no-index --no-deps --target "$WHEELS/site" "${MISSING[@]}"; then
    echo "[gpu_check] pip failed: unpacking the wheels instead (they are pure Python)"
    "$PY" -c "import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]" \
      "$WHEELS/site" "${MISSING[@]}" || exit 1
  fi
fi
TOKENIZER="$SALE_CACHE_DIR/models/tokenizer-qwen2.5"
if [[ ! -f "$TOKENIZER/tokenizer.json" && -f "$WHEELS/tokenizer-qwen2.5/tokenizer.json" ]]; then
  mkdir -p "$(dirname "$TOKENIZER")" && cp -r "$WHEELS/tokenizer-qwen2.5" "$TOKENIZER"
fi
"$PY" -c "import sale.run, sale.harness.runner, sale.auction.sale, sale.tools.search, sale.tasks.humaneval, tabulate" \
  || { echo "error: the run's modules do not import (above); make gpu-wheels lists what it brings" >&2; exit 1; }

# where the results go
if [[ $SHRUNK == 1 ]]; then
  FLAGS=(--tiny)
  NAME=shrunk-cpu
  DEFAULT_OUT="runs/gpu-$NAME"
else
  FLAGS=()
  NAME=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')")
  if [[ -z "$NAME" ]]; then
    echo "error: no CUDA GPU visible to $PY (bash scripts/gpu_check.sh --shrunk checks the path on a CPU)" >&2
    exit 2
  fi
  NAME=$(echo "$NAME" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/-*$//')
  DEFAULT_OUT="data/bench/gpu-$NAME"
fi
OUT_DIR="${OUT:-$DEFAULT_OUT}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
: >"$LOG"
echo "[gpu_check] $NAME -> $OUT_DIR ($("$PY" -c 'import sys, torch, transformers; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)'))" | tee -a "$LOG"

status=0
step() {  # step <hard limit s> <args...>: one part, killed at its hard limit; the parts after it still run
  local limit=$1; shift
  echo "[gpu_check] $(( SECONDS - START )) s: bench_gpu_qwen3.py $*" | tee -a "$LOG"
  timeout --kill-after=15 "$limit" "$PY" scripts/bench_gpu_qwen3.py "${FLAGS[@]}" --out "$OUT_DIR" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  if [[ $rc != 0 ]]; then echo "[gpu_check] that part ended with status $rc" | tee -a "$LOG"; status=1; fi
}
# 2. per architecture: no new one starts after 150 s, a hard stop at 210 s
step 210 --budget-s 150
# 3. the harness: whatever the budget leaves, less a minute for the report
LEFT=$(( BUDGET - (SECONDS - START) - 60 ))
(( LEFT < 60 )) && LEFT=60
step $(( LEFT + 30 )) --harness --budget-s "$LEFT"
# 4. the report
step 45 --report
echo "[gpu_check] done in $(( SECONDS - START )) s: $OUT_DIR/gpu_check.md" | tee -a "$LOG"
exit $status
