#!/bin/bash
# The planted sets with the committed code of the median fill and the simulated user of version 2
# (70d284b): the planted fluorescent nuclei (P 10, N 5, 3 trials, the CPU preset; the same trials
# as ../issue17-fill/nuc/, which ran an experimental build of the fill) and the planted EM-like
# particles over the scale pyramid (issue 14; P 5, N 5, 3 trials, `--scales auto`,
# `--matching object`, as ../issue14-border/particles-pyramid-neutral-margin but with today's
# defaults: 6 cells per patch, the median fill).
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/fill2
[ -d /tmp/nuc/images ] || .venv/bin/python examples/planted_nuclei.py /tmp/nuc
[ -d /tmp/part/images ] || .venv/bin/python examples/planted_particles.py /tmp/part --images 30
PART="--images /tmp/part/images --truth /tmp/part/truth.csv --train-list /tmp/part/train.txt --test-list /tmp/part/test.txt"
date; $S eval $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089 --prototypes 10 --negatives 5 --repeats 3 \
  --device cpu --strategies similarity,probe,pos+neg+selflearn --out $O/nuc > $O/nuc.log 2>&1; echo "nuc rc $?"
date; $S eval $PART --classes particle --patch-size 40 --scales auto --matching object --prototypes 5 --negatives 5 \
  --repeats 3 --device cpu --strategies similarity,probe,pos+neg,pos+neg+selflearn --out $O/part > $O/part.log 2>&1
echo "part rc $?"; date
