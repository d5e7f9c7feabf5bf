# The data sets of these runs (sourced by the run-*.sh scripts): BCCD from ../shared, the rest
# written to /tmp by examples/bccd_to_csv.py, planted_nuclei.py and planted_lookalikes.py.
S=.venv/bin/simsearch
B=../shared/data/bccd
BCCD="--images $B/JPEGImages --truth $B/Annotations --train-list $B/ImageSets/Main/train.txt --test-list $B/ImageSets/Main/test.txt"
G16="--images /tmp/bccd16/images --truth /tmp/bccd16/truth.csv --train-list /tmp/bccd16/train.txt --test-list /tmp/bccd16/test.txt"
NUC="--images /tmp/nuc/images --truth /tmp/nuc/truth.csv --train-list /tmp/nuc/train.txt --test-list /tmp/nuc/test.txt"
LOOK="--images /tmp/look/images --truth /tmp/look/truth.csv --train-list /tmp/look/train.txt --test-list /tmp/look/test.txt"
