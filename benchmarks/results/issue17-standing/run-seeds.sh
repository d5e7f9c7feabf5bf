#!/bin/bash
# the supervised baseline with 3 training seeds (one per repeat), with and without the off-centre views
cd /work/main
. benchmarks/results/issue17-standing/data.sh
A="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies supervised"
date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/s15/plt --variant off_centre_views=false -- \
  $BCCD --classes Platelets --patch-size Platelets=48 $A > /tmp/s15/plt.log 2>&1; date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/s15/rbc --variant off_centre_views=false -- \
  $BCCD --classes RBC --patch-size RBC=96 $A > /tmp/s15/rbc.log 2>&1; date
echo done
