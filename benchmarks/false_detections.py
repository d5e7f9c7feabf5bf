"""What similarity search ranks high that is not an object: runs an evaluation trial's
prototypes (its `work/<trial>` project) over the test images of its base project, as
`simsearch eval` scores the 'similarity' strategy, and sorts the false detections among the
first 1.2 x (objects) by where they lie: inside an object's box (a second peak on one object,
or a peak on its rim), within one box side of an object's centre, or in the background; with
the pyramid level of each and, inside boxes, the distance to the object's centre in box sides.

    python benchmarks/false_detections.py EVAL/base/particle-40 EVAL/work/particle_P5_N0_similarity_r0 \
        --truth /tmp/part/truth.csv --test-list /tmp/part/test.txt --class particle [--matching object]

(benchmarks/results/issue14-crowding/README.md quotes its output on planted particles.)
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from simsearch import Curation, Project, object_side, peaks_across_scales, read_truth
from simsearch.evaluate.metrics import Matching, Scored, match, score_class


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path, help="the evaluation's base project (its embeddings)")
    parser.add_argument("trial", type=Path, help="a trial project holding the class's prototypes")
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--test-list", type=Path, required=True)
    parser.add_argument("--class", dest="label", required=True)
    parser.add_argument("--matching", choices=("patch", "object"), default="patch")
    args = parser.parse_args(argv)
    names = [line.strip() for line in args.test_list.read_text().splitlines() if line.strip()]
    stems = {Path(name).stem for name in names}
    truth = [a for a in read_truth(args.truth) if a.label == args.label and Path(a.image).stem in stems]
    found, levels = [], []
    with Project.open(args.trial, read_only=True) as trial, Project.open(args.base, read_only=True) as base:
        curation = Curation(trial)
        rule = Matching.rule(args.matching, base.geometry.patch_size[1])
        truth_name = {Path(a.image).stem: a.image for a in truth}
        for name in names:
            image_id = base.dataset.find(name).id
            peaks = peaks_across_scales([(scale, base.geometry_at(scale),
                                          curation.class_similarity(args.label, base.embeddings(image_id, scale).vectors))
                                         for scale in base.scales])
            image = truth_name.get(Path(name).stem, name)
            for y, x, value, level in zip(peaks.ys, peaks.xs, peaks.values, peaks.levels):
                found.append(Scored(image, args.label, float(y), float(x), float(value)))
                levels.append(float(level))
    score = score_class(found, truth, args.label, rule)
    order = sorted(range(len(found)), key=lambda i: -found[i].confidence)  # as score_class ranks them
    ranked = [found[i] for i in order]
    flags = match(ranked, truth, rule)
    first = int(1.2 * len(truth))
    kinds, by_level, rims = Counter(), Counter(), []
    for detection, level, right in zip(ranked[:first], [levels[i] for i in order[:first]], flags[:first]):
        if right:
            continue
        objects = [a for a in truth if a.image == detection.image]
        inside = [a for a in objects if a.x0 <= detection.x <= a.x1 and a.y0 <= detection.y <= a.y1]
        near = [a for a in objects if np.hypot(a.centre[0] - detection.y, a.centre[1] - detection.x) < object_side(a.y1 - a.y0, a.x1 - a.x0)]
        kind = "inside a box" if inside else "within a box side" if near else "background"
        kinds[kind] += 1
        by_level[(kind, level)] += 1
        if inside:
            a = inside[0]
            rims.append(np.hypot(a.centre[0] - detection.y, a.centre[1] - detection.x) / object_side(a.y1 - a.y0, a.x1 - a.x0))
    print(f"{args.label}: PR-AUC {score.pr_auc:.3f} ({args.matching} matching), {len(truth)} objects in {len(names)} test images")
    print(f"false detections among the first {first}: {sum(kinds.values())}")
    for kind, count in kinds.most_common():
        per_level = ", ".join(f"level {level:g}: {n}" for (k, level), n in sorted(by_level.items()) if k == kind)
        print(f"  {kind}: {count} ({per_level})")
    if rims:
        print(f"  inside a box, distance to the object's centre (x its box side): median {np.median(rims):.2f}, "
              f"quartiles {np.percentile(rims, 25):.2f}-{np.percentile(rims, 75):.2f}")


if __name__ == "__main__":
    main()
