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


def test_curation_wbc_suggestions_on_displayed_images(bccd, tmp_path):
    from simsearch.curation.session import Curation

    names = sorted(p.name for p in (bccd / "JPEGImages").glob("*.jpg"))[:10]
    listing = tmp_path / "images.txt"
    listing.write_text("\n".join(str(bccd / "JPEGImages" / n) for n in names))
    truth = [a for a in read_voc_folder(bccd / "Annotations") if a.image in names and a.label == "WBC"]
    with Project.create(tmp_path / "proj", listing, backbone="efficientnet-lite0") as project:
        project.choose_displayed(names=names[:8])
        curation = Curation(project)
        curation.add_class("WBC")
        for a in truth[:2]:  # the annotated boxes, as a user would draw them
            curation.add_prototype("WBC", a.image, (a.x0, a.y0, a.x1, a.y1))
        shown = {a.image for a in truth if a.image in names[:8]}
        suggestions = curation.suggestions("WBC", threshold=-1.0)[: len(shown)]
        names_of = {r.id: r.path.name for r in project.dataset}
        hits = [s for s in suggestions if any(a.image == names_of[s.image_id] and a.contains(s.y, s.x) for a in truth)]
        assert len(hits) >= 0.75 * len(shown)
        assert len({names_of[s.image_id] for s in hits} - {a.image for a in truth[:2]}) >= 0.6 * (len(shown) - 2)
