# The data sets of these runs (sourced by the run-*.sh scripts): BCCD from ../shared, the rest
# written to /tmp by examples/bccd_to_csv.py, planted_nuclei.py, planted_lookalikes.py, planted_smear.py and
# ../issue17-inverted/convert.py /tmp/bccd16 /tmp/bccd12inv --invert.
S=.venv/bin/simsearch
B=../shared/data/bccd
BCCD="--images $B/JPEGImages --truth $B/Annotations --train-list $B/ImageSets/Main/train.txt --test-list $B/ImageSets/Main/test.txt"
G16="--images /tmp/bccd16/images --truth /tmp/bccd16/truth.csv --train-list /tmp/bccd16/train.txt --test-list /tmp/bccd16/test.txt"
NUC="--images /tmp/nuc/images --truth /tmp/nuc/truth.csv --train-list /tmp/nuc/train.txt --test-list /tmp/nuc/test.txt"
LOOK="--images /tmp/look/images --truth /tmp/look/truth.csv --train-list /tmp/look/train.txt --test-list /tmp/look/test.txt"
SM="--images /tmp/smear/images --truth /tmp/smear/truth.csv --train-list /tmp/smear/train.txt --test-list /tmp/smear/test.txt"
INV="--images /tmp/bccd12inv/images --truth /tmp/bccd12inv/truth.csv --train-list /tmp/bccd12inv/train.txt --test-list /tmp/bccd12inv/test.txt"
