#!/bin/bash
# BCCD red cells, where supervised falls below supervised-probe: the baselines under variants of
# the training settings, the same seeded sample of annotations in each.
cd /work/main
# (waited for run-look-supervised.sh)
B=../shared/data/bccd
date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/sp/rbc-ablation --variant off_centre_views=false \
  --variant supcon.lr=0.0001 -- \
  --images $B/JPEGImages --truth $B/Annotations --train-list $B/ImageSets/Main/train.txt \
  --test-list $B/ImageSets/Main/test.txt --classes RBC --patch-size RBC=96 --prototypes 10 --negatives 5 \
  --repeats 3 --device cpu --strategies supervised,supervised-probe > /tmp/sp/rbc-ablation.log 2>&1; date
echo done
# then grey 16-bit red cells (patch auto: 112) and BCCD white cells (192) without off-centre views
G16="--images /tmp/bccd16/images --truth /tmp/bccd16/truth.csv --train-list /tmp/bccd16/train.txt --test-list /tmp/bccd16/test.txt"
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/sp/g16-rbc-ablation --no-default --variant off_centre_views=false -- \
  $G16 --classes RBC --patch-size RBC=auto --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies supervised > /tmp/sp/g16-rbc-ablation.log 2>&1; date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/sp/wbc-ablation --no-default --variant off_centre_views=false -- \
  --images $B/JPEGImages --truth $B/Annotations --train-list $B/ImageSets/Main/train.txt \
  --test-list $B/ImageSets/Main/test.txt --classes WBC --patch-size WBC=192 --prototypes 10 --negatives 5 \
  --repeats 3 --device cpu --strategies supervised > /tmp/sp/wbc-ablation.log 2>&1; date
# then the few-shot model (P 10, N 5, 3 trials) on both red-cell sets without the views
. benchmarks/results/issue17-standing/data.sh
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/sp/fewshot-views --no-default --variant off_centre_views=false -- \
  $BCCD --classes RBC --patch-size RBC=96 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies pos+neg+selflearn > /tmp/sp/fewshot-views.log 2>&1; date
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/sp/fewshot-views-g16 --no-default --variant off_centre_views=false -- \
  $G16 --classes RBC --patch-size RBC=auto --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies pos+neg+selflearn > /tmp/sp/fewshot-views-g16.log 2>&1; date
# then BCCD platelets' supervised baseline without the views
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/sp/plt-ablation --no-default --variant off_centre_views=false -- \
  $BCCD --classes Platelets --patch-size Platelets=48 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies supervised > /tmp/sp/plt-ablation.log 2>&1; date
