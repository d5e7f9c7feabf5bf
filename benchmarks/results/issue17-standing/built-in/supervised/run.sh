#!/bin/bash
# The supervised baseline as eval now trains it (the probe beside the model at the CPU preset's
# 0.5), through `simsearch eval` itself, on a copy of the cu130 base project (the same sample of
# annotations and seed): its first repeat should equal ../../ensemble/supervised.log at w 0.5.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ens-supv; mkdir -p $O/g16-plt
[ -d $O/g16-plt/base ] || cp -r /tmp/cu130/g16-plt/base $O/g16-plt/
date; $S eval $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --prototypes 10 --negatives 5 --repeats 1 \
  --device cpu --strategies supervised --out $O/g16-plt > $O/g16-plt.log 2>&1; echo "g16-plt rc $?"; date
