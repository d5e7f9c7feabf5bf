#!/bin/bash
# The red cells' trials (../run.sh's /tmp/join/rbc and /tmp/join/g16-rbc, seed 0) trained again on
# their curations with another strategy, then scored under each join. The folders keep the
# pipeline's trial names so that ../../../probe_join.py finds them. pos+neg.json and pos.json: the
# colour red cells' r0 and r1; pos-all.json: pos on every trial of both rows.
cd /work/main
again() { local strategy=$1 row=$2 W=$3; shift 3
  mkdir -p $W/work; cp /tmp/join/$row/results.json $W/; [ -e $W/base ] || ln -s /tmp/join/$row/base $W/base
  for r in "$@"; do
    cp -r "/tmp/join/$row/work/RBC_P10_N5_pos+neg+selflearn_$r" $W/work/
    .venv/bin/simsearch train --project "$W/work/RBC_P10_N5_pos+neg+selflearn_$r" --strategy $strategy --device cpu -q
  done; }
R=benchmarks/results/issue17-probe-join/red-cells
again pos+neg rbc /tmp/lever/pos+neg r0 r1
.venv/bin/python benchmarks/probe_join.py /tmp/lever/pos+neg --out $R/pos+neg.json
again pos rbc /tmp/lever/pos r0 r1
.venv/bin/python benchmarks/probe_join.py /tmp/lever/pos --out $R/pos.json
again pos rbc /tmp/lever/pos r2
again pos g16-rbc /tmp/lever/g16pos r0 r1 r2
.venv/bin/python benchmarks/probe_join.py /tmp/lever/pos /tmp/lever/g16pos --out $R/pos-all.json
