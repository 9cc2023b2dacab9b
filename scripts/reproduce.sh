#!/usr/bin/env bash
# The reference run on a pool (default cpu), stage by stage. Every stage resumes where it stopped, so after an
# interruption rerun the same command; finished stages cost only their cache look-ups.
#   bash scripts/reproduce.sh                 # all stages
#   bash scripts/reproduce.sh fit main        # only these stages
#   CONCURRENCY=4 bash scripts/reproduce.sh   # tasks in flight per run (run.concurrency)
#   SALE_DATA_DIR=data/next bash scripts/reproduce.sh   # write runs, weights and the overhead table under data/next
# Stages: scaling_test scaling_train fit main ablations overhead figures
#   bash scripts/reproduce.sh check           # regenerate every committed run from the committed call-cache shards
#                                             # into an empty data dir and compare them task for task (no model time)
# After each stage, and when the script stops early (a stage failed, or was stopped with SIGTERM), the pool's new
# call-cache entries become a shard under data/cache/<pool>/ (sale.llm.cache): commit it, and the next machine
# replays those calls instead of paying for them again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
POOL=${POOL:-cpu}  # a file in conf/pool/; its `name` names the runs (cpu_llamacpp is named cpu: the committed runs)
POOL_NAME=$($PY -c "import yaml, sys; print(yaml.safe_load(open('conf/pool/$POOL.yaml'))['name'])")
STAGES=${*:-scaling_test scaling_train fit main ablations overhead figures}
RUN="run.concurrency=${CONCURRENCY:-1}"
DATA=${SALE_DATA_DIR:-data}  # conf/config.yaml's data_dir reads the same variable
export_calls() { $PY -m sale.llm.cache export --pool "$POOL"; }
trap 'rc=$?; [ $rc -ne 0 ] && { export_calls || true; }; exit $rc' EXIT  # a stopped stage keeps the calls it made

for stage in $STAGES; do
  echo "=== $stage ($(date -u +%H:%M:%S) UTC)"
  case $stage in
    scaling_test)  $PY -m sale.run experiment=scaling pool=$POOL $RUN ;;
    scaling_train) $PY -m sale.run experiment=scaling pool=$POOL tasks.split=train tasks.per_bin=4 $RUN ;;
    fit)           $PY -m sale.fit pool=$POOL ;;
    main)          $PY -m sale.run -m experiment=main pool=$POOL $RUN ;;
    ablations)     $PY -m sale.run -m experiment=ablations pool=$POOL $RUN ;;
    overhead)      $PY scripts/bench_auction.py "$DATA/runs/main-sale-$POOL_NAME" --out "$DATA/bench/auction_overhead" ;;
    figures)       $PY scripts/run_notebooks.py ;;
    check)
      out=$(mktemp -d "${TMPDIR:-/tmp}/sale-check.XXXXXX")
      mkdir -p "$out/shards" && cp data/cache/"$POOL_NAME"/*.parquet "$out/shards/"
      start=$(date +%s)
      SALE_DATA_DIR="$out" SALE_CALL_CACHE="$out/calls.sqlite" SALE_CACHE_SHARDS="$out/shards" \
        bash "$0" scaling_test scaling_train fit main ablations
      echo "=== regenerated in $(( $(date +%s) - start )) s into $out; comparing with data/"
      $PY scripts/check_reproduction.py data "$out"
      continue ;;
    *) echo "unknown stage $stage; one of: scaling_test scaling_train fit main ablations overhead figures check" >&2; exit 2 ;;
  esac
  export_calls
done
