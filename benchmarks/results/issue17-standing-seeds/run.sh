#!/bin/bash
# The rows of the README's "Where it stands" measured again with the code of 2026-12-05 (16
# classifier copies, the held-out fifth the same for every training seed), each trial trained 3
# times (--retrain 3: seeds 0-2 on the same curated data) so that a row is a mean over seeds:
# P 10, N 5, 3 trials, the CPU preset; the quick DSB tiles, then the rows that missed the goal. A
# row whose report exists is kept, a stopped row resumes at its first unfinished trial. Where an
# earlier evaluation with the same embedding settings lies in /tmp its embeddings are copied
# (eval checks the settings). BCCD's colour red cells and the grey white cells (with and without
# the flat field: `auto` divides there, as `divide` does) are ../issue17-flatfield/run-bccd-auto-seeds.sh's.
# Results in /tmp/std-seeds/<row>/, copied to <row>/ here; table.py prints the README's rows.
# Since 2026-12-06 (a classifier epoch draws 4 of the 16 copies, ../issue17-epoch-draws) the rows
# go to /tmp/std-draws4/<row>/ and draws4/<row>/ here; <row>/ holds the older code's. Since
# 2026-12-07 BCCD's colour red cells are a row here too (level with the probe before version 5).
cd /work/main
. benchmarks/results/issue17-standing-seeds/rows.sh
DSB="--images /tmp/dsb/images --truth /tmp/dsb/truth.csv --train-list /tmp/dsb/train.txt --test-list /tmp/dsb/test.txt --displayed 4"
H=/tmp/bccd-half
HALF="--images $H/images --truth $H/truth.csv --train-list $H/train.txt --test-list $H/test.txt"
one dsb /tmp/c16-dsb/base $DSB --classes nucleus --patch-size nucleus=32
one inv-plt /tmp/cs/inv-plt/base $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15
one ff-g16-plt - $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field divide
one ff-inv-plt - $INV --classes Platelets --patch-size Platelets=40 --pooling 0.15 --flat-field subtract
one nuc /tmp/c16-nuc/base $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
one look /tmp/c16-look/base $LOOK --classes ellipse --patch-size 32
one smear10 /tmp/cs/smear10/base $SM --classes infected --patch-size auto
one plt /tmp/c16-plt/base $BCCD --classes Platelets --patch-size Platelets=48
one ff-plt - $BCCD --classes Platelets --patch-size Platelets=48 --flat-field divide
one g16-plt - $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15
one rbc - $BCCD --classes RBC --patch-size RBC=96
one g16-rbc /tmp/ff-bccd/g16-rbc-none/base $G16 --classes RBC --patch-size RBC=auto
one ff-nuc - $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089 --flat-field subtract
one wbc /tmp/ff-bccd/wbc-none/base $BCCD --classes WBC --patch-size WBC=192
one inv-wbc - $INV --classes WBC --patch-size WBC=auto --pooling 0.15
one half - $HALF --classes WBC,RBC,Platelets --patch-size auto
date
