#!/bin/bash
# supervised-probe (the linear classifier alone on every training annotation: the probe at the
# supervised baseline's data) for every class of the table; one run per class.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies supervised-probe"
mkdir -p /tmp/sp
date
$S eval $BCCD --classes RBC --patch-size RBC=96 $ALL --out /tmp/sp/rbc > /tmp/sp/rbc.log 2>&1; date
$S eval $BCCD --classes Platelets --patch-size Platelets=48 $ALL --out /tmp/sp/plt > /tmp/sp/plt.log 2>&1; date
$S eval $BCCD --classes WBC --patch-size WBC=192 $ALL --out /tmp/sp/wbc > /tmp/sp/wbc.log 2>&1; date
$S eval $G16 --classes RBC --patch-size RBC=auto $ALL --out /tmp/sp/g16-rbc > /tmp/sp/g16-rbc.log 2>&1; date
$S eval $G16 --classes WBC --patch-size WBC=auto $ALL --out /tmp/sp/g16-wbc > /tmp/sp/g16-wbc.log 2>&1; date
$S eval $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 $ALL --out /tmp/sp/g16-plt > /tmp/sp/g16-plt.log 2>&1; date
$S eval $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089 $ALL --out /tmp/sp/nuc > /tmp/sp/nuc.log 2>&1; date
$S eval $LOOK --classes ring,ellipse,slit --patch-size 32 $ALL --out /tmp/sp/look > /tmp/sp/look.log 2>&1; date
echo done
