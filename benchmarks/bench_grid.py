"""How fine must the patch grid be? Similarity search on BCCD with 1 or 2 shifted passes.

For each class (WBC 192 px, RBC 96 px, Platelets 48 px, upsampled x1.33) and each
grid (passes 1: step 16 scaled px; passes 2: step 8), three objects of the class in
the first images are the prototypes; the index returns as many distinct patches as
there are true objects (suppression radius half a patch). We report the fraction
whose centre lies within the paper's matching radius (3 x 0.1 x patch width) of a
true centre of the class, the median distance of those matches, and the
embedding time. Writes benchmarks/results/grid.json and grid.md.

    SIMSEARCH_OFFLINE=1 .venv/bin/python benchmarks/bench_grid.py [--count 48]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import simsearch

REPO = Path(__file__).resolve().parents[1]
BCCD = REPO.parent / "shared" / "data" / "bccd"
CLASSES = (("WBC", 192), ("RBC", 96), ("Platelets", 48))


def run(label: str, patch: int, passes: int, listing: Path, truth, workdir: Path) -> dict:
    project = simsearch.Project.create(workdir / f"{label}-{passes}", listing, patch_size=patch,
                                       backbone="efficientnet-lite0", passes=passes)
    start = time.perf_counter()
    for _ in project.iter_embed():
        pass
    seconds = time.perf_counter() - start
    index = project.build_index()
    objects = [a for a in truth if a.label == label]
    by_name = {r.path.name: r for r in project.dataset}
    names = {r.id: r.path.name for r in project.dataset}
    prototypes = objects[:3]
    queries = np.stack([project.patch_vector(by_name[a.image].id, *a.centre) for a in prototypes])
    hits = index.most_similar(queries, k=len(objects), min_distance=patch / 2)
    radius = 3 * 0.1 * patch
    distances = []
    for hit in hits:
        centres = np.array([a.centre for a in objects if a.image == names[hit.image_id]])
        if len(centres):
            d = np.hypot(*(centres - [hit.y, hit.x]).T).min()
            if d <= radius:
                distances.append(d)
    return {"class": label, "patch": patch, "passes": passes, "grid_step_px": project.geometry.grid_step,
            "objects": len(objects), "hits": len(hits), "matched": len(distances),
            "precision": len(distances) / max(len(hits), 1),
            "median_match_distance_px": float(np.median(distances)) if distances else None,
            "embed_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    names = sorted(p.name for p in (BCCD / "JPEGImages").glob("*.jpg"))[: args.count]
    truth = [a for a in simsearch.read_voc_folder(BCCD / "Annotations") if a.image in names]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        listing = Path(tmp) / "images.txt"
        listing.write_text("\n".join(str(BCCD / "JPEGImages" / n) for n in names))
        for label, patch in CLASSES:
            for passes in (1, 2):
                rows.append(run(label, patch, passes, listing, truth, Path(tmp)))
                print(rows[-1])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "grid.json").write_text(json.dumps({"images": len(names), "rows": rows}, indent=2))
    lines = ["| class | patch | passes | grid step | hits within 3 x stride | median distance | embed time |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['class']} | {r['patch']} | {r['passes']} | {r['grid_step_px']:.1f} px | "
                     f"{r['matched']}/{r['hits']} ({r['precision']:.0%}) | {r['median_match_distance_px']:.1f} px | "
                     f"{r['embed_seconds']:.1f} s |")
    lines.append(f"\n{len(names)} BCCD images, efficientnet-lite0, 3 prototypes, k = number of true objects.")
    (args.out / "grid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
