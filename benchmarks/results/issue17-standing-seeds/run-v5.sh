#!/bin/bash
# The standing rows with training version 5 (2026-12-06 evening: a classifier epoch goes round
# each class's examples; a self-learning batch's repeated patch is not its own negative; a
# positive on a prototype's own object is never held out; no off-centre background view on a
# held-out positive).
# The simulated user curates with similarity search alone, so each row's trials hold the same
# curated data as its draws4/ row: the pairs differ in training alone. Results in /tmp/std-v5/<row>/,
# copied to v5/<row>/ here. The DSB tiles need benchmarks/dsb_nuclei.py's /tmp/dsb.
cd /work/main
O=/tmp/std-v5 R=benchmarks/results/issue17-standing-seeds/v5
. benchmarks/results/issue17-standing-seeds/rows.sh
DSB="--images /tmp/dsb/images --truth /tmp/dsb/truth.csv --train-list /tmp/dsb/train.txt --test-list /tmp/dsb/test.txt --displayed 4"
one dsb - $DSB --classes nucleus --patch-size nucleus=32
one nuc - $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
one ff-inv-plt - $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field subtract
one inv-plt - $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15
one ff-g16-plt - $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field divide
# grey 16-bit BCCD at half size: examples/bccd_to_csv.py ../shared/data/bccd /tmp/bccd-half --scales 0.5
H=/tmp/bccd-half
one half - --images $H/images --truth $H/truth.csv --train-list $H/train.txt --test-list $H/test.txt \
  --classes WBC,RBC,Platelets --patch-size auto
date
