#!/bin/bash
# A rare class among look-alikes (issue 17's unseen gametocytes and trophozoites: a few objects
# in thousands of red cells): planted look-alikes with one shape rare (each object that shape
# with probability 0.02, about one in two images holding one), P 5, N 5, 3 trials, the CPU preset.
cd /work/main
S=.venv/bin/simsearch
for shape in ring ellipse; do
  D=/tmp/rare-$shape
  [ -d $D ] || .venv/bin/python examples/planted_lookalikes.py $D --rare $shape=0.02
  date; $S eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
    --classes $shape --patch-size 32 --prototypes 5 --negatives 5 --repeats 3 --device cpu \
    --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe --out $D/eval > $D/eval.log 2>&1
  echo "$shape rc $?"
done; date
