#!/bin/bash
# The two BCCD rows nearest the flat field's decision (run-bccd-auto.sh), trained 3 times per trial
# (--retrain 3: training seeds 0-2 on the same curated data), without the flat field and with auto:
# colour red cells (auto helped similarity search, training fell) and grey 16-bit white cells (auto
# cost similarity search in every trial). P 10, N 5, 3 trials, the CPU preset, the code of
# 2026-12-05; each run reuses its single-seed run's embeddings (/tmp/ff-bccd/<row>/base). Results in
# /tmp/ff-seeds/<row>/ (copied to bccd-auto-seeds/ here); ../issue17-seeds/spread.py prints the spread.
cd /work/main
while pgrep -f "simsearch eval" > /dev/null; do sleep 20; done  # one evaluation at a time on 2 cores
. benchmarks/results/issue17-standing/data.sh
O=/tmp/ff-seeds
mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3"
one() { local name=$1; shift
  [ -f $O/$name/report.md ] && return
  [ -d $O/$name/base ] || { mkdir -p $O/$name && cp -r /tmp/ff-bccd/$name/base $O/$name/; }
  date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name rc $?"; }
pair() { local name=$1; shift; one $name-none "$@" --flat-field none; one $name-auto "$@" --flat-field auto; }
pair rbc $BCCD --classes RBC --patch-size RBC=96
pair g16-wbc $G16 --classes WBC --patch-size WBC=auto
date
