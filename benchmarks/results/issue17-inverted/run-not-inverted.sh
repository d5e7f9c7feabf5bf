#!/bin/bash
# The same 12-bit storage with its dark offset, not inverted: similarity search only (the
# same prototypes), to tell the inversion's cost from the bit depth's.
cd /work/main
S=.venv/bin/simsearch
D=/tmp/bccd12
[ -d $D ] || .venv/bin/python benchmarks/results/issue17-inverted/convert.py /tmp/bccd16 $D
date; $S eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
  --classes WBC,Platelets --patch-size WBC=auto,Platelets=40 --pooling 0.15 --prototypes 10 --negatives 5 --repeats 3 \
  --device cpu --strategies similarity --out $D/eval > $D/eval.log 2>&1; echo "rc $?"; date
