#!/bin/bash
# the output ensemble of the two baselines, supervised-probe and supervised (the probe and the
# model trained on every training annotation, the same data and seed in each repeat), on the
# trials of ../cu130 (run-cu130.sh): what the CPU preset's probe_share 0.5 gives with full supervision
cd /work/main
. benchmarks/results/issue17-standing/data.sh
A="--prototypes 10 --negatives 5 --repeats 3 --device cpu"
e() { name=$1; shift; echo "== $name"; PAIR=supervised-probe,supervised .venv/bin/python benchmarks/results/issue17-standing/ensemble/ensemble.py "$@" $A --out /tmp/cu130/$name 2>&1 | grep -v INFO; }
e g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15
e rbc $BCCD --classes RBC --patch-size RBC=96
e g16-rbc $G16 --classes RBC --patch-size RBC=auto
e plt $BCCD --classes Platelets --patch-size Platelets=48
e nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
e g16-wbc $G16 --classes WBC --patch-size WBC=auto
e wbc $BCCD --classes WBC --patch-size WBC=192
