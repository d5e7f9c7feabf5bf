"""Which trials the simulated user of version 2 changes: per class, P and repeat, the displayed
images and the whole objects on them (centred patch inside the image) under version 1 (every
object counted toward P) and version 2 (`choose_displayed`: whole objects counted).

    python user_rule.py IMAGES TRUTH TRAIN_LIST CLASS=PATCH[,CLASS=PATCH...] [DISPLAYED]

PATCH may be 'auto' (the median box side, as `simsearch eval --patch-size auto`).
"""
import sys

import numpy as np

from simsearch.evaluate.report import auto_patch_sizes
from simsearch.evaluate.simulate import choose_displayed, fits_inside
from simsearch.io.images import Dataset
from simsearch.io.truth import annotations_by_image, read_truth

images, truth_path, train_list, spec = sys.argv[1:5]
displayed = int(sys.argv[5]) if len(sys.argv) > 5 else 6
dataset = Dataset.open(images)
truth = read_truth(truth_path, images=dataset)
by_image = annotations_by_image(truth, dataset)
names = set(open(train_list).read().split())
train_ids = [r.id for r in dataset if r.path.name in names or r.path.stem in names]
sizes = {r.id: (r.height, r.width) for r in dataset}


def first_version(objects, count):
    """Version 1: images in the same seeded order until `displayed` and `count` objects of any kind."""
    with_class = [i for i in objects if len(objects[i]["c"])]
    chosen, seen = [], 0
    for index in rng(count).permutation(len(with_class)):
        if len(chosen) >= displayed and seen >= count:
            break
        chosen.append(with_class[index])
        seen += len(objects[with_class[index]]["c"])
    return chosen


for item in spec.split(","):
    label, patch = item.split("=")
    patch = auto_patch_sizes(truth, [label])[label] if patch == "auto" else int(patch)
    objects = {i: {"c": np.array([a.centre for a in by_image[i] if a.label == label]).reshape(-1, 2)} for i in train_ids}
    for count in (5, 10):
        for repeat in range(3):
            def rng(count, repeat=repeat):
                return np.random.default_rng([0, repeat, count])  # SimulatedUser.run's seed
            shown = {}
            for version, chosen in ((1, first_version(objects, count)),
                                    (2, choose_displayed(objects, sizes, displayed, count, (patch, patch), rng(count)))):
                whole = sum(fits_inside(tuple(c), sizes[i], (patch, patch)) for i in chosen for c in objects[i]["c"])
                shown[version] = (len(chosen), whole)
            flag = "  <-- changes" if shown[1] != shown[2] else ""
            print(f"{label} P{count} r{repeat}: version 1 {shown[1][0]} images, {shown[1][1]} whole; "
                  f"version 2 {shown[2][0]} images, {shown[2][1]} whole; of {sum(len(o['c']) > 0 for o in objects.values())}{flag}")
