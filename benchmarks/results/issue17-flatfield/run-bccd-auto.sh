#!/bin/bash
# --flat-field auto on BCCD's red and white cells, colour and grey 16-bit (where auto divides),
# against the same rows without it, both with the code of 2026-12-05 (16 classifier copies, the
# held-out fifth the same for every seed): P 10, N 5, 3 trials, the CPU preset. Results in
# /tmp/ff-bccd/<row>-<none|auto>/ (copied to bccd-auto/ here); the pairs nearest a decision first.
cd /work/main
while pgrep -f "simsearch eval" > /dev/null; do sleep 20; done  # one evaluation at a time on 2 cores
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ff-bccd
mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn"
one() { local name=$1; shift; [ -f $O/$name/report.md ] && return; date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
pair() { local name=$1; shift; one $name-none "$@" --flat-field none; one $name-auto "$@" --flat-field auto; }
pair rbc $BCCD --classes RBC --patch-size RBC=96
pair wbc $BCCD --classes WBC --patch-size WBC=192
pair g16-rbc $G16 --classes RBC --patch-size RBC=auto
pair g16-wbc $G16 --classes WBC --patch-size WBC=auto
