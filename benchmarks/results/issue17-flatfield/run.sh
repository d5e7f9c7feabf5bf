#!/bin/bash
# The flat-field option in the product (--flat-field divide | subtract), against the rows of
# ../issue17-user/run.sh and run-planted.sh without it (the same trials: P 10, N 5, 3 trials, the
# CPU preset). A row whose report exists is kept. Results in <row>/ (report.md, results.json).
# The flat field: the per-pixel 80th (divide) or 20th (subtract) percentile of up to 256 images.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ff
INV="--images /tmp/bccd12inv/images --truth /tmp/bccd12inv/truth.csv --train-list /tmp/bccd12inv/train.txt
  --test-list /tmp/bccd12inv/test.txt"   # ../issue17-inverted/convert.py /tmp/bccd16 /tmp/bccd12inv --invert
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn"
one() { name=$1; shift; [ -f $O/$name/report.md ] && return; date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
one g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field divide
one inv-plt $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field subtract
one plt $BCCD --classes Platelets --patch-size Platelets=48 --flat-field divide
one nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089 --flat-field subtract
one g16-wbc $G16 --classes WBC --patch-size WBC=auto --flat-field divide
date
