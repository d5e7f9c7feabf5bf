#!/bin/bash
# simsearch eval itself, with the gate in the CPU preset, on the smear at P 5 (builtin-smear/)
cd /work/main
D=/tmp/smear
date; .venv/bin/simsearch eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt \
  --test-list $D/test.txt --classes infected --patch-size auto --negatives 5 --repeats 3 --device cpu --prototypes 5 \
  --strategies probe,pos+neg+selflearn --out /tmp/gate/builtin-smear > /tmp/gate/builtin-smear.log 2>&1
echo "rc $?"; date
