#!/usr/bin/env bash
# Issue #16: rerun on the cpu pool what the new deep-search agent (16 turns, lookup, "Question left") changes.
# Every step resumes where it stopped (the run journals and the call cache), so after an interruption rerun the
# same command:   nohup bash scripts/rerun_search_agent.sh > data/runs/next/rerun.log 2>&1 &
#
# The new scaling runs go to data/runs/next/ first: the committed ones (6-turn agent) stay where the README and the
# notebooks read them until the new ones are complete. Then, by hand (see the README's "Deep search" section):
#   git mv data/runs/scaling-cpu-train data/runs/archive/scaling-cpu-train-react6
#   git mv data/runs/scaling-cpu-test  data/runs/archive/scaling-cpu-test-react6
#   mv data/runs/next/scaling-cpu-train data/runs/next/scaling-cpu-test data/runs/
#   python -m sale.fit                                   # the weights, from the new train run
#   (move data/runs/main-{single,oracle,cascade,knn,mlc}-cpu to data/runs/archive/ likewise, then)
#   python -m sale.run -m experiment=main method=single,oracle,cascade,knn,mlc
#   make figures
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
NEXT=data/runs/next
mkdir -p "$NEXT"
stage() { echo "=== $1 ($(date -u +%H:%M:%S) UTC)"; }

stage "bids alone, test split (10 tasks per bin per domain): the share at the cap"
$PY scripts/plan_effect.py --bids-only --out data/bench/bids-test tasks.split=test tasks.per_bin=10
stage "plan vs no plan, train, 1 task per bin per domain (bids + executions; calls cached)"
$PY scripts/plan_effect.py --out data/bench/plans tasks.split=train tasks.per_bin=4 tasks.take_per_bin=1
stage "scaling, test split (10 tasks per bin per domain)"
$PY -m sale.run experiment=scaling tasks.split=test run.dir=$NEXT/scaling-cpu-test run.concurrency=4
$PY scripts/search_report.py $NEXT/scaling-cpu-test --md $NEXT/scaling-cpu-test/search_report.md
stage "scaling, train split (4 tasks per bin per domain)"
$PY -m sale.run experiment=scaling tasks.split=train tasks.per_bin=4 run.dir=$NEXT/scaling-cpu-train run.concurrency=4
$PY scripts/search_report.py $NEXT/scaling-cpu-train --md $NEXT/scaling-cpu-train/search_report.md
stage "done: swap the runs in, fit, rerun the main baselines and the figures (see the header of this script)"
