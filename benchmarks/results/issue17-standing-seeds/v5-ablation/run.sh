#!/bin/bash
cd /tmp/hack
DSB="--images /tmp/dsb/images --truth /tmp/dsb/truth.csv --train-list /tmp/dsb/train.txt --test-list /tmp/dsb/test.txt --displayed 4"
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3"
for a in mask dedup avoid epoch; do for r in 0 1 2; do
  ABLATE=$a PYTHONPATH=/tmp/hack .venv/bin/python /tmp/abl/ablate.py /tmp/std-v5/dsb/work/nucleus_P10_N5_pos+neg+selflearn_r$r asis pos+neg+selflearn -- $DSB --classes nucleus --patch-size nucleus=32 $ALL --out /tmp/std-v5/dsb 2>>/tmp/abl/err.log
done; done
