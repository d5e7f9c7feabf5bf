#!/bin/bash
# v5's holdout and avoid fixes reverted one at a time on the grey 16-bit platelets with the flat field,
# trials r0 and r1 (v5 under v4 by 0.012 and 0.005 there), seeds 0-2; all four reverted reproduce v4 exactly
cd /tmp/hack
. /work/main/benchmarks/results/issue17-standing/data.sh
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3"
run() { ABLATE=$1 SEED=$3 PYTHONPATH=/tmp/hack .venv/bin/python /tmp/abl/ablate_ff.py /tmp/std-v5/ff-g16-plt/work/Platelets_P10_N5_pos+neg+selflearn_r$2 asis pos+neg+selflearn -- $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field divide $ALL --out /tmp/std-v5/ff-g16-plt 2>>/tmp/abl/ff-err.log; }
while pgrep -f bench_pipeline.py > /dev/null; do sleep 10; done
for r in 0 1; do for a in holdout avoid; do for s in 0 1 2; do run $a $r $s; done; date; done; done
