#!/bin/bash
# bench_class_similarity.py on the similarity trials of finished evaluations (similarity search,
# P 10, N 0, 3 trials; the particles P 5 over the scale pyramid): the planted sets, DSB, colour
# BCCD, and the --flat-field rows of ../issue17-flatfield (grey and inverted BCCD platelets,
# colour BCCD platelets, grey white cells). The evaluations' folders are those of their own
# run.sh files.
cd /work/main
R=benchmarks/results/issue14-class-similarity
B=../shared/data/bccd
BT="--truth $B/Annotations --test-list $B/ImageSets/Main/test.txt"
run() { out=$1; shift; .venv/bin/python benchmarks/bench_class_similarity.py "$@" --out $R/$out > $R/$out.log 2>&1; echo "$out rc $?"; }
run particles --eval /tmp/p14/base --truth /tmp/part/truth.csv --test-list /tmp/part/test.txt --class particle --matching object
run lookalikes --eval /tmp/p14/ev/look --truth /tmp/look/truth.csv --test-list /tmp/look/test.txt --class ellipse
run nuclei --eval /tmp/ff/nuc --truth /tmp/nuc/truth.csv --test-list /tmp/nuc/test.txt --class nucleus
run smear --eval /tmp/p14/ev/smear10 --truth /tmp/smear/truth.csv --test-list /tmp/smear/test.txt --class infected
run dsb --eval /tmp/dsb/eval-check --truth /tmp/dsb/truth.csv --test-list /tmp/dsb/test.txt --class nucleus
run bccd-plt --eval /tmp/p14/ev/plt $BT --class Platelets
run bccd-rbc --eval /tmp/p14/ev/rbc $BT --class RBC
run bccd-wbc --eval /tmp/p14/ev/wbc $BT --class WBC
run bccd-plt-flat --eval /tmp/ff/plt $BT --class Platelets
run g16-plt-flat --eval /tmp/ff/g16-plt --truth /tmp/bccd16/truth.csv --test-list /tmp/bccd16/test.txt --class Platelets
run inv-plt-flat --eval /tmp/ff/inv-plt --truth /tmp/bccd12inv/truth.csv --test-list /tmp/bccd12inv/test.txt --class Platelets
run g16-wbc-flat --eval /tmp/ff/g16-wbc --truth /tmp/bccd16/truth.csv --test-list /tmp/bccd16/test.txt --class WBC
