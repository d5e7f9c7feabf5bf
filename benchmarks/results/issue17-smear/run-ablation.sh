#!/bin/bash
# After run.sh: Pos and Pos+Neg beside Pos+Neg+Selflearn, the same at P 10, then why
# Pos+Neg+Selflearn falls below the probe on the infected cells at P 5 (the same curations):
# the model alone, no coarse dropout or solarize (either could hide a 2-3 px dot), no
# off-centre views (one half a patch off an infected cell can hold its parasite), a tenth of
# the contrastive stage's rate, the backbone halfway back to its pretrained weights.
cd /work/main
D=/tmp/smear
A=$D/ablation
mkdir -p $A && ln -sfn $D/eval-infected $A/default
EVAL="--images $D/images --truth $D/truth.csv --train-list $D/train.txt --test-list $D/test.txt
  --classes infected --patch-size auto --negatives 5 --repeats 3 --device cpu"
date; .venv/bin/simsearch eval $EVAL --prototypes 5,10 \
  --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe,pos+neg,pos \
  --out $D/eval-infected > $D/eval-infected-more.log 2>&1; echo "pos, pos+neg, P 10 rc $?"
for variant in probe_share=0 augment.dropout=0 augment.solarize=0 supcon.lr=0.0001 pretrained_share=0.5; do
  date; .venv/bin/python benchmarks/bench_ablation.py --out $A --no-default --variant $variant \
    -- $EVAL --prototypes 5 --strategies pos+neg+selflearn > $A/ablation-$variant.log 2>&1; echo "$variant rc $?"
done
date; .venv/bin/python benchmarks/bench_ablation.py --out $A --no-default --variant off_centre_views=false \
  -- $EVAL --prototypes 5 --strategies pos+neg+selflearn,pos+neg > $A/ablation-views.log 2>&1; echo "views rc $?"; date
