#!/bin/bash
# The seed-0 pipeline models of the standing rows (P 10, N 5, 3 trials, the curations of
# ../issue17-standing-seeds/), trained again with today's code, then every saved model scored under
# each join (../../probe_join.py). The white cells' models are those of ../issue17-standing-seeds/v5
# (their evaluations, in /tmp/std-v5, kept seed 0's model). The data sets: ../issue17-standing/data.sh.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/join
R=benchmarks/results/issue17-probe-join
mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies pos+neg+selflearn --retrain 1"
one() { local name=$1; shift
  date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
one rbc $BCCD --classes RBC --patch-size RBC=96
one g16-rbc $G16 --classes RBC --patch-size RBC=auto
one smear10 $SM --classes infected --patch-size auto
one nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
one look $LOOK --classes ellipse --patch-size 32
one plt $BCCD --classes Platelets --patch-size Platelets=48
.venv/bin/python benchmarks/probe_join.py /tmp/std-v5/g16-wbc /tmp/std-v5/ff-g16-wbc /tmp/std-v5/inv-wbc \
  $O/rbc $O/g16-rbc $O/smear10 $O/nuc $O/look $O/plt --out $R/results.json > $R/table.md
date
