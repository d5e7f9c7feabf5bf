# Sourced (from /work/main) by run.sh, run-bccd.sh and run-v5.sh: where a row's evaluation goes
# and how it runs. P 10, N 5, 3 trials, --retrain 3, the CPU preset; results in $O/<row>/
# (/tmp/std-draws4 unless set), copied to $R/<row>/ (draws4/ here unless set) once the row is done.
. benchmarks/results/issue17-standing/data.sh
O=${O:-/tmp/std-draws4}
R=${R:-benchmarks/results/issue17-standing-seeds/draws4}
mkdir -p $O
ALL="--prototypes 10 --negatives 5 --repeats 3 --device cpu --strategies similarity,probe,pos+neg+selflearn --retrain 3"
# one ROW EMBEDDINGS-FROM EVAL-OPTIONS...: a row whose report is here is kept, a stopped row
# resumes at its first unfinished trial; EMBEDDINGS-FROM "-" is the older code's run of the row
one() { local name=$1 from=$2; shift 2
  [ "$from" = - ] && from=/tmp/std-seeds/$name/base
  [ -f $R/$name/report.md ] && return
  [ -d $O/$name/base ] || [ ! -d $from ] || { mkdir -p $O/$name && cp -r $from $O/$name/; }
  while pgrep -f "simsearch eval" > /dev/null; do sleep 20; done  # one evaluation at a time on 2 cores
  date; $S eval "$@" $ALL --out $O/$name > $O/$name.log 2>&1; local rc=$?; echo "$name rc $rc"
  [ $rc = 0 ] && mkdir -p $R/$name && cp $O/$name/report.md $O/$name/results.json $R/$name/ \
    && cp $O/$name.log $R/$name/eval.log; }
