#!/bin/bash
# Issue 17: do annotation gaps hold the trained half down to the probe, as on BCCD's red cells?
# There the simulated user flags red cells the truth leaves out as negatives, and background holds
# some. Planted sets whose truth holds every object, with half of the class's annotations in the
# training images left out (../../drop_annotations.py, seed 0; the test images keep all), evaluated
# as their standing rows (../issue17-standing-seeds/v5/: P 10, N 5, 3 trials, --retrain 3, the CPU
# preset): the look-alike shapes (`look`: the pipeline 0.029 above the probe with every ellipse
# annotated), then the nuclei (`nuc`, 0.004 above). Results in /tmp/std-v5/<row>-gaps/, copied to
# <row>-gaps/ here.
cd /work/main
O=/tmp/std-v5 R=benchmarks/results/issue17-partial-truth
. benchmarks/results/issue17-standing-seeds/rows.sh
gaps() { .venv/bin/python benchmarks/drop_annotations.py /tmp/$1/truth.csv /tmp/$1/train.txt $2 0.5 /tmp/$1/truth-gaps.csv
  echo "--images /tmp/$1/images --truth /tmp/$1/truth-gaps.csv --train-list /tmp/$1/train.txt --test-list /tmp/$1/test.txt"; }
one look-gaps - $(gaps look ellipse | tail -1) --classes ellipse --patch-size 32
one nuc-gaps - $(gaps nuc nucleus | tail -1) --classes nucleus --patch-size nucleus=32 --pooling 0.089
date
# Two levers on nuc-gaps' curations, seed 0, Pos+Neg+Selflearn only (nuc-gaps-levers/), then the
# contrastive rate on BCCD's red cells (rbc-supcon-lr/) with the embeddings of ../issue17-probe-join/run.sh's
# /tmp/join/rbc (the same curations as its seed-0 models)
LEVER="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies pos+neg+selflearn"
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/robust/nuc-gaps --no-default --variant pretrained_share=0.5 \
  --variant supcon.lr=0.0001 -- $(gaps nuc nucleus | tail -1) --classes nucleus --patch-size nucleus=32 --pooling 0.089 $LEVER
mkdir -p /tmp/robust/rbc/supcon.lr-0.0001 && cp -r /tmp/join/rbc/base /tmp/robust/rbc/supcon.lr-0.0001/
.venv/bin/python benchmarks/bench_ablation.py --out /tmp/robust/rbc --no-default --variant supcon.lr=0.0001 -- \
  $BCCD --classes RBC --patch-size RBC=96 $LEVER
for lever in nuc-gaps:nuc-gaps-levers rbc:rbc-supcon-lr; do from=/tmp/robust/${lever%%:*} to=$R/${lever#*:}
  mkdir -p $to; cp $from/ablation.* $to/
  for variant in $from/*/; do mkdir -p $to/$(basename $variant); cp $variant/report.md $variant/results.json $to/$(basename $variant)/; done
done
# Paired: the same trials trained again over seeds 0-2 with the labels on a nucleus of the complete
# truth taken out (oracle.py: background only, then background and negatives; as-is reproduces the
# evaluation), and the curation counts with the background at or above the class's threshold
.venv/bin/python $R/oracle.py /tmp/std-v5/nuc-gaps /tmp/nuc/truth.csv nucleus /tmp/oracle/nuc-gaps \
  --variants as-is,background,both | tail -11 > $R/oracle-nuc-gaps.md
cp /tmp/oracle/nuc-gaps/results.json $R/oracle-nuc-gaps.json
.venv/bin/python $R/curation_counts.py /tmp/std-v5/nuc-gaps /tmp/nuc/truth.csv /tmp/nuc/truth-gaps.csv nucleus
.venv/bin/python $R/curation_counts.py /tmp/std-v5/look-gaps /tmp/look/truth.csv /tmp/look/truth-gaps.csv ellipse
.venv/bin/python $R/curation_counts.py /tmp/join/nuc /tmp/nuc/truth.csv /tmp/nuc/truth.csv nucleus
.venv/bin/python $R/curation_counts.py /tmp/join/look /tmp/look/truth.csv /tmp/look/truth.csv ellipse
# Paired: the curations with every nucleus annotated (../issue17-probe-join/run.sh's /tmp/join/nuc)
# with only the 20 most similar confirmed positives kept (of 233-237), over seeds 0-2
.venv/bin/python $R/oracle.py /tmp/join/nuc /tmp/nuc/truth.csv nucleus /tmp/oracle/nuc --variants positives,as-is \
  --keep-positives 20 | tail -8 > $R/oracle-nuc-positives.md
cp /tmp/oracle/nuc/results.json $R/oracle-nuc-positives.json
