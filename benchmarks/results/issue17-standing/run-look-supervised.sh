#!/bin/bash
# The supervised baseline beside supervised-probe on the planted look-alikes (resumes /tmp/sp/look).
cd /work/main
while pgrep -f "issue17-standing/run-(supervised-probe|gaps).sh" > /dev/null; do sleep 10; done
date
.venv/bin/simsearch eval --images /tmp/look/images --truth /tmp/look/truth.csv --train-list /tmp/look/train.txt \
  --test-list /tmp/look/test.txt --classes ring,ellipse,slit --patch-size 32 --prototypes 10 --negatives 5 --repeats 3 \
  --device cpu --strategies supervised,supervised-probe --out /tmp/sp/look > /tmp/sp/look-sup.log 2>&1; date
echo done
