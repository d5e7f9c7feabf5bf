#!/bin/bash
# Pos+Neg+Selflearn with the backbone moved halfway back to its pretrained weights after the
# contrastive stages (pretrained_share=0.5, WiSE-FT's midpoint), on the same curations as
# run-cu130.sh (same plan and seeds), under the same torch build.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/wise; mkdir -p $O
A="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies pos+neg+selflearn"
run() { name=$1; shift; date; .venv/bin/python benchmarks/bench_ablation.py --out $O/$name --no-default \
  --variant pretrained_share=0.5 -- "$@" $A > $O/$name.log 2>&1; echo "$name rc $?"; }
run rbc $BCCD --classes RBC --patch-size RBC=96
run g16-rbc $G16 --classes RBC --patch-size RBC=auto
run plt $BCCD --classes Platelets --patch-size Platelets=48
date; echo done
