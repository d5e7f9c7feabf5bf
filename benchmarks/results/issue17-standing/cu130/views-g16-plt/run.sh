#!/bin/bash
# grey 16-bit platelets without the off-centre views, on the curations and seeds of ../g16-plt
cd /work/main
. benchmarks/results/issue17-standing/data.sh
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/views/g16-plt --no-default --variant off_centre_views=false -- \
  $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies supervised,supervised-probe,pos+neg+selflearn > /tmp/views/g16-plt.log 2>&1
