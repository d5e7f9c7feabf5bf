"""End-to-end throughput of embedding (files on disk to cached embeddings) and of `process`
(files to cached probability maps of a trained model), and where the time goes.

A generated folder of JPEG and TIFF images (textured, 1-4 MP by default, images of one size
next to each other as an instrument writes them) is embedded by `Project.iter_embed` into a
fresh project: with images read one at a time (`prefetch_images = 0`: decoding and the network
take turns), with the next images decoded in a thread while the network runs (the default),
and, besides, with same-size images embedded together (`embed_batch_pixels`, 16 MP per
batch). The same three ways then run `iter_process` with a model trained (seconds of tiny
settings: its weights do not change the cost) on a curated project of the same images, and
read ahead with a probe (`--strategy probe`: the pretrained embedding, so its maps come from
the project's cached embeddings, `Predictor.cached_level_maps`, with no network pass), and
with a model that has the probe beside it and the similarity gate (the CPU preset's: its
pretrained half from the cached embeddings, `Predictor.cached_pretrained`, against both
networks as one twin on the same images under other names, which have no cache). The
runs alternate, embedding and processing in turn, `--repeats` times each, and the best of each
counts (the machine may be shared and its speed drifts over minutes). Reported: MP/s of image
pixels end to end, and, measured separately on the same files, the seconds spent decoding
(`Dataset.read`) and in the network with pooling (`DenseEmbedder.embed` on decoded pixels).

Writes <out>/<name>.json and <out>/<name>.md. Run:
`.venv/bin/python benchmarks/bench_pipeline.py --images 24 --device cpu --name pipeline-cpu`
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

from simsearch import Curation, Dataset, Predictor, Project, TrainSettings, iter_process, train
from simsearch.training.loop import StageSettings

REPO = Path(__file__).resolve().parents[1]
SIZES = [(1024, 1024), (1536, 1536), (2048, 1536), (2048, 2048)]  # 1 to 4 MP


def write_images(folder: Path, count: int, seed: int = 0) -> int:
    """`count` textured RGB images (alternately JPEG and TIFF) of the SIZES; returns their pixels."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    pixels = 0
    for i in range(count):
        height, width = SIZES[i * len(SIZES) // count]  # images of one size together
        coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BILINEAR))
        image = np.clip(image.astype(np.int16) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
        if i % 2:
            tifffile.imwrite(folder / f"img{i:04d}.tif", image, compression="zlib")
        else:
            Image.fromarray(image).save(folder / f"img{i:04d}.jpg", quality=90)
        pixels += height * width
    return pixels


def timed(events, device: str) -> tuple[float, set[str]]:
    """Seconds to run a generator of progress events (its work starts with the first), and their statuses."""
    started = time.perf_counter()
    statuses = {event.status for event in events}
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started, statuses


def time_embedding(images: Path, scratch: Path, patch: int, device: str, prefetch: int, batch_pixels: int = 0) -> float:
    """Seconds for `iter_embed` of every image into a fresh project."""
    folder = scratch / f"project-{prefetch}-{time.monotonic_ns()}"
    with Project.create(folder, images, patch_size=patch, backbone="efficientnet-lite0") as project:
        project.set_device(device)
        project.prefetch_images = prefetch
        project.embed_batch_pixels = batch_pixels
        project.embedder  # the backbone loaded before the clock starts
        seconds, statuses = timed(project.iter_embed(), device)
    assert statuses == {"embedded"}, statuses
    shutil.rmtree(folder)
    return seconds


def time_processing(project_folder: Path, scratch: Path, device: str, prefetch: int, batch_pixels: int = 0,
                    uncached: Path | None = None) -> float:
    """Seconds for `iter_process` of every image with the project's trained model into a fresh
    folder (`uncached`: a folder of the same images under other names, whose ids the project's
    cache does not hold)."""
    out = scratch / f"maps-{prefetch}-{batch_pixels}-{time.monotonic_ns()}"
    with Project.open(project_folder, read_only=True) as project:
        project.prefetch_images = prefetch
        project.embed_batch_pixels = batch_pixels
        predictor = Predictor(project, device=device)  # the model loaded before the clock starts
        images = Dataset.open(uncached) if uncached else None
        seconds, statuses = timed(iter_process(project, out, predictor=predictor, images=images), device)
    assert statuses == {"computed"}, statuses
    shutil.rmtree(out)
    return seconds


def trained_project(images: Path, folder: Path, patch: int, device: str, strategy: str = "pos+neg+selflearn",
                    twin: bool = False) -> Path:
    """A project on the images with a model trained in seconds: one class from a prototype at
    the first displayed image's centre, its 5 best suggestions, curated background, noisy
    patches; every image embedded (as `simsearch run` leaves a project). `twin`: the probe
    beside the model and the similarity gate, as the CPU preset trains."""
    settings = TrainSettings(selflearn=StageSettings(1, 16, 1e-3, 1, 0.5), supcon=StageSettings(2, 16, 1e-3, 1, 0.5),
                             classifier=StageSettings(5, 32, 1e-2, 10, 0.1), probe_share=0.5 if twin else 0.0,
                             similarity_gate=twin)
    with Project.create(folder, images, patch_size=patch, backbone="efficientnet-lite0", displayed=2) as project:
        project.set_device(device)
        curation = Curation(project)
        curation.add_class("blob")
        first = project.dataset.by_id(project.displayed[0])
        y, x = first.height // 2, first.width // 2
        curation.add_prototype("blob", first.id, (x - patch // 2, y - patch // 2, x + patch // 2, y + patch // 2))
        curation.confirm_class("blob", threshold=curation.suggestions("blob", threshold=-1.0)[5].similarity)
        curation.propose_background(count=5)
        curation.confirm_background()
        list(curation.iter_noisy(background_per_image=3))
        train(project, settings.with_strategy(strategy), device=device)
        for _ in project.iter_embed():
            pass
    return folder


def time_parts(images: Path, scratch: Path, patch: int, device: str) -> dict:
    """Seconds decoding every image in one thread and in the threads of `Project.read_ahead`,
    and in the network with pooling on the decoded pixels."""
    dataset = Dataset.open(images)
    started = time.perf_counter()
    decoded = [dataset.read(record) for record in dataset]
    decode = time.perf_counter() - started
    with Project.create(scratch / "parts", images, patch_size=patch, backbone="efficientnet-lite0") as project:
        project.set_device(device)
        threads = project.decoding_threads()
        started = time.perf_counter()
        assert all(loaded.error is None for loaded in project.read_ahead(list(dataset), dataset.read))
        decode_threads = time.perf_counter() - started
        embedder = project.embedder
        started = time.perf_counter()
        for pixels in decoded:
            embedder.embed(pixels)
        if device == "cuda":
            torch.cuda.synchronize()
        network = time.perf_counter() - started
    return {"decode_seconds": decode, "decode_threads": threads, "decode_seconds_threads": decode_threads, "network_seconds": network}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24, help="generated images (default 24)")
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="pipeline-cpu", help="results file stem (e.g. pipeline-h200)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        pixels = write_images(scratch / "images", args.images)
        variants = {"one_at_a_time": (0, 0), "read_ahead": (2, 0), "batched": (2, 16_000_000)}  # (prefetch, batch pixels)
        trained = trained_project(scratch / "images", scratch / "trained", args.patch, args.device)
        probe = trained_project(scratch / "images", scratch / "probe", args.patch, args.device, "probe")
        twin = trained_project(scratch / "images", scratch / "twin", args.patch, args.device, twin=True)
        renamed = scratch / "renamed"  # an image id is its path and content: other names, no cache
        renamed.mkdir()
        for path in sorted((scratch / "images").iterdir()):
            os.link(path, renamed / f"other-{path.name}")
        best = dict.fromkeys(variants, float("inf"))
        best_process = dict.fromkeys(variants, float("inf"))
        best_probe = best_twin = best_twin_cached = float("inf")
        for _ in range(args.repeats):  # embedding and processing alternate: a machine that drifts affects both alike
            for name, (prefetch, batch_pixels) in variants.items():
                seconds = time_embedding(scratch / "images", scratch, args.patch, args.device, prefetch, batch_pixels)
                best[name] = min(best[name], seconds)
                seconds = time_processing(trained, scratch, args.device, prefetch, batch_pixels)
                best_process[name] = min(best_process[name], seconds)
            best_probe = min(best_probe, time_processing(probe, scratch, args.device, *variants["read_ahead"]))
            best_twin = min(best_twin, time_processing(twin, scratch, args.device, *variants["read_ahead"], uncached=renamed))
            best_twin_cached = min(best_twin_cached, time_processing(twin, scratch, args.device, *variants["read_ahead"]))
        parts = time_parts(scratch / "images", scratch, args.patch, args.device)
    megapixels = pixels / 1e6
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
        "device": args.device if args.device != "cuda" else torch.cuda.get_device_name(0),
        "patch": args.patch, "images": args.images, "megapixels": megapixels,
        **{f"seconds_{name}": seconds for name, seconds in best.items()},
        **{f"mp_per_s_{name}": megapixels / seconds for name, seconds in best.items()},
        **{f"process_seconds_{name}": seconds for name, seconds in best_process.items()},
        **{f"process_mp_per_s_{name}": megapixels / seconds for name, seconds in best_process.items()},
        "process_seconds_probe": best_probe, "process_mp_per_s_probe": megapixels / best_probe,
        "process_seconds_twin": best_twin, "process_seconds_twin_cached": best_twin_cached,
        "speedup": best["one_at_a_time"] / best["read_ahead"], "batched_speedup": best["read_ahead"] / best["batched"], **parts,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    lines = [f"End-to-end embedding, files to cached embeddings: {args.images} generated JPEG/TIFF images, "
             f"{megapixels:.1f} MP, patch {args.patch}, {result['device']} ({result['torch_threads']} torch threads), "
             f"{result['date'][:10]} (benchmarks/bench_pipeline.py, best of {args.repeats})", "",
             "| images decoded | seconds | MP/s |", "|---|---|---|",
             f"| one at a time (decoding and network take turns) | {best['one_at_a_time']:.1f} | {result['mp_per_s_one_at_a_time']:.2f} |",
             f"| read ahead in a thread (default) | {best['read_ahead']:.1f} | {result['mp_per_s_read_ahead']:.2f} |",
             f"| read ahead, same-size images embedded together (16 MP a batch) | {best['batched']:.1f} | {result['mp_per_s_batched']:.2f} |", "",
             "`process` with a trained model, files to cached probability maps, the same ways:", "",
             "| images decoded | seconds | MP/s | time against embedding |", "|---|---|---|---|",
             *[f"| {label} | {best_process[name]:.1f} | {result[f'process_mp_per_s_{name}']:.2f} | {best_process[name] / best[name]:.2f}x |"
               for name, label in (("one_at_a_time", "one at a time"), ("read_ahead", "read ahead (default)"),
                                   ("batched", "read ahead, together (16 MP a batch)"))],
             f"| a probe (`--strategy probe`), maps from the cached embeddings | {best_probe:.2f} "
             f"| {megapixels / best_probe:.1f} | {best_probe / best['read_ahead']:.3f}x |",
             f"| a model with the probe beside it and the similarity gate (the CPU preset's), both networks as one twin "
             f"(the images under other names: nothing cached) | {best_twin:.1f} | {megapixels / best_twin:.2f} "
             f"| {best_twin / best['read_ahead']:.2f}x |",
             f"| the same model, its pretrained half from the cached embeddings | {best_twin_cached:.1f} "
             f"| {megapixels / best_twin_cached:.2f} | {best_twin_cached / best['read_ahead']:.2f}x |", "",
             "In every row each image's vectors or maps are written in a thread while the network works on the next.", "",
             f"Read ahead: {result['speedup']:.2f}x; batched over read ahead: {result['batched_speedup']:.2f}x. Where the time goes, measured apart on the same files: decoding "
             f"{parts['decode_seconds']:.1f} s ({megapixels / parts['decode_seconds']:.0f} MP/s; in read-ahead's {parts['decode_threads']} thread(s) "
             f"{megapixels / parts['decode_seconds_threads']:.0f} MP/s), network and pooling {parts['network_seconds']:.1f} s."]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
