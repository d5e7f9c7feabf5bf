#!/bin/bash
# BCCD's colour red cells evaluated with the old rows' 4 classifier copies over 3 training seeds
# (--retrain 3), the same settings and curation as ../../issue17-flatfield/bccd-auto-seeds/rbc-none
# (16 copies): does the probe's and the pipeline's 0.02-0.03 come back over seeds, or was seed 0
# (copies.sh) lucky? Reuses that run's embeddings. About 2 hours on the 2-core CPU. Results in
# /tmp/rbc-copies4/, copied to copies4/ here; ../../issue17-seeds/spread.py prints the spread.
cd /work/main
while pgrep -f "simsearch eval" > /dev/null; do sleep 20; done  # one evaluation at a time on 2 cores
. benchmarks/results/issue17-standing/data.sh
O=/tmp/rbc-copies4
R=benchmarks/results/issue17-standing-seeds/rbc-negatives
[ -d $O/base ] || { mkdir -p $O && cp -r /tmp/ff-seeds/rbc-none/base $O/; }
date
$S eval $BCCD --classes RBC --patch-size RBC=96 --flat-field none --prototypes 10 --negatives 5 --repeats 3 \
  --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3 --classifier-copies 4 --out $O > $O.log 2>&1
rc=$?; echo "rc $rc"; date
[ $rc = 0 ] && mkdir -p $R/copies4 && cp $O/report.md $O/results.json $R/copies4/ && cp $O.log $R/copies4/eval.log
