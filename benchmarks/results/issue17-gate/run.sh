#!/bin/bash
# Pos+Neg+Selflearn at P 10, N 5, 3 trials (eval's CPU preset before the gate: the probe
# beside the model), then gate.py rescoring each trial's saved model with and without the
# similarity gate. The smear at P 5: gate.py on issue17-smear/run.sh's evaluation (smear5/).
cd /work/main
. benchmarks/results/issue17-standing/data.sh
O=/tmp/gate
SM="--images /tmp/smear/images --truth /tmp/smear/truth.csv --train-list /tmp/smear/train.txt
  --test-list /tmp/smear/test.txt"
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies pos+neg+selflearn --similarity-gate off"
one() { name=$1; shift; date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; echo "$name eval rc $?";
  .venv/bin/python benchmarks/results/issue17-gate/gate.py "$@" $ALL --out $O/$name 2>&1 | grep -v INFO > $O/$name.gate
  echo "$name gate rc $?"; tail -9 $O/$name.gate; }
one wbc $BCCD --classes WBC --patch-size WBC=192
one rbc $BCCD --classes RBC --patch-size RBC=96
one plt $BCCD --classes Platelets --patch-size Platelets=48
one smear10 $SM --classes infected --patch-size auto
[ -d /tmp/nuc ] || .venv/bin/python examples/planted_nuclei.py /tmp/nuc > /dev/null
one nuc $NUC --classes nucleus --patch-size nucleus=32 --pooling 0.089
one g16-plt $G16 --classes Platelets --patch-size Platelets=40 --pooling 0.15
[ -d /tmp/look ] || .venv/bin/python examples/planted_lookalikes.py /tmp/look > /dev/null
one look $LOOK --classes ellipse --patch-size 32
date; echo done
D=/tmp/smear
.venv/bin/python benchmarks/results/issue17-gate/gate.py $SM --classes infected --patch-size auto --negatives 5 \
  --repeats 3 \
  --device cpu --prototypes 5 --strategies pos+neg+selflearn --out $D/eval-infected 2>&1 | grep -v INFO > $O/smear5.gate
