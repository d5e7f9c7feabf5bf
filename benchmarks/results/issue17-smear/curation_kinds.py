"""What the simulated user's curation of trial projects of /tmp/smear (run.sh) holds: each
negative and each confirmed background place by the nearest annotated object's class (within
13 px, else nothing).

    .venv/bin/python benchmarks/results/issue17-smear/curation_kinds.py /tmp/smear/eval-infected/work/*selflearn*
"""
import collections
import csv
import sqlite3
import sys

import numpy as np

truth = collections.defaultdict(list)
for r in csv.DictReader(open('/tmp/smear/truth.csv')):
    truth[r['image']].append((r['class'], (float(r['y0']) + float(r['y1'])) / 2, (float(r['x0']) + float(r['x1'])) / 2))


def kinds(rows) -> dict:
    found = collections.Counter()
    for image_id, y, x in rows:
        objects = truth[image_id.split('@')[0]]
        d, label = min(((np.hypot(ty - y, tx - x), c) for c, ty, tx in objects), default=(99, '-'))
        found[label if d < 13 else 'nothing'] += 1
    return dict(found)


for trial in sorted(sys.argv[1:]):
    store = sqlite3.connect(trial + '/store.sqlite')
    negatives = kinds(store.execute("select image_id, y, x from class_patches where kind='negative'"))
    background = kinds(store.execute("select image_id, y, x from background where is_background=1"))
    print(trial.split('/')[-1], 'negatives', negatives, 'background', background)
