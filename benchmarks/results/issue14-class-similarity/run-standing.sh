#!/bin/bash
# The rows of the README's "Where it stands" measured again with the class similarity (850a006),
# the same commands as ../issue17-user/run.sh and ../issue17-flatfield/run.sh (P 10, N 5, 3 trials,
# the CPU preset), rows nearest the goal first. A row whose report exists is kept. Results in
# standing/<row>/ (report.md, results.json). The flat field's 'auto' rows (the planted smear and
# look-alikes, whose images share a fixed illumination pattern) are in ../issue17-flatfield/run-auto.sh.
cd /work/main
while pgrep -f "simsearch eval" > /dev/null; do sleep 20; done  # one evaluation at a time on 2 cores
. benchmarks/results/issue17-standing/data.sh
O=/tmp/cs
mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn"
one() { name=$1; shift; [ -f $O/$name/report.md ] && return; date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
one inv-plt $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15
one smear10 $SM --classes infected --patch-size auto
bash benchmarks/results/issue17-flatfield/run-auto.sh
one rbc $BCCD --classes RBC --patch-size RBC=96
one ff-g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field divide
one ff-inv-plt $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field subtract
one plt $BCCD --classes Platelets --patch-size Platelets=48
one g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15
one ff-g16-wbc $G16 --classes WBC --patch-size WBC=auto --flat-field divide
one g16-rbc $G16 --classes RBC --patch-size RBC=auto
one wbc $BCCD --classes WBC --patch-size WBC=192
one ff-plt $BCCD --classes Platelets --patch-size Platelets=48 --flat-field divide
date
