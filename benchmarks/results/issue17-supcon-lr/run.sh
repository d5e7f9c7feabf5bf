#!/bin/bash
# Issue 17: the contrastive stage at 1e-4 instead of the CPU preset's 1e-3, over training seeds 0-2
# (--retrain 3), Pos+Neg+Selflearn only, on the curations of the planted nuclei with half the
# training nuclei left out (../issue17-partial-truth/nuc-gaps/, P 10, N 5, 3 trials), where a few
# wrong labels hold the trained half level with the probe and seed 0 put this rate above the
# preset. It reuses that evaluation's embeddings; results in /tmp/supcon-lr/<row>/, copied to
# <row>/ here. (BCCD's red cells and platelets were to follow; over seeds the nuclei moved by
# nothing, so they were not run: README.)
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/supcon-lr R=benchmarks/results/issue17-supcon-lr
LEVER="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies pos+neg+selflearn --retrain 3"
row() { local name=$1 base=$2; shift 2
  [ -f $R/$name/ablation.md ] && return
  mkdir -p $O/$name/supcon.lr-0.0001 && [ -d $O/$name/supcon.lr-0.0001/base ] || cp -r $base $O/$name/supcon.lr-0.0001/
  date; .venv/bin/python benchmarks/bench_ablation.py --out $O/$name --no-default --variant supcon.lr=0.0001 -- "$@" $LEVER \
    > $O/$name.log 2>&1 || { echo "$name failed"; return; }
  mkdir -p $R/$name/supcon.lr-0.0001 && cp $O/$name/ablation.* $R/$name/ && cp $O/$name/supcon.lr-0.0001/{report.md,results.json} $R/$name/supcon.lr-0.0001/ \
    && cp $O/$name.log $R/$name/eval.log; }
row nuc-gaps /tmp/std-v5/nuc-gaps/base --images /tmp/nuc/images --truth /tmp/nuc/truth-gaps.csv --train-list /tmp/nuc/train.txt \
  --test-list /tmp/nuc/test.txt --classes nucleus --patch-size nucleus=32 --pooling 0.089
date
