"""Peak memory of curating a slide: a generated WIDTH x HEIGHT pyramidal OME-TIFF (the discs of
bench_slide.py) is embedded, then curated as a user would, each in a fresh process whose peak
resident memory is read from the kernel (`wait4`); within the curation process each step's
peak is sampled every 2 ms.

Curation steps: a class and one prototype on a disc, the suggestions above a similarity, the
class confirmed, the whole-dataset search (`most_similar_anywhere`; a slide is searched from
its cache file), background proposed (Algorithm 1) and confirmed. Run twice on slides of two
heights, the peak should not grow with the slide. Writes <out>/<name>.json and .md.

    .venv/bin/python benchmarks/bench_slide_curation.py --heights 2400,8000 --name slide-curation-cpu
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import threading
import time
from pathlib import Path

from bench_slide import RADIUS, centres, run_stage, write_slide

REPO = Path(__file__).resolve().parents[1]
WIDTH = 40_000


def embed(slides: Path, project: Path, patch: int) -> dict:
    from simsearch import Project

    started = time.perf_counter()
    with Project.create(project, slides, patch_size=patch, backbone="efficientnet-lite0", displayed=1) as created:
        created.set_device("cpu")
        list(created.iter_embed())
        grid = list(created.embeddings(created.displayed[0]).vectors.shape[:2])
    return {"embed_s": round(time.perf_counter() - started, 1), "grid": grid}


def curate(project_dir: Path, height: int) -> dict:
    from simsearch import Curation, Project

    samples: list[int] = []
    done = threading.Event()

    def resident() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def sample() -> None:
        while not done.is_set():
            samples.append(resident())
            time.sleep(0.002)

    threading.Thread(target=sample, daemon=True).start()
    steps = {}

    def step(name, action):
        first, started = len(samples), time.perf_counter()
        result = action()
        steps[name] = {"peak_rss_bytes": max(samples[first:] or [resident()]), "seconds": round(time.perf_counter() - started, 2)}
        return result

    with Project.open(project_dir) as project:
        project.set_device("cpu")
        curation = Curation(project)
        curation.add_class("disc")
        image = project.displayed[0]
        y, x = next((y, x) for y, x in centres(WIDTH) if 2 * RADIUS < y < height - 2 * RADIUS and x > 2 * RADIUS)
        step("prototype", lambda: curation.add_prototype("disc", image, (x - RADIUS, y - RADIUS, x + RADIUS, y + RADIUS)))
        suggestions = step("suggestions", lambda: curation.suggestions("disc", threshold=0.5))
        step("confirm class", lambda: curation.confirm_class("disc", threshold=0.5))
        hits = step("search the whole dataset", lambda: curation.most_similar_anywhere("disc", k=20))
        step("propose background", lambda: curation.propose_background(count=20))
        step("confirm background", lambda: curation.confirm_background())
    done.set()
    return {"steps": steps, "suggestions": len(suggestions), "best_hit": round(hits[0].score, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heights", default="2400,8000")
    parser.add_argument("--patch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="slide-curation-cpu")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    heights = [int(h) for h in args.heights.split(",")]
    if args.stage:
        import simsearch

        simsearch.keep_freed_memory()  # as the simsearch command does
        paths = [Path(p) for p in args.paths]
        if args.stage == "write":
            write_slide(paths[0], WIDTH, heights[0], smallest=300)
            result = {}
        elif args.stage == "embed":
            result = embed(paths[0], paths[1], args.patch)
        else:
            result = curate(paths[0], heights[0])
        print(json.dumps(result))
        return
    runs = []
    for height in heights:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "slides").mkdir()
            common = ["--heights", str(height), "--patch", str(args.patch)]
            run_stage("write", *common, str(tmp / "slides" / "slide.ome.tif"), script=__file__)
            embedded, embed_rss, _ = run_stage("embed", *common, str(tmp / "slides"), str(tmp / "project"), script=__file__)
            curated, curate_rss, _ = run_stage("curate", *common, str(tmp / "project"), script=__file__)
        runs.append({"height": height, "embed": {**embedded, "peak_rss_bytes": embed_rss},
                     "curate": {**curated, "peak_rss_bytes": curate_rss}})
    result = {"date": datetime.date.today().isoformat(), "width": WIDTH, "patch": args.patch, "runs": runs, "cores": os.cpu_count()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    step_names = list(runs[0]["curate"]["steps"])
    lines = [f"# Curating a slide on the CPU ({result['date']})", "",
             f"Generated {WIDTH:,} px wide pyramidal OME-TIFFs of bench_slide.py's discs, patch {args.patch} px, "
             f"{result['cores']} cores; each stage a fresh process (peak RSS from the kernel), each curation step's "
             "peak sampled every 2 ms:", "",
             "| step | " + " | ".join(f"{WIDTH:,} x {r['height']:,} px (grid {r['embed']['grid'][0]} x {r['embed']['grid'][1]})"
                                      for r in runs) + " |",
             "|---|" + "---|" * len(runs),
             "| embed (whole process) | " + " | ".join(f"{r['embed']['peak_rss_bytes'] / 1e9:.2f} GB, {r['embed']['embed_s']} s"
                                                    for r in runs) + " |"]
    for name in step_names:
        lines.append(f"| {name} | " + " | ".join(
            f"{r['curate']['steps'][name]['peak_rss_bytes'] / 1e9:.2f} GB, {r['curate']['steps'][name]['seconds']} s" for r in runs) + " |")
    lines.append("| curation (whole process) | " + " | ".join(f"{r['curate']['peak_rss_bytes'] / 1e9:.2f} GB" for r in runs) + " |")
    lines += ["", "Suggestions above 0.5: " + ", ".join(str(r["curate"]["suggestions"]) for r in runs)
              + "; the best whole-dataset hit: " + ", ".join(str(r["curate"]["best_hit"]) for r in runs) + "."]
    text = "\n".join(lines) + "\n"
    (args.out / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
