#!/bin/bash
# BCCD as a lower magnification would give it: grey 16-bit and every image at half size
# (examples/bccd_to_csv.py --scales 0.5: 320x240 px; platelets about 21 px, red cells 55, white
# cells 100). All three classes with eval's defaults (patch and pooling `auto`), P 10, N 5,
# 3 trials, CPU preset: do the defaults still beat similarity search and the probe when the
# objects are small?
cd /work/main
S=.venv/bin/simsearch
D=/tmp/bccd-half
[ -d $D ] || .venv/bin/python examples/bccd_to_csv.py ../shared/data/bccd $D --scales 0.5
date; $S eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
  --classes WBC,RBC,Platelets --patch-size auto --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies similarity,probe,pos+neg+selflearn,supervised --out $D/eval > $D/eval.log 2>&1; echo "rc $?"; date
