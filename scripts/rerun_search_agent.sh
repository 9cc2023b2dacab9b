#!/usr/bin/env bash
# Issues #16 and #19: rerun on the cpu pool everything the new deep-search agent (16 turns, lookup, "Question left")
# and the new bids change. Every step resumes where it stopped (run journals, and the call cache with its committed
# shards), so after an interruption, on this machine or a fresh clone, rerun the same command:
#   nohup bash scripts/rerun_search_agent.sh > data/next/rerun.log 2>&1 &
# Before a session ends, stop it with SIGTERM (`kill <pid>`: a background job ignores SIGINT), then commit data/next/
# and data/cache/cpu/: the next session resumes from them.
#
# 1. Everything is staged under data/next/ (SALE_DATA_DIR, conf/config.yaml's data_dir): the scaling runs on test and
#    train, the weight fit, the main comparison (baselines, SALE over 5 orders, random), the ablations and the overhead
#    table. The committed reference runs (6-turn agent, old bids), the weights and the overhead table stay where the
#    README and the notebooks read them, so the committed tree stays consistent however many sessions this takes.
# 2. Once every stage is done, the old ones move to archive/ folders with the suffix -react6 and the staged ones move
#    in, all at once (a run is tied to its inputs relative to data_dir, so the moved runs still resume).
# 3. Then the notebooks redraw the figures from the new runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
NEXT=data/next
stage() { echo "=== $1 ($(date -u +%H:%M:%S) UTC)"; }
mkdir -p "$NEXT/runs"

if [ ! -f "$NEXT/swapped" ]; then
  export SALE_DATA_DIR=$NEXT
  stage "scaling on test and train, staged in $NEXT/runs"
  CONCURRENCY=4 bash scripts/reproduce.sh scaling_test scaling_train
  for split in test train; do
    $PY scripts/search_report.py "$NEXT/runs/scaling-cpu-$split" --md "$NEXT/runs/scaling-cpu-$split/search_report.md"
  done
  stage "the weight fit, the main comparison, the ablations, the overhead table, staged in $NEXT"
  CONCURRENCY=4 bash scripts/reproduce.sh fit main ablations overhead
  unset SALE_DATA_DIR

  stage "swap: the old reference outputs to archive/*-react6, the staged ones in"
  mkdir -p data/runs/archive data/weights/archive data/bench/archive
  for run in data/runs/scaling-cpu-test data/runs/scaling-cpu-train data/runs/main-*-cpu data/runs/ablation-*-cpu; do
    if [ -d "$run" ] && [ -d "$NEXT/runs/$(basename "$run")" ]; then
      mv "$run" "data/runs/archive/$(basename "$run")-react6"
    fi
  done
  for run in "$NEXT"/runs/*/; do mv "$run" data/runs/; done
  if [ -d "$NEXT/weights/cpu" ]; then
    [ -d data/weights/cpu ] && mv data/weights/cpu data/weights/archive/cpu-react6
    mv "$NEXT/weights/cpu" data/weights/cpu
  fi
  for ext in md parquet; do
    if [ -f "$NEXT/bench/auction_overhead.$ext" ]; then
      [ -f "data/bench/auction_overhead.$ext" ] && mv "data/bench/auction_overhead.$ext" "data/bench/archive/auction_overhead-react6.$ext"
      mv "$NEXT/bench/auction_overhead.$ext" data/bench/
    fi
  done
  # The fit's report and the weights' provenance name the staged train run: refit from the moved features (no
  # model call, the same weights) so they name data/runs.
  $PY -m sale.fit fit.reuse_features=true
  touch "$NEXT/swapped"
fi

stage "the notebooks' figures from the new runs"
bash scripts/reproduce.sh figures
stage "done: commit data/, figures/ and notebooks/, and update the README's scaling and SALE tables"
