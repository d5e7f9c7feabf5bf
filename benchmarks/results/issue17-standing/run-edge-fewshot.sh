#!/bin/bash
# the few-shot red cells (P 10, N 5, 3 curations) against similarity and the probe, scored also away from the image edge
cd /work/main
. benchmarks/results/issue17-standing/data.sh
date
$S eval $BCCD --classes RBC --patch-size RBC=96 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies similarity,probe,pos+neg+selflearn --out /tmp/s16/rbc-fewshot > /tmp/s16/rbc-fewshot.log 2>&1; date
echo done
