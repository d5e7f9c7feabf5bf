#!/bin/bash
# The classifier stage's copies: each row trained 3 times per trial (--retrain 3, training seeds
# 0-2 on the same curated data) with 4 embeddings per example (the stage until 2026-12-05:
# --classifier-copies 4) and with 16 (the default since), the probe strategy, P 10, N 5, 3 trials,
# the CPU preset. The 16-copy run reuses the 4-copy run's embeddings (base/). Results in
# /tmp/copies/<row> and /tmp/copies/<row>-16-copies; `python spread.py */results.json` prints the tables.
# (The runs committed here were made with a worktree whose copies came from an environment
# variable: the same computation as the setting.)
cd /work/main
while pgrep -f "simsearch eval" > /dev/null; do sleep 20; done  # one evaluation at a time on 2 cores
. benchmarks/results/issue17-standing/data.sh
DSB="--images /tmp/dsb/images --truth /tmp/dsb/truth.csv --train-list /tmp/dsb/train.txt --test-list /tmp/dsb/test.txt --displayed 4"
O=/tmp/copies
mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies probe --retrain 3"
pair() { name=$1; shift
  [ -f $O/$name/report.md ] || $S eval "$@" $ALL --classifier-copies 4 --out $O/$name > $O/$name.log 2>&1
  [ -d $O/$name-16-copies/base ] || { mkdir -p $O/$name-16-copies && cp -r $O/$name/base $O/$name-16-copies/; }
  [ -f $O/$name-16-copies/report.md ] || $S eval "$@" $ALL --out $O/$name-16-copies > $O/$name-16-copies.log 2>&1
  echo "$name done"; }
pair smear10 $SM --classes infected --patch-size auto
pair inv-plt $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15
pair dsb $DSB --classes nucleus --patch-size nucleus=32
pair nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
pair look $LOOK --classes ellipse --patch-size 32
pair plt $BCCD --classes Platelets --patch-size Platelets=48
# the pipeline with 16 copies on the smear's curated data (against smear10/'s pipeline, 4 copies)
[ -d $O/smear10-pipeline-16-copies/base ] || { mkdir -p $O/smear10-pipeline-16-copies && cp -r $O/smear10/base $O/smear10-pipeline-16-copies/; }
$S eval $SM --classes infected --patch-size auto --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies pos+neg+selflearn --retrain 3 --out $O/smear10-pipeline-16-copies > $O/smear10-pipeline-16-copies.log 2>&1
