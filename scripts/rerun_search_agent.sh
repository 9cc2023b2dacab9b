#!/usr/bin/env bash
# Issues #16 and #19: rerun on the cpu pool everything the new deep-search agent (16 turns, lookup, "Question left")
# and the new bids change. Every step resumes where it stopped (run journals, and the call cache with its committed
# shards), so after an interruption, on this machine or a fresh clone, rerun the same command:
#   nohup bash scripts/rerun_search_agent.sh > data/next/rerun.log 2>&1 &
# Before a session ends, stop it with SIGTERM (`kill <pid>`: a background job ignores SIGINT), then commit data/next/
# and data/cache/cpu/: the next session resumes from them.
#
# 1. Everything is staged under data/next/ (SALE_DATA_DIR, conf/config.yaml's data_dir), so the committed tree stays
#    consistent however many sessions this takes: the committed reference runs (6-turn agent, old bids), weights and
#    overhead table stay where the README and the notebooks read them until their replacements are complete.
# 2. Two swaps, each moving the old outputs to archive/ folders with the suffix -react6 and the staged ones in:
#    a. the main part: the scaling runs on test and train, the weight fit, the main comparison (SALE over 5 orders
#       included) and the overhead table from it; then the notebooks redraw the figures;
#    b. the ablations (13 runs of 30 tasks, the longest part), once all of them are done; then the figures again.
#    Until b, the ablation table and figure come from the 6-turn runs, and the README says so.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
NEXT=data/next
stage() { echo "=== $1 ($(date -u +%H:%M:%S) UTC)"; }
archive_and_move() {  # archive_and_move <staged run dir>...: data/runs/<name> → data/runs/archive/<name>-react6
  mkdir -p data/runs/archive
  for staged in "$@"; do
    [ -d "$staged" ] || continue
    name=$(basename "$staged")
    if [ -d "data/runs/$name" ]; then mv "data/runs/$name" "data/runs/archive/$name-react6"; fi
    mv "$staged" "data/runs/$name"
  done
}
mkdir -p "$NEXT/runs"

if [ ! -f "$NEXT/swapped-main" ]; then
  export SALE_DATA_DIR=$NEXT
  stage "scaling on test and train, staged in $NEXT/runs"
  CONCURRENCY=4 bash scripts/reproduce.sh scaling_test scaling_train
  for split in test train; do
    $PY scripts/search_report.py "$NEXT/runs/scaling-cpu-$split" --md "$NEXT/runs/scaling-cpu-$split/search_report.md"
  done
  stage "the weight fit, the main comparison and its overhead table, staged in $NEXT"
  CONCURRENCY=4 bash scripts/reproduce.sh fit main overhead
  unset SALE_DATA_DIR

  stage "swap a: the old scaling, main, weights and overhead table to archive/*-react6, the staged ones in"
  archive_and_move "$NEXT/runs/scaling-cpu-test" "$NEXT/runs/scaling-cpu-train" "$NEXT"/runs/main-*-cpu
  mkdir -p data/weights/archive data/bench/archive
  if [ -d data/weights/cpu ]; then mv data/weights/cpu data/weights/archive/cpu-react6; fi
  cp -r "$NEXT/weights/cpu" data/weights/cpu  # the staged copy stays: the staged ablations read their weights there
  for ext in md parquet; do
    if [ -f "data/bench/auction_overhead.$ext" ]; then
      mv "data/bench/auction_overhead.$ext" "data/bench/archive/auction_overhead-react6.$ext"
    fi
    mv "$NEXT/bench/auction_overhead.$ext" data/bench/
  done
  # The fit's report and the weights' provenance name the staged train run: refit from the moved features (no
  # model call, the same weights) so they name data/runs.
  $PY -m sale.fit fit.reuse_features=true
  touch "$NEXT/swapped-main"
  stage "the notebooks' figures from the new scaling and main runs"
  bash scripts/reproduce.sh figures
fi

if [ ! -f "$NEXT/swapped-ablations" ]; then
  stage "the ablations, staged in $NEXT/runs"
  SALE_DATA_DIR=$NEXT CONCURRENCY=4 bash scripts/reproduce.sh ablations
  stage "swap b: the old ablation runs to archive/*-react6, the staged ones in"
  archive_and_move "$NEXT"/runs/ablation-*-cpu
  rm -rf "$NEXT/weights"  # the staged copy the ablations read; data/weights/cpu holds the same files
  touch "$NEXT/swapped-ablations"
fi

stage "the notebooks' figures from the new runs"
bash scripts/reproduce.sh figures
stage "done: commit data/, figures/ and notebooks/, and update the README's tables"
