"""What the simulated user answered in the review rounds of trial projects of /tmp/smear
(run-review.sh): each answer by the nearest annotated object's class (within 13 px, else nothing).

    .venv/bin/python benchmarks/results/issue17-smear/review_kinds.py /tmp/smear/eval-review/work/*
"""
import sqlite3, csv, sys, numpy as np, collections
truth = collections.defaultdict(list)
for r in csv.DictReader(open('/tmp/smear/truth.csv')):
    truth[r['image']].append((r['class'], (float(r['y0']) + float(r['y1'])) / 2, (float(r['x0']) + float(r['x1'])) / 2))
for trial in sys.argv[1:]:
    c = sqlite3.connect(trial + '/store.sqlite')
    kinds = collections.Counter()
    for image_id, y, x, answer in c.execute('select image_id, y, x, answer from review_items where answer is not null'):
        name = image_id.split('@')[0]
        d, k = min(((np.hypot(ty - y, tx - x), cl) for cl, ty, tx in truth[name]), default=(99, '-'))
        kinds[(answer, k if d < 13 else 'nothing')] += 1
    print(trial.split('_')[-1], dict(kinds))
