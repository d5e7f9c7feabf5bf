"""CPU training and embedding with glibc's default malloc against `keep_freed_memory`.

Each measurement is a fresh process with EfficientNet-Lite0 to stride 16.
- train: the layers after the stride-8 stage trainable (as in training), forward and backward
  on a batch of 64 crops of 160 px (a 96 px patch with its context); 4 steps after a warm-up.
- embed: dense embeddings (96 px patches) of the 12 bundled 640 x 480 BCCD images after one
  warm-up image.
The two malloc modes alternate, 3 times each. Writes benchmarks/results/malloc.json and .md.

    .venv/bin/python benchmarks/bench_malloc.py
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STEP = """
import json, resource, sys, time, torch
from simsearch.util.memory import keep_freed_memory
from simsearch.features.backbones import load_efficientnet_lite0_classifier
from simsearch.features.efficientnet_lite import EfficientNetLite0Stride16
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.manual_seed(0)
if sys.argv[2] == "train":
    model = EfficientNetLite0Stride16(load_efficientnet_lite0_classifier()).train()
    for block in list(model._blocks)[6:]:
        for parameter in block.parameters():
            parameter.requires_grad_(True)
    crops = torch.rand(64, 3, 160, 160)
    def work():
        model(crops).square().mean().backward()
    repeats = 4
else:
    from pathlib import Path
    import numpy as np
    from PIL import Image
    from simsearch import DenseEmbedder, Normalization, PatchGeometry, load_backbone
    embedder = DenseEmbedder(load_backbone("efficientnet-lite0"), Normalization((0.0,) * 3, (255.0,) * 3),
                             PatchGeometry.for_patch(96), channels=(0, 1, 2), device="cpu")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(Path("examples/data/bccd/images").glob("*.jpg"))]
    position = iter(range(len(images) + 1))
    def work():
        embedder.embed(images[next(position)])
    repeats = len(images) - 1
work()
usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(repeats):
    work()
end = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"applied": applied, "wall_s": time.perf_counter() - start, "user_s": end.ru_utime - usage.ru_utime,
                  "sys_s": end.ru_stime - usage.ru_stime, "page_faults": end.ru_minflt - usage.ru_minflt,
                  "max_rss_mb": end.ru_maxrss / 1024}))
"""


def measure(mode: str, workload: str) -> dict:
    out = subprocess.run([sys.executable, "-c", STEP, mode, workload], capture_output=True, text=True, check=True,
                         env={**os.environ, "SIMSEARCH_OFFLINE": "1"}, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    results = {"threads": __import__("torch").get_num_threads(), "workloads": {}}
    lines = ["# CPU training and embedding: glibc malloc defaults against keep_freed_memory", "",
             f"EfficientNet-Lite0 to stride 16, {results['threads']} threads; median of 3 fresh processes per mode, "
             "alternating. train: 4 steps of forward + backward, batch 64 x 3 x 160 x 160. embed: 11 BCCD images "
             "of 640 x 480 px, 96 px patches.", "",
             "| workload | malloc | wall (s) | user (s) | system (s) | page faults | peak RSS (MB) |", "|---|---|---|---|---|---|---|"]
    speedups = []
    for workload in ("train", "embed"):
        runs = {"system": [], "keep": []}
        for _ in range(3):
            for mode in runs:
                runs[mode].append(measure(mode, workload))
                print(workload, mode, runs[mode][-1])
        summary = {mode: {key: float(np.median([r[key] for r in rows])) for key in ("wall_s", "user_s", "sys_s", "page_faults", "max_rss_mb")}
                   for mode, rows in runs.items()}
        speedup = summary["system"]["wall_s"] / summary["keep"]["wall_s"]
        results["workloads"][workload] = {"runs": runs, "median": summary, "speedup": speedup}
        for mode, row in summary.items():
            lines.append(f"| {workload} | {mode} | {row['wall_s']:.2f} | {row['user_s']:.2f} | {row['sys_s']:.2f} | "
                         f"{row['page_faults']:.0f} | {row['max_rss_mb']:.0f} |")
        speedups.append(f"{workload} {speedup:.2f}x")
    lines += ["", f"Speed-up with keep_freed_memory (same run): {', '.join(speedups)}."]
    out = REPO / "benchmarks" / "results"
    (out / "malloc.json").write_text(json.dumps(results, indent=1))
    (out / "malloc.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
