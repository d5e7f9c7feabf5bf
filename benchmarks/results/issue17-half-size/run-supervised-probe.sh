#!/bin/bash
# The probe on every training annotation (`supervised-probe`), the supervised baseline's equal-data
# comparison: eval resumes run.sh's results and adds only these trials.
cd /work/main
D=/tmp/bccd-half
date; .venv/bin/simsearch eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
  --classes WBC,RBC,Platelets --patch-size auto --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe --out $D/eval > $D/eval-supervised-probe.log 2>&1
echo "rc $?"; date
