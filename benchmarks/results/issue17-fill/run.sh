#!/bin/bash
# The margin beyond the image's edge filled with the image's median colour ('background', now
# the default of new projects) against the neutral grey of before: similarity search, the probe
# and Pos+Neg+Selflearn, P 10, N 5, 3 trials, the CPU preset; the same trials (displayed
# images, prototypes) as ../issue17-gate/ (neutral), whose figures give the other column.
# Measured before the setting existed, by an experimental patch (the median over the image
# sampled at most 256 px per side, from the environment variable SS_FILL=median) on a git
# worktree; check-dsb/ repeats the DSB nuclei with the committed code (no patch, no variable).
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/fill
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn"
one() { name=$1; shift; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
one rbc $BCCD --classes RBC --patch-size RBC=96
one plt $BCCD --classes Platelets --patch-size Platelets=48
one wbc $BCCD --classes WBC --patch-size WBC=192   # similarity and probe only were run
one nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
DSB="--images /tmp/dsb/images --truth /tmp/dsb/truth.csv --train-list /tmp/dsb/train.txt --test-list /tmp/dsb/test.txt"
$S eval $DSB --classes nucleus --patch-size nucleus=32 --prototypes 5,10 --negatives 5 --repeats 3 --displayed 4 --device cpu \
  --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe --out /tmp/dsb/eval-median
