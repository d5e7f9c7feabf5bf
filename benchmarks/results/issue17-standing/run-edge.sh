#!/bin/bash
# supervised and supervised-probe with and without the off-centre views, scored also away from the image edge
cd /work/main
. benchmarks/results/issue17-standing/data.sh
A="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies supervised,supervised-probe"
date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/s13/rbc --variant off_centre_views=false -- \
  $BCCD --classes RBC --patch-size RBC=96 $A > /tmp/s13/rbc.log 2>&1; date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/s13/plt --variant off_centre_views=false -- \
  $BCCD --classes Platelets --patch-size Platelets=48 $A > /tmp/s13/plt.log 2>&1; date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/s13/g16-rbc --variant off_centre_views=false -- \
  $G16 --classes RBC --patch-size RBC=auto $A > /tmp/s13/g16-rbc.log 2>&1; date
echo done
