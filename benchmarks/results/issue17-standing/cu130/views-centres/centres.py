"""Run: .venv/bin/python benchmarks/results/issue17-standing/cu130/views-centres/centres.py g16-plt plt nuc rbc g16-rbc wbc

How far each supervised positive (an annotation's box centre) sits from the similarity
search's local maximum around it (the few-shot trial r0's prototypes of the same class, grid
offsets within half a patch), against the few-shot trial's own confirmed positives (the
search's suggestions). Prints per class: median offset / patch, share over 0.25 patch."""
import sys
import numpy as np
from simsearch import Curation, PatchRecord, Project

CASES = {  # name: (cu130 folder, class, dataset)
    "g16-plt": ("g16-plt", "Platelets", "/tmp/bccd16/images"),
    "plt": ("plt", "Platelets", "../shared/data/bccd/JPEGImages"),
    "rbc": ("rbc", "RBC", "../shared/data/bccd/JPEGImages"),
    "g16-rbc": ("g16-rbc", "RBC", "/tmp/bccd16/images"),
    "nuc": ("nuc", "nucleus", "/tmp/nuc/images"),
    "wbc": ("wbc", "WBC", "../shared/data/bccd/JPEGImages"),
}


def offsets(curation, name, places, patch, stride):
    steps = np.arange(-patch / 2, patch / 2 + 1e-6, stride)
    found = []
    for p in places:
        record = curation.project.dataset.by_id(p.image_id)
        grid = [(dy, dx) for dy in steps for dx in steps
                if 0 <= p.y + dy < record.height and 0 <= p.x + dx < record.width]
        cand = [PatchRecord(p.image_id, float(p.y + dy), float(p.x + dx), level=p.level) for dy, dx in grid]
        scores = curation.similarity_at(name, cand)
        dy, dx = grid[int(np.argmax(scores))]
        found.append(np.hypot(dy, dx) / patch)
    return np.array(found)


for case in sys.argv[1:]:
    folder, name, images = CASES[case]
    work = f"/tmp/cu130/{folder}/work"
    few = Project.open(f"{work}/{name}_P10_N5_pos+neg+selflearn_r0", read_only=True, dataset=images)
    sup = Project.open(f"{work}/{name}_P0_N0_supervised_r0", read_only=True, dataset=images)
    patch = few.geometry.patch_size[0]
    stride = patch / 6
    curation = Curation(few)
    annotated = offsets(curation, name, sup.store.patches(name, "positive")[:80], patch, stride)
    suggested = offsets(curation, name, few.store.patches(name, "positive")[:80], patch, stride)
    for label, o in (("annotation centres", annotated), ("suggestions", suggested)):
        print(f"{case:8s} {label:19s} n={len(o):3d} median {np.median(o):.3f} patch, over 0.25: {np.mean(o > 0.25):.2f}", flush=True)
