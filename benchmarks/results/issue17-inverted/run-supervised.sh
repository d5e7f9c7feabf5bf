#!/bin/bash
# The supervised baselines on the same plan (every training annotation: `supervised` with the probe beside the
# model at the CPU preset's 0.5, and `supervised-probe`, the probe alone on them): eval resumes run.sh's results
# and adds only these trials.
cd /work/main
D=/tmp/bccd12inv
date; .venv/bin/simsearch eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
  --classes WBC,Platelets --patch-size WBC=auto,Platelets=40 --pooling 0.15 --prototypes 10 --negatives 5 --repeats 3 \
  --device cpu --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe --out $D/eval > $D/eval-supervised.log 2>&1
echo "rc $?"; date
