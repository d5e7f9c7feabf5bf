#!/bin/bash
# The probe averaged in by training itself (TrainSettings.probe_share, the CPU preset's 0.5)
# measured through `simsearch eval` on the curations of ../run-cu130.sh: each class's base
# project (the shared embeddings) is copied from that run, so the trials draw the same
# displayed images, prototypes and suggestions; only Pos+Neg+Selflearn trains again. Its
# scores should equal ../ensemble/ensemble.log at w = 0.5, which averaged the two saved models
# of the same trials outside the product.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ens; mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies pos+neg+selflearn"
run() { name=$1; shift; date; mkdir -p $O/$name; [ -d $O/$name/base ] || cp -r /tmp/cu130/$name/base $O/$name/;
        $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
run rbc $BCCD --classes RBC --patch-size RBC=96
run g16-rbc $G16 --classes RBC --patch-size RBC=auto
run g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15
run plt $BCCD --classes Platelets --patch-size Platelets=48
run nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
run wbc $BCCD --classes WBC --patch-size WBC=192
run g16-wbc $G16 --classes WBC --patch-size WBC=auto
date; echo done
