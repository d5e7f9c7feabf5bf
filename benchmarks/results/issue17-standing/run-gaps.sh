#!/bin/bash
# Annotation gaps on exhaustively annotated data: the planted nuclei with 40 % of the training
# images' nuclei left out of the truth (test images untouched), supervised against supervised-probe.
cd /work/main
while pgrep -f "issue17-standing/run-supervised-probe.sh" > /dev/null; do sleep 10; done
S=.venv/bin/simsearch
.venv/bin/python benchmarks/drop_annotations.py /tmp/nuc/truth.csv /tmp/nuc/train.txt nucleus 0.4 /tmp/nuc/truth-gaps.csv
date
$S eval --images /tmp/nuc/images --truth /tmp/nuc/truth-gaps.csv --train-list /tmp/nuc/train.txt --test-list /tmp/nuc/test.txt \
  --classes nucleus --patch-size nucleus=32 --pooling 0.089 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies supervised,supervised-probe --out /tmp/sp/nuc-gaps > /tmp/sp/nuc-gaps.log 2>&1; date
echo done
