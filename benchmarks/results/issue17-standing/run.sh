#!/bin/bash
# Issue 17's goal at today's code: every class not yet measured since negatives weigh as examples.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu"
STR="--strategies similarity,probe,pos+neg+selflearn,supervised"
date
$S eval $BCCD --classes WBC --patch-size WBC=192 $ALL $STR --out /tmp/goal/wbc > /tmp/goal/wbc.log 2>&1; date
$S eval $G16 --classes WBC --patch-size WBC=auto $ALL $STR --out /tmp/goal/g16-wbc > /tmp/goal/g16-wbc.log 2>&1; date
$S eval $G16 --classes RBC --patch-size RBC=auto $ALL $STR --out /tmp/goal/g16-rbc > /tmp/goal/g16-rbc.log 2>&1; date
$S eval $BCCD --classes RBC --patch-size RBC=96 $ALL --strategies supervised --out /tmp/goal/sup-rbc > /tmp/goal/sup-rbc.log 2>&1; date
$S eval $BCCD --classes Platelets --patch-size Platelets=48 $ALL --strategies supervised --out /tmp/goal/sup-plt > /tmp/goal/sup-plt.log 2>&1; date
$S eval $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 $ALL --strategies supervised --out /tmp/goal/sup-g16 > /tmp/goal/sup-g16.log 2>&1; date
$S eval $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089 $ALL --strategies supervised --out /tmp/goal/sup-nuc > /tmp/goal/sup-nuc.log 2>&1; date
echo done
