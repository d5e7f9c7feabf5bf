"""Real data: white blood cells found across BCCD images from two examples (skips without ../shared)."""
import numpy as np

from simsearch import Project, read_voc_folder


def test_wbc_prototypes_find_wbcs_in_other_images(bccd, tmp_path):
    names = sorted(p.name for p in (bccd / "JPEGImages").glob("*.jpg"))[:24]
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(str(bccd / "JPEGImages" / n) for n in names))
    truth = [a for a in read_voc_folder(bccd / "Annotations") if a.image in names and a.label == "WBC"]
    project = Project.create(tmp_path / "proj", listing, patch_size=192, backbone="efficientnet-lite0")
    assert all(e.status == "embedded" for e in project.iter_embed())
    index = project.build_index()
    by_name = {r.path.name: r for r in project.dataset}
    prototypes = truth[:2]
    queries = np.stack([project.patch_vector(by_name[a.image].id, *a.centre) for a in prototypes])
    hits = index.most_similar(queries, k=len(truth), min_distance=96)
    names_of = {r.id: r.path.name for r in project.dataset}
    found = [h for h in hits if any(a.image == names_of[h.image_id] and a.contains(h.y, h.x) for a in truth)]
    others = {names_of[h.image_id] for h in found} - {a.image for a in prototypes}
    assert len(found) >= 0.75 * len(truth), (len(found), len(truth))
    assert len(others) >= 0.7 * (len({a.image for a in truth}) - 2)
