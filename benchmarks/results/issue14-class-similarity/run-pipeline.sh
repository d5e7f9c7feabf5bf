#!/bin/bash
# The whole pipeline with the class similarity (850a006): planted particles (as ../issue17-user/run-planted.sh)
# and the planted look-alike shapes (as ../issue17-user/run.sh), the same trials as ../issue17-user/.
# Its outputs are copied here as pipeline-particles/ and pipeline-lookalikes/.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/p14/pipe
mkdir -p $O
PART="--images /tmp/part/images --truth /tmp/part/truth.csv --train-list /tmp/part/train.txt --test-list /tmp/part/test.txt"
date; $S eval $PART --classes particle --patch-size 40 --scales auto --matching object --prototypes 5 --negatives 5 \
  --repeats 3 --device cpu --strategies similarity,probe,pos+neg,pos+neg+selflearn --out $O/part > $O/part.log 2>&1; echo "part rc $?"
date; $S eval $LOOK --classes ellipse --patch-size 32 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies similarity,probe,pos+neg+selflearn --out $O/look > $O/look.log 2>&1; echo "look rc $?"; date
