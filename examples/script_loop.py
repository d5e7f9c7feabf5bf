"""The paper's whole loop from a script, with the public API only, on the bundled BCCD sample.

A user who has a few annotated white blood cells (here: the sample's VOC boxes) and wants every
one in the dataset: create a project, embed, add two prototypes, prune the suggestions (those on
no annotated white cell are flagged as negatives, as a user would by eye), confirm, curate the
background, take noisy examples from the undisplayed images, train, process every image and
export. `--strategy probe` (the default here) trains in seconds on a CPU; `pos+neg+selflearn`
is the paper's pipeline (minutes).

    python examples/script_loop.py --out out/script
"""
from __future__ import annotations

import argparse
from pathlib import Path

import simsearch

HERE = Path(__file__).resolve().parent
CLASS, PATCH = "WBC", 112


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", default=HERE / "data" / "bccd" / "images", type=Path)
    parser.add_argument("--annotations", default=HERE / "data" / "bccd" / "annotations", type=Path)
    parser.add_argument("--out", default=Path("out/script"), type=Path)
    parser.add_argument("--strategy", default="probe", choices=simsearch.TRAINING_STRATEGIES)
    args = parser.parse_args()
    truth = [a for a in simsearch.read_voc_folder(args.annotations) if a.label == CLASS]

    folder = args.out / "project"
    if (folder / "project.yaml").is_file():
        project = simsearch.Project.open(folder)
    else:
        project = simsearch.Project.create(folder, args.images, patch_size=PATCH, displayed=4)
    with project:
        failed = [event.image for event in project.iter_embed() if event.status == "failed"]  # cached ones: skipped
        print(f"embedded {len(project.dataset)} images" + (f", failed: {failed}" if failed else ""))
        curation = simsearch.Curation(project)
        shown = {project.dataset.by_id(i).path.name for i in project.displayed}
        if CLASS not in [c.name for c in curation.classes()]:
            curation.add_class(CLASS)
            for a in [a for a in truth if a.image in shown][:2]:  # two prototypes on displayed images
                curation.add_prototype(CLASS, a.image, (a.x0, a.y0, a.x1, a.y1))

        def annotated(s: simsearch.Suggestion) -> bool:
            name = project.dataset.by_id(s.image_id).path.name
            return any(a.image == name and a.x0 <= s.x <= a.x1 and a.y0 <= s.y <= a.y1 for a in truth)

        suggestions = curation.suggestions(CLASS)
        wrong = [s for s in suggestions if not annotated(s)]
        for s in wrong:
            curation.flag_negative(s)
        positives = curation.confirm_class(CLASS)
        print(f"{CLASS}: {len(suggestions)} suggestions, {len(wrong)} flagged as negatives, {len(positives)} positives")
        curation.propose_background(count=20)
        background = curation.confirm_background()
        for _ in curation.iter_noisy():  # images done before are skipped
            pass
        print(f"background: {len(background)} patches; noisy examples from {len(project.undisplayed)} undisplayed images")

        settings = simsearch.TrainSettings.cpu(args.strategy)
        stage = None
        for event in simsearch.iter_train(project, settings):  # progress events; simsearch.train blocks instead
            if event.stage != stage:
                stage = event.stage
                print(f"training ({args.strategy}): {stage}")
        results = args.out / "results"
        for event in simsearch.iter_process(project, results, device="cpu"):
            if event.status == "failed":
                print(f"could not process {event.image}: {event.message}")
        manifest = simsearch.write_results(project, results)
        print(f"{manifest['detections']} detections in {len(project.dataset)} images: {results.resolve()}")


if __name__ == "__main__":
    main()
