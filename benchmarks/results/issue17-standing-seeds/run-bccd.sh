#!/bin/bash
# The grey 16-bit white cells of ../issue17-flatfield/run-bccd-auto-seeds.sh, without the flat field
# and with it (`auto` divides there, as `divide` does), measured again with the code since
# 2026-12-06 (a classifier epoch draws 4 of the 16 copies) as run.sh measures its rows: P 10, N 5,
# 3 trials, --retrain 3, the CPU preset. Waits for run.sh. The colour red cells need no run: the
# same trials retrained with that code are ../issue17-epoch-draws/ (16 / 4). Results in
# /tmp/std-draws4/<row>/, copied to draws4/<row>/ here; a stopped row resumes.
cd /work/main
. benchmarks/results/issue17-standing-seeds/rows.sh
while pgrep -f "issue17-standing-seeds/run.sh" > /dev/null; do sleep 60; done
one g16-wbc /tmp/ff-bccd/g16-wbc-none/base $G16 --classes WBC --patch-size WBC=auto --flat-field none
one ff-g16-wbc /tmp/ff-bccd/g16-wbc-auto/base $G16 --classes WBC --patch-size WBC=auto --flat-field divide
date
