#!/bin/bash
# BCCD at half size (grey 16-bit, every image halved; ../issue17-half-size/) re-run with the
# simulated user of version 2 and the median fill: eval's defaults (patch and pooling `auto`),
# P 10, N 5, 3 trials, the CPU preset, with the supervised baselines, committed code (70d284b).
cd /work/main
S=.venv/bin/simsearch
D=/tmp/bccd-half
[ -d $D/images ] || .venv/bin/python examples/bccd_to_csv.py ../shared/data/bccd $D --scales 0.5
O=/tmp/fill2/half
date; $S eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
  --classes WBC,RBC,Platelets --patch-size auto --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe --out $O > $O.log 2>&1
echo "rc $?"; date
