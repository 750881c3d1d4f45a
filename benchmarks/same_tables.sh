#!/bin/bash
# Result tables unchanged: the same demo data and checkpoints (2 untrained WAV2PIX 64 px + 4 baselines) evaluated
# with every suite by OLD_TREE and by this tree into two stores; rows compared exactly, `results` tables diffed.
# NEW_ONLY=1 re-runs only this tree against the stores of an earlier run; COMPARE_ONLY=1 only compares them. This tree also keeps item values beside
# its store (results-items/, new in issue 26); the rows themselves must be equal.
# A committed example's evaluation (reports/*.commands.sh): RUNS = its run folders (the first is evaluated, the
# rest are --baselines; trained once, read by both trees), EVAL_ARGS = the rest of its `evaluate` command (test
# list, judges, suites, --images ... --name ...; absolute paths) and PREPARE = its prepare command, e.g.
#   PREPARE="videos /abs/shared/data/grid_videos --mapping /abs/repo/reports/grid_example.mapping.csv \
#            --identity-meta /abs/repo/reports/grid_example.identity_meta.csv" RUNS="/abs/runs/wav2pix_64 ..." \
#   EVAL_ARGS="--backbone dlib_resnet,faceres --testlist /abs/repo/reports/grid_example.testlist.json ..." \
#   benchmarks/same_tables.sh OLD_TREE
set -e
PY=${PY:-python}
W=${W:-/tmp/w2p-same-tables}
NEW=$(cd "$(dirname "$0")/.." && pwd)
OLD=${1:?usage: benchmarks/same_tables.sh OLD_TREE (a checkout of the commit to compare with)}
SIDES="old new"
if [ -n "$COMPARE_ONLY" ]; then SIDES=""; elif [ -n "$NEW_ONLY" ]; then SIDES=new; rm -rf $W/cache_new $W/new.sqlite $W/new-items $W/samples; else
rm -rf $W; mkdir -p $W
cd $OLD
# PREPARE: the dataset (default the demo's); absolute paths, e.g. the small real GRID set:
# PREPARE="videos /abs/shared/data/grid_videos --mapping /abs/repo/reports/grid_example.mapping.csv"
PYTHONPATH=$OLD $PY -m w2p_eval prepare ${PREPARE:-demo --identities 10 --pairs 16} --out $W/data --seed 0
if [ -z "$RUNS" ]; then
for m in mean_face random_real real_faces speaker_retrieval; do
  PYTHONPATH=$OLD W2P_CACHE=$W/fitcache $PY -m w2p_eval train $OLD/baselines/$m.yaml --data $W/data --out $W/runs/$m
done
PYTHONPATH=$OLD $PY -c "
import sys; sys.path.insert(0, '$OLD/benchmarks')
from pathlib import Path
from evaluate import make_checkpoint
make_checkpoint(Path('$W/data'), Path('$W/runs/wav2pix/checkpoints/epoch_0000.pt'))
make_checkpoint(Path('$W/data'), Path('$W/runs/wav2pix/checkpoints/epoch_0001.pt'), seed=1)
"
fi
fi
if [ -n "$RUNS" ]; then
  set -- $RUNS; MAIN=$1; shift; ARGS="$MAIN $(for r in "$@"; do echo --baselines $r; done) $EVAL_ARGS"
else
  ARGS="$W/runs/wav2pix --baselines $W/runs/mean_face --baselines $W/runs/random_real --baselines $W/runs/real_faces \
        --baselines $W/runs/speaker_retrieval"
fi
for side in $SIDES; do
  T=$OLD; [ $side = new ] && T=$NEW
  (cd $T && PYTHONPATH=$T W2P_CACHE=$W/cache_$side $PY -m w2p_eval evaluate $ARGS --data $W/data \
     --store $W/$side.sqlite --cache-dir $W/cache_$side --seed 0)
done
for side in old new; do  # what users read: the printed table, and every digit (CSV)
  T=$OLD; [ $side = new ] && T=$NEW
  (cd $T && PYTHONPATH=$T $PY -m w2p_eval results --store $W/$side.sqlite > $W/printed_$side.txt)
  (cd $T && PYTHONPATH=$T $PY -m w2p_eval results --format csv --store $W/$side.sqlite > $W/results_$side.txt)
done
diff -q $W/printed_old.txt $W/printed_new.txt >/dev/null && echo "printed results tables identical" \
  || echo "printed results tables differ"
$PY - <<PYEOF
import sqlite3, json, pandas as pd, numpy as np
KEY = ["run", "checkpoint", "evaluator", "metric", "split", "protocol", "seed"]
def load(p):
    con = sqlite3.connect(p)
    df = pd.read_sql("select * from results", con)
    keep = ["run","model","checkpoint","checkpoint_hash","epoch","metric","split","protocol","seed","value","n",
            "evaluator","evaluator_version","config_hash","data_hash","extra","source"]
    return df[[c for c in keep if c in df.columns]].sort_values(KEY).reset_index(drop=True)
a, b = load("$W/old.sqlite"), load("$W/new.sqlite")
print("rows", len(a), len(b))
same = a.equals(b)
print("stores identical (values, n, extra, keys):", same)
if not same:
    m = a.merge(b, on=KEY, how="outer", suffixes=("_old","_new"), indicator=True)
    print("rows only in one store:", int((m["_merge"] != "both").sum()))
    m = m[m["_merge"] == "both"]
    for ev, g in m.groupby("evaluator"):
        va, vb = g["value_old"].astype(float), g["value_new"].astype(float)
        both_nan = va.isna() & vb.isna()
        diff = (va - vb).abs().where(~both_nan, 0.0)
        rel = (diff / va.abs().where(va.abs() > 0, 1.0)).max()
        ex = int((g["extra_old"].astype(str) != g["extra_new"].astype(str)).sum())
        other = [c for c in ("n", "evaluator_version", "config_hash", "data_hash") if c + "_old" in g and
                 (g[c + "_old"].astype(str) != g[c + "_new"].astype(str)).any()]
        print(f"  {ev}: {len(g)} rows, values differ in {int((diff > 0).sum())} (largest {diff.max():.3g}, relative "
              f"{rel:.3g}), extra differs in {ex}" + (f", also {other}" if other else ""))
PYEOF
diff -q $W/results_old.txt $W/results_new.txt >/dev/null && echo "results tables identical to every digit (CSV)" \
  || echo "results tables (CSV, every digit) differ: diff $W/results_old.txt $W/results_new.txt"
