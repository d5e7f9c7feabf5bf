#!/bin/bash
# After run.sh: the trained model's first false detections on the infected cells are leukocytes,
# a look-alike the curation never showed. Does one review round (the simulated user answers 20
# of the model's detections on the undisplayed images, then the model trains again) fix it?
cd /work/main
D=/tmp/smear
mkdir -p $D/eval-review && cp -rn $D/eval-infected/base $D/eval-review/  # the same embeddings
date; .venv/bin/simsearch eval --images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt \
  --classes infected --patch-size auto --prototypes 5 --negatives 5 --repeats 3 --device cpu \
  --strategies pos+neg+selflearn --review-rounds 2 --review-size 20 --out $D/eval-review > $D/eval-review.log 2>&1
echo "review rc $?"; date
