"""What the simulated user's curation holds against a complete truth: for each Pos+Neg+Selflearn
trial of an evaluation run with a thinned truth, how many of its confirmed positives, negatives
and background patches lie on an object of the class of the complete truth (as the simulated
user judges: `judged_on_object`, 0.3 x the patch at one level), and how many of those the thinned
truth leaves out; then how many background patches the class's similarity (`class_similarity`,
as similarity search scores) puts at or above the class's confirmed threshold, and how many of
those lie on an object. For an evaluation with the complete truth, give it twice.

    python curation_counts.py EVAL COMPLETE_TRUTH THINNED_TRUTH CLASS
"""
import sys
from pathlib import Path

from simsearch import Curation, Project, read_truth
from simsearch.evaluate.simulate import annotations_by_image, judged_on_object

evaluation, complete, thinned, label = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
base_folder = next(p for p in (evaluation / "base").iterdir() if p.is_dir() and p.name.startswith(label))
with Project.open(base_folder, read_only=True) as base:
    truths = [annotations_by_image(read_truth(path), base.dataset) for path in (complete, thinned)]
    patch_width = base.geometry.patch_size[1]


def on_object(patch, truth) -> bool:
    objects = [a for a in truth.get(patch.image_id, []) if a.label == label]
    return judged_on_object(patch.y, patch.x, patch.level, objects, patch_width)


def counts(patches) -> str:
    on = [p for p in patches if on_object(p, truths[0])]
    return f"{len(patches)}, {len(on)} on an object, {sum(not on_object(p, truths[1]) for p in on)} of them left out"


for trial in sorted((evaluation / "work").glob(f"{label}_P*_N*_pos+neg+selflearn_r*")):
    with Project.open(trial, read_only=True) as project:
        positives, negatives = (project.store.patches(label, kind) for kind in ("positive", "negative"))
        background = [patch for patch, _, kept in project.store.background(confirmed_only=True) if kept]
        curation, threshold = Curation(project), project.store.class_info(label).similarity_threshold
        above = [p for p in background if curation.class_similarity(
            label, project.patch_vector(p.image_id, p.y, p.x, p.level)[None, None])[0, 0] >= threshold]
    print(f"| {trial.name} | {counts(positives)} | {counts(negatives)} | {counts(background)} | "
          f"{len(above)}, {sum(on_object(p, truths[0]) for p in above)} on an object |")
