#!/bin/bash
# The red cells' r0 and r1 (the trials under the probe): their seed-0 curated projects (../run.sh's
# /tmp/join/rbc) trained again with another strategy, then scored under each join. The folders keep
# the pipeline's trial names so that ../../../probe_join.py finds them.
cd /work/main
for strategy in pos+neg pos; do
  W=/tmp/lever/$strategy; rm -rf $W; mkdir -p $W/work
  cp /tmp/join/rbc/results.json $W/ && ln -s /tmp/join/rbc/base $W/base
  for r in r0 r1; do
    cp -r "/tmp/join/rbc/work/RBC_P10_N5_pos+neg+selflearn_$r" $W/work/
    .venv/bin/simsearch train --project "$W/work/RBC_P10_N5_pos+neg+selflearn_$r" --strategy $strategy --device cpu -q
  done
  .venv/bin/python benchmarks/probe_join.py $W --out benchmarks/results/issue17-probe-join/red-cells/$strategy.json
done
