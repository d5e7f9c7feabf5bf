#!/bin/bash
# BCCD as a fluorescence camera might give it: the grey 16-bit images (examples/bccd_to_csv.py,
# /tmp/bccd16) inverted (bright cells on a dark background) and stored as 12-bit values with a
# dark offset of 100 (100..3786 in uint16). White cells and platelets, P 10, N 5, 3 trials,
# CPU preset: does the default still beat similarity search and the probe?
cd /work/main
S=.venv/bin/simsearch
D=/tmp/bccd12inv
[ -d $D ] || .venv/bin/python benchmarks/results/issue17-inverted/convert.py /tmp/bccd16 $D --invert
date; $S eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
  --classes WBC,Platelets --patch-size WBC=auto,Platelets=40 --pooling 0.15 --prototypes 10 --negatives 5 --repeats 3 \
  --device cpu --strategies similarity,probe,pos+neg+selflearn --out $D/eval > $D/eval.log 2>&1; echo "rc $?"; date
