#!/bin/bash
# The baselines on the planted look-alikes under torch 2.14.1+cu130 (the standings table's blank
# cells): supervised (the probe beside it at the CPU preset's 0.5, as eval now trains it) and
# supervised-probe, 3 seeds, on a copy of run.sh's base project. Results copied to supervised/.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ens-look/supervised; mkdir -p $O
[ -d $O/base ] || cp -r /tmp/ens-look/alone/base $O/
date; $S eval $LOOK --classes ring,ellipse --patch-size 32 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies supervised,supervised-probe --out $O > $O.log 2>&1; echo "supervised rc $?"; date
