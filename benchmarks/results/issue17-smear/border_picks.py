"""Which prototypes `simsearch eval`'s simulated user takes at the image border: for each class,
P (5, 10) and repeat (0-2) at seed 0, six displayed images and `--patch-size auto`, the
trials whose prototypes include objects whose centred patch does not fit inside the image, and
how many of those objects are cut by the image edge (their box touches it).

    .venv/bin/python benchmarks/results/issue17-smear/border_picks.py IMAGES TRUTH TRAIN_LIST CLASSES

It replays the simulated user's own choice (`SimulatedUser._choose_displayed`, `pick_prototypes`)
with the trial's seed, without embedding anything.
"""
import sys
import types

import numpy as np

from simsearch.evaluate.report import auto_patch_sizes
from simsearch.evaluate.simulate import SimulatedUser, pick_prototypes
from simsearch.io.images import Dataset
from simsearch.io.truth import annotations_by_image, read_truth


def main(images: str, truth_path: str, train_list: str, classes: str) -> None:
    dataset = Dataset.open(images)
    records = {r.id: r for r in dataset}
    by_image = annotations_by_image(read_truth(truth_path, images=dataset), dataset)
    names = set(open(train_list).read().split())
    train_ids = [r.id for r in dataset if r.path.name in names or r.path.stem in names]
    labels = classes.split(",")
    sizes = auto_patch_sizes([a for found in by_image.values() for a in found], labels)

    def cut(image_id: str, a) -> bool:
        return a.x0 <= 0 or a.y0 <= 0 or a.x1 >= records[image_id].width - 1 or a.y1 >= records[image_id].height - 1

    for label in labels:
        side = sizes[label]
        for prototypes in (5, 10):
            for repeat in range(3):
                own = {i: [a for a in by_image[i] if a.label == label] for i in train_ids}
                def centres(image_id, _label, own=own):
                    return np.array([a.centre for a in own[image_id]]).reshape(-1, 2)
                user = types.SimpleNamespace(train_ids=train_ids, labels=[label], displayed_count=6, _objects=centres)
                rng = np.random.default_rng([0, repeat, prototypes])  # as SimulatedUser.run seeds a trial
                shown = SimulatedUser._choose_displayed(user, rng, prototypes)
                objects = {i: user._objects(i, label) for i in shown}
                shape = {i: (records[i].height, records[i].width) for i in shown}
                picks = pick_prototypes(objects, shape, prototypes, (side, side), rng)
                border = [(i, (y, x)) for i, (y, x) in picks
                          if not (side / 2 <= y <= shape[i][0] - side / 2 and side / 2 <= x <= shape[i][1] - side / 2)]
                if border:
                    by_centre = {(i, a.centre): a for i in shown for a in own[i]}
                    cuts = sum(cut(i, by_centre[(i, tuple(c))]) for i, c in border)
                    whole = sum(not cut(i, a) for i in shown for a in own[i])
                    print(f"{label} P{prototypes} r{repeat} patch {side}: {len(border)} of {len(picks)} at the border, "
                          f"{cuts} of them cut by the edge; {len(shown)} images shown, holding {whole} objects not cut")
    print("done", classes)


if __name__ == "__main__":
    main(*sys.argv[1:5])
