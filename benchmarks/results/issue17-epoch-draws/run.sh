#!/bin/bash
# The classifier stage's epoch: over all 16 copies of each example (the code until 2026-12-06) or
# over 4 of them drawn from the 16 (EPOCH_VIEWS=4, as many optimizer steps as the 4 copies the
# schedules were set with). Each finished trial's curated data trained again with training seeds
# 0-2 (../issue17-standing-seeds/rbc-negatives/ablate.py, one probe or pipeline training a line)
# from a worktree with epoch-views.patch applied at /tmp/hack, which takes the epoch's draws from
# EPOCH_VIEWS and the training seed from TRAIN_SEED. The trials are those of earlier runs:
# BCCD red cells ../issue17-flatfield (rbc-none), the other rows ../issue17-seeds (16 copies; the
# smear's pipeline smear10-pipeline-16-copies). Run from per-row scripts under /tmp with these
# arguments, in this order; BCCD platelets and the nuclei not run (time).
# About 110 min on the 2-core CPU. `python table.py *.jsonl` prints the tables.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
DSB="--images /tmp/dsb/images --truth /tmp/dsb/truth.csv --train-list /tmp/dsb/train.txt --test-list /tmp/dsb/test.txt --displayed 4"
R=benchmarks/results/issue17-epoch-draws
one() {  # ROW TRIAL STRATEGY COPIES DRAWS SEED
  local O C A
  case $1 in
    rbc) O=/tmp/ff-seeds/rbc-none; C=RBC; A="$BCCD --classes RBC --patch-size RBC=96";;
    smear) O=/tmp/copies16-smear; C=infected; A="$SM --classes infected --patch-size infected=24";;
    inv) O=/tmp/copies16-inv; C=Platelets; A="$INV --classes Platelets --patch-size Platelets=40 --pooling 0.15";;
    plt) O=/tmp/c16-plt; C=Platelets; A="$BCCD --classes Platelets --patch-size Platelets=48";;
    look) O=/tmp/c16-look; C=ellipse; A="$LOOK --classes ellipse --patch-size 32";;
    dsb) O=/tmp/c16-dsb; C=nucleus; A="$DSB --classes nucleus --patch-size nucleus=32";;
    nuc) O=/tmp/c16-nuc; C=nucleus; A="$NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089";;
    smear-pipeline) O=/tmp/pipe16-smear; C=infected; A="$SM --classes infected --patch-size infected=24";;
  esac
  EPOCH_VIEWS=$5 TRAIN_SEED=$6 PYTHONPATH=/tmp/hack .venv/bin/python /tmp/hack/benchmarks/results/issue17-standing-seeds/rbc-negatives/ablate.py \
    $O/work/${C}_P10_N5_$3_$2 asis $3 -- $A --prototypes 10 --negatives 5 --repeats 3 --device cpu --out $O \
    --classifier-copies $4 | sed "s/^{/{\"row\": \"$1\", /"
}
each() { for seed in 0 1 2; do for t in r0 r1 r2; do one $1 $t $2 $3 $4 $seed; done; done; }
for arm in "16 4" "4 4" "16 16" "16 2" "16 8"; do each rbc probe $arm; done 2>> /tmp/abl.err >> $R/rbc-probe.jsonl
one rbc r1 pos+neg+selflearn 16 16 0 2>> /tmp/abl3.err >> $R/rbc-pipeline.jsonl  # the eval's 0.7411 again
each rbc pos+neg+selflearn 16 4 2>> /tmp/abl3.err >> $R/rbc-pipeline.jsonl
{ each inv probe 16 4  # 2 min a run here: all draws, seed 0 only (its other seeds held out another fifth)
  for t in r0 r1 r2; do one inv $t probe 16 16 0; done
  for row in smear look; do for arm in "16 4" "16 16"; do each $row probe $arm; done; done
} 2>> /tmp/abl2.err >> $R/rows-probe.jsonl
for t in r0 r1 r2; do one smear-pipeline $t pos+neg+selflearn 16 4 0; done 2>> /tmp/abl4.err >> $R/smear-pipeline.jsonl
