#!/bin/bash
# An experiment outside the product: grey 16-bit BCCD divided by the dataset's per-pixel median
# image (flatfield.py: a retrospective flat-field correction, which removes dust fixed on the
# optics and the uneven illumination), then the grey platelets' row of ../run.sh on the same
# trials: P 10, N 5, 3 trials, the CPU preset, committed code 70d284b. Results in g16-plt/.
cd /work/main
S=.venv/bin/simsearch
[ -d /tmp/bccd16ff/images ] || .venv/bin/python benchmarks/results/issue17-user/flat-field/flatfield.py /tmp/bccd16 /tmp/bccd16ff
G="--images /tmp/bccd16ff/images --truth /tmp/bccd16ff/truth.csv --train-list /tmp/bccd16ff/train.txt --test-list /tmp/bccd16ff/test.txt"
$S eval $G --classes Platelets --patch-size Platelets=40 --pooling 0.15 --prototypes 10 --negatives 5 --repeats 3 --device cpu \
  --strategies similarity,probe,pos+neg+selflearn --out /tmp/fill2/ff-g16-plt
