#!/bin/bash
# The grey 16-bit white cells of ../issue17-flatfield/run-bccd-auto-seeds.sh, without the flat field
# and with it (`auto` divides there, as `divide` does), measured again with the code since
# 2026-12-06 (a classifier epoch draws 4 of the 16 copies) as run.sh measures its rows: P 10, N 5,
# 3 trials, --retrain 3, the CPU preset. Waits for run.sh. The colour red cells need no run: the
# same trials retrained with that code are ../issue17-epoch-draws/ (16 / 4). Results in
# /tmp/std-draws4/<row>/, copied to draws4/<row>/ here; a stopped row resumes.
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/std-draws4
R=benchmarks/results/issue17-standing-seeds/draws4
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3"
mkdir -p $O
while pgrep -f "issue17-standing-seeds/run.sh" > /dev/null; do sleep 60; done
# one ROW EMBEDDINGS-FROM EVAL-OPTIONS...
one() { local name=$1 from=$2; shift 2
  [ -f $R/$name/report.md ] && return
  [ -d $O/$name/base ] || [ ! -d $from ] || { mkdir -p $O/$name && cp -r $from $O/$name/; }
  while pgrep -f "simsearch eval" > /dev/null; do sleep 20; done  # one evaluation at a time on 2 cores
  date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; local rc=$?; echo "$name rc $rc"
  [ $rc = 0 ] && mkdir -p $R/$name && cp $O/$name/report.md $O/$name/results.json $R/$name/ && cp $O/$name.log $R/$name/eval.log; }
one g16-wbc /tmp/ff-bccd/g16-wbc-none/base $G16 --classes WBC --patch-size WBC=auto --flat-field none
one ff-g16-wbc /tmp/ff-bccd/g16-wbc-auto/base $G16 --classes WBC --patch-size WBC=auto --flat-field divide
date
