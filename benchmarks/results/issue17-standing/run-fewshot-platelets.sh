#!/bin/bash
cd /work/main
# (waited for run-edge.sh)
. benchmarks/results/issue17-standing/data.sh
date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/s13/fewshot-plt --no-default --variant off_centre_views=false -- \
  $BCCD --classes Platelets --patch-size Platelets=48 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies pos+neg+selflearn > /tmp/s13/fewshot-plt.log 2>&1; date
echo done
