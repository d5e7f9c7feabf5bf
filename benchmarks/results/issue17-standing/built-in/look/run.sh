#!/bin/bash
# The probe beside the model on the planted look-alikes (ring and ellipse: the shapes where the
# probe alone is weak), P 10, N 5, 3 trials: first the model alone (--probe-share 0) with
# similarity search and the probe, then the CPU preset's default (share 0.5) on a copy of the
# same base project, so the trials draw the same curations. Results copied to alone/ and with-probe/.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ens-look; mkdir -p $O
ALL="--classes ring,ellipse --patch-size 32 --prototypes 10 --negatives 5 --repeats 3 --device cpu"
date; $S eval $LOOK $ALL --strategies similarity,probe,pos+neg+selflearn --probe-share 0 --out $O/alone > $O/alone.log 2>&1
echo "alone rc $?"; mkdir -p $O/with-probe; cp -r $O/alone/base $O/with-probe/
date; $S eval $LOOK $ALL --strategies pos+neg+selflearn --out $O/with-probe > $O/with-probe.log 2>&1
echo "with-probe rc $?"; date
