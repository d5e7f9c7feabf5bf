#!/bin/bash
# --flat-field auto on the planted sets whose images share a fixed illumination pattern (the smear's
# vignetting, the look-alikes' gradient), against the same rows without it: the smear's in
# ../issue14-class-similarity/standing/smear10/, the look-alikes' in ../issue14-class-similarity/pipeline-lookalikes/
# (the same code, trials and settings). P 10, N 5, 3 trials, the CPU preset. Results in auto-<row>/.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ff-auto
mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --flat-field auto"
one() { name=$1; shift; [ -f $O/$name/report.md ] && return; date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
one smear10 $SM --classes infected --patch-size auto
one look $LOOK --classes ellipse --patch-size 32
