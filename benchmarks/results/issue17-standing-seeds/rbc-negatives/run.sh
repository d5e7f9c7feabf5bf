#!/bin/bash
# BCCD's colour red cells (../../issue17-flatfield/run-bccd-auto-seeds.sh, rbc-none): each
# trial's probe trained again without the simulated user's negatives, and with them as
# positives. Results: results.jsonl (one line appended per run); errors in /tmp/rbc-negatives.log.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
R=benchmarks/results/issue17-standing-seeds/rbc-negatives
EVAL="$BCCD --classes RBC --patch-size RBC=96 --prototypes 10 --negatives 5 --repeats 3 --device cpu
  --out /tmp/ff-seeds/rbc-none"
for run in "r0 asis" "r0 nonegs" "r0 negs_as_pos" "r1 nonegs" "r1 negs_as_pos" "r2 nonegs" "r2 negs_as_pos"; do
  set -- $run
  T=/tmp/ff-seeds/rbc-none/work/RBC_P10_N5_probe_$1
  .venv/bin/python $R/ablate.py $T $2 probe -- $EVAL 2>> /tmp/rbc-negatives.log >> $R/results.jsonl
done
