#!/bin/bash
# The standing table again under the torch build set-up installs now (2.14.1+cu130 from PyPI):
# every column of a row from one evaluation (the same displayed images, prototypes and curated
# data; the baselines once per repeat with the repeat's training seed), each trial also scored
# away from the image edge. Most doubtful classes first.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/cu130; mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu"
STR="--strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe"
run() { name=$1; shift; date; $S eval "$@" $ALL $STR --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
run rbc $BCCD --classes RBC --patch-size RBC=96
run g16-rbc $G16 --classes RBC --patch-size RBC=auto
run plt $BCCD --classes Platelets --patch-size Platelets=48
run g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15
run nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
run wbc $BCCD --classes WBC --patch-size WBC=192
run g16-wbc $G16 --classes WBC --patch-size WBC=auto
date; echo done
