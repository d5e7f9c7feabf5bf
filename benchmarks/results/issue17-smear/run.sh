#!/bin/bash
# A planted stained blood smear (examples/planted_smear.py): the rare infected red cell, told from
# its look-alikes by colour and inner texture, and the rare crescent gametocyte; eval's defaults
# (pooling auto) and --patch-size auto, P 5, N 5, 3 trials, the CPU preset.
cd /work/main
S=.venv/bin/simsearch
D=/tmp/smear
[ -d $D ] || .venv/bin/python examples/planted_smear.py $D
for class in infected gametocyte; do
  date; $S eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
    --classes $class --patch-size auto --prototypes 5 --negatives 5 --repeats 3 --device cpu \
    --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe --out $D/eval-$class > $D/eval-$class.log 2>&1
  echo "$class rc $?"
done; date
