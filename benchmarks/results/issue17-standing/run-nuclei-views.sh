#!/bin/bash
cd /work/main
. benchmarks/results/issue17-standing/data.sh
date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/s12/nuc-views --no-default --variant off_centre_views=false -- \
  $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies supervised > /tmp/s12/nuc-views.log 2>&1; date
echo done
