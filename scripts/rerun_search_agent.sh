#!/usr/bin/env bash
# Issues #16 and #19: rerun on the cpu pool everything the new deep-search agent (16 turns, lookup, "Question left")
# and the new bids change. Every step resumes where it stopped (run journals, and the call cache with its committed
# shards), so after an interruption, on this machine or a fresh clone, rerun the same command:
#   nohup bash scripts/rerun_search_agent.sh > data/runs/next/rerun.log 2>&1 &
# Commit data/runs/next/*/journal.jsonl and data/cache/cpu/ before a session ends: the next one resumes from them.
#
# 1. The scaling runs go to data/runs/next/ first, so the committed ones (6-turn agent) stay where the README and the
#    notebooks read them until both new ones are complete (a finished run has results.parquet).
# 2. Then the old reference runs move to data/runs/archive/<name>-react6 (the scaling runs, and every SALE, baseline
#    and ablation run: they ran the old agent, and a run directory keeps its config) and the new scaling runs move in.
# 3. Then the rest of scripts/reproduce.sh: the weight fit, the main comparison (baselines, SALE over 5 orders,
#    random), the ablations, the overhead benchmark and the notebooks' figures.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
NEXT=data/runs/next
RUNS=data/runs
ARCHIVE=data/runs/archive
mkdir -p "$NEXT" "$ARCHIVE"
stage() { echo "=== $1 ($(date -u +%H:%M:%S) UTC)"; }

for split in test train; do
  if [ -f "$RUNS/scaling-cpu-$split/results.parquet" ] && [ ! -d "$NEXT/scaling-cpu-$split" ] \
     && [ -d "$ARCHIVE/scaling-cpu-$split-react6" ]; then
    continue  # already swapped in
  fi
  stage "scaling, $split split, new agent -> $NEXT/scaling-cpu-$split"
  per_bin=$([ "$split" = test ] && echo 10 || echo 4)
  $PY -m sale.run experiment=scaling tasks.split=$split tasks.per_bin=$per_bin run.dir=$NEXT/scaling-cpu-$split \
      run.concurrency=4
  $PY -m sale.llm.cache export --pool cpu
  $PY scripts/search_report.py $NEXT/scaling-cpu-$split --md $NEXT/scaling-cpu-$split/search_report.md
done

if [ -d "$NEXT/scaling-cpu-test" ] || [ -d "$NEXT/scaling-cpu-train" ]; then
  stage "swap: the old reference runs to $ARCHIVE/*-react6, the new scaling runs in"
  for run in "$RUNS"/scaling-cpu-test "$RUNS"/scaling-cpu-train "$RUNS"/main-*-cpu "$RUNS"/ablation-*-cpu; do
    if [ -d "$run" ] && [ ! -d "$ARCHIVE/$(basename "$run")-react6" ]; then
      git mv "$run" "$ARCHIVE/$(basename "$run")-react6"
    fi
  done
  mv "$NEXT/scaling-cpu-test" "$NEXT/scaling-cpu-train" "$RUNS/"
fi

stage "the weight fit, the main comparison, the ablations, the overhead benchmark, the figures"
CONCURRENCY=4 bash scripts/reproduce.sh fit main ablations overhead figures
stage "done: update the README's scaling and SALE tables from the new runs"
