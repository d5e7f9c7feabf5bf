#!/bin/bash
# v5's fixes reverted on the grey 16-bit platelets with the flat field, over 3 trials x 3 seeds
# (2026-12-07; run in /tmp/hack, a worktree of 13f98c3 with toggles-nuc.patch; /tmp/abl/ablate_ff.py is
# ../rbc-negatives/ablate.py with ablate_ff.patch).
# Stopped after all four reverted reproduced version 4's first 5 runs to the last digit; ff2.sh went on.
cd /tmp/hack
. /work/main/benchmarks/results/issue17-standing/data.sh
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3"
run() { ABLATE=$1 SEED=$3 PYTHONPATH=/tmp/hack .venv/bin/python /tmp/abl/ablate_ff.py /tmp/std-v5/ff-g16-plt/work/Platelets_P10_N5_pos+neg+selflearn_r$2 asis pos+neg+selflearn -- $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field divide $ALL --out /tmp/std-v5/ff-g16-plt 2>>/tmp/abl/ff-err.log; }
date
run none 0 0
for a in holdout,avoid,mask,epoch holdout avoid; do for r in 0 1 2; do for s in 0 1 2; do run $a $r $s; done; done; date; done
