#!/bin/bash
# BCCD's colour red cells: each trial's probe trained again on its curated data unchanged, with
# the 4 classifier copies of the old rows instead of today's 16 (seed 0, as the old row). If the
# probe comes back to the old row's 0.77-0.78 the copies explain the drop, otherwise the
# positives do. One line per run appended to results.jsonl; errors in /tmp/rbc-copies.log.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
R=benchmarks/results/issue17-standing-seeds/rbc-negatives
EVAL="$BCCD --classes RBC --patch-size RBC=96 --prototypes 10 --negatives 5 --repeats 3 --device cpu
  --out /tmp/ff-seeds/rbc-none --classifier-copies 4"
for trial in r0 r1 r2; do
  T=/tmp/ff-seeds/rbc-none/work/RBC_P10_N5_probe_$trial
  nice -n 10 .venv/bin/python $R/ablate.py $T asis probe -- $EVAL 2>> /tmp/rbc-copies.log >> $R/results.jsonl
done
