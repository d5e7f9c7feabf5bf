#!/bin/bash
# The simulated user of version 2 (it shows more images until they hold P whole objects) with the
# median fill beyond the image's edge: similarity search, the (gated) probe and Pos+Neg+Selflearn,
# P 10, N 5, 3 trials, the CPU preset, committed code (8d9add8). user-rule.txt (user_rule.py) lists
# the trials whose displayed images changed. The smear's and the grey platelets' embeddings were
# copied from ../issue17-fill/'s evaluations (the same settings and code) to save their time.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/fill2
SM="--images /tmp/smear/images --truth /tmp/smear/truth.csv --train-list /tmp/smear/train.txt --test-list /tmp/smear/test.txt"
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn"
one() { name=$1; shift; date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
one smear10 $SM --classes infected --patch-size auto
one wbc $BCCD --classes WBC --patch-size WBC=192
one rbc $BCCD --classes RBC --patch-size RBC=96
one plt $BCCD --classes Platelets --patch-size Platelets=48
one look $LOOK --classes ellipse --patch-size 32
one g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15
one g16-wbc $G16 --classes WBC --patch-size WBC=auto
one g16-rbc $G16 --classes RBC --patch-size RBC=auto
INV="--images /tmp/bccd12inv/images --truth /tmp/bccd12inv/truth.csv --train-list /tmp/bccd12inv/train.txt
  --test-list /tmp/bccd12inv/test.txt"   # ../issue17-inverted/convert.py /tmp/bccd16 /tmp/bccd12inv --invert
one inv-plt $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15
one inv-wbc $INV --classes WBC --patch-size WBC=auto --pooling 0.15
