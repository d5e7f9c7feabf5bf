#!/bin/bash
cd /tmp/hack
NUC="--images /tmp/nuc/images --truth /tmp/nuc/truth.csv --train-list /tmp/nuc/train.txt --test-list /tmp/nuc/test.txt"
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3"
for a in none holdout avoid mask epoch; do for r in 0 1 2; do
  [ $a = none ] && [ $r != 0 ] && continue
  ABLATE=$a PYTHONPATH=/tmp/hack .venv/bin/python /tmp/abl/ablate_nuc.py /tmp/std-v5/nuc/work/nucleus_P10_N5_pos+neg+selflearn_r$r asis pos+neg+selflearn -- $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089 $ALL --out /tmp/std-v5/nuc 2>>/tmp/abl/nuc-err.log
done; done
date
