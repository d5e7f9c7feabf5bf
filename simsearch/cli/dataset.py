"""`simsearch embed`, `info` and `search`: a dataset's embeddings and index, a project's
description, the patches most similar to one patch."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from simsearch.cli.commands import (CLUSTER_HELP, FLAT_FIELD_HELP, MIN_CELLS_HELP, NO_BORDER_HELP, NORMALIZATION_HELP, POOLING_HELP,
                                     SCALES_HELP, add_backbone, add_device, add_parser, add_project, add_quiet, add_target,
                                     add_throughput, channel_list, check_cluster, int_list, on_cluster, patch_size,
                                     set_throughput, setting_text, target_of)
from simsearch.inference.cluster import iter_embed_on_cluster
from simsearch.cli.progress import ProgressBar
from simsearch.features.geometry import MIN_CELLS, POOLING
from simsearch.io.images import Dataset, image_name, is_glob_pattern, resolve_source, source_exists
from simsearch.io.flatfield import FLAT_FIELD_MODES
from simsearch.io.preprocess import NORMALIZATION_MODES
from simsearch.io.tables import write_csv
from simsearch.project.layout import ProjectLayout
from simsearch.project.project import Project
from simsearch.util.errors import ConfigError, ImagesMovedError, ProjectError, SimSearchError


def add_commands(sub) -> None:
    """Add embed, info and search to an argparse subparsers object (handler in defaults)."""
    embed = add_parser(sub, "embed")
    embed.add_argument("dataset", help="folder (recursive), glob pattern, or text file of image paths")
    add_project(embed)
    embed.add_argument("--patch-size", type=patch_size, help="patch size S or HxW px (default 96; an existing project keeps its own)")
    add_backbone(embed)
    embed.add_argument("--channels", type=channel_list, help="channels to use, e.g. 0 or 0,2,3 (default: up to the first 3)")
    embed.add_argument("--min-cells", type=int, help=MIN_CELLS_HELP)
    embed.add_argument("--pooling", type=float, help=POOLING_HELP)
    embed.add_argument("--passes", type=int, choices=(1, 2, 4), help="shifted passes per axis: grid step 16/passes scaled px (default 1)")
    embed.add_argument("--scales", help=SCALES_HELP)
    embed.add_argument("--no-border", dest="border", action="store_const", const=False, help=NO_BORDER_HELP)
    embed.add_argument("--normalization", choices=NORMALIZATION_MODES, help=NORMALIZATION_HELP)
    embed.add_argument("--flat-field", choices=FLAT_FIELD_MODES, help=FLAT_FIELD_HELP)
    add_device(embed)
    embed.add_argument("--cluster", help=CLUSTER_HELP)
    add_throughput(embed)

    info = add_parser(sub, "info")
    add_target(info, default="simsearch-project", metavar="TARGET", help="project folder or dataset (default: simsearch-project)")
    info.add_argument("--decode", action="store_true",
                      help="of a dataset: decode every image and name those that cannot be read (slow on large "
                           "folders; by default only the headers are read)")
    add_quiet(info)

    search = add_parser(sub, "search")
    add_project(search)
    search.add_argument("--image", required=True, help="image id or relative path")
    where = search.add_mutually_exclusive_group(required=True)
    where.add_argument("--point", type=int_list, metavar="X,Y", help="patch centre X,Y in pixels")
    where.add_argument("--box", type=int_list, metavar="X0,Y0,X1,Y1", help="box in pixels; its centre is used")
    where.add_argument("--at", type=int_list, metavar="Y,X", help=argparse.SUPPRESS)  # before 0.2: --point X,Y
    search.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    search.add_argument("--csv", help="also write the hits to this CSV file")
    add_device(search)
    embed.set_defaults(handler=cmd_embed)
    info.set_defaults(handler=cmd_info)
    search.set_defaults(handler=cmd_search)


def cmd_embed(args, quiet: bool) -> int:
    check_cluster(args.cluster)
    folder = Path(args.project)
    if ProjectLayout(folder).exists():
        project = _open_at(folder, args.dataset)
        if project.geometry is None:
            project.set_patch_size(args.patch_size or NEW_PROJECT["patch_size"])
        _check_same_settings(project, args)
        if args.scales is not None:
            project.set_scales(args.scales)
        print(f"opened project {project.folder}")
    else:
        dataset = Dataset.open(args.dataset)
        bar = ProgressBar(len(dataset), "normalization", quiet=quiet)
        given = {name: getattr(args, name) for name in NEW_PROJECT if getattr(args, name) is not None}
        project = Project.create(
            folder, dataset, backbone=args.backbone, weights=args.weights, channels=args.channels, scales=args.scales,
            progress=lambda done, total: bar.update(done), **{**NEW_PROJECT, **given},
        )
        print(f"created project {project.folder}")
    project.set_device(args.device)
    set_throughput(project, args)
    dataset = project.dataset
    for line in dataset.skipped_lines():
        print(line)
    start = time.perf_counter()
    counts = {"embedded": 0, "cached": 0, "failed": 0}
    bar = ProgressBar(len(dataset), "embedding", quiet=quiet)
    pixels = 0
    with on_cluster(args.cluster) as client:
        events = project.iter_embed() if client is None else iter_embed_on_cluster(project, client, device=args.device)
        for event in events:
            counts[event.status] += 1
            if event.status == "failed":
                print(f"  failed: {event.image}: {event.message}", file=sys.stderr)
            elif event.status == "embedded":
                record = dataset.by_id(event.image_id)
                pixels += record.height * record.width
            bar.update(event.done)
    elapsed = time.perf_counter() - start
    index = project.build_index()
    rate = f", {pixels / 1e6 / elapsed:.2f} MP/s" if counts["embedded"] and elapsed > 0 else ""
    print(
        f"embedded {counts['embedded']}, cached {counts['cached']}, failed {counts['failed']} "
        f"of {len(dataset)} image(s) in {elapsed:.1f}s{rate} on {project.embedder.device}"
    )
    print(f"index: {len(index)} patch vectors of dimension {index.dim} in {project.index_folder}")
    _warn_of_images_smaller_than_patch(project)
    print(project.summary())
    return 1 if counts["failed"] else 0


def _open_at(folder: Path, dataset: str) -> Project:
    """The existing project, whose images must be DATASET: re-pointed there where they moved
    (the project checks they are its images); a ConfigError where DATASET is another place."""
    try:
        project = Project.open(folder)
    except ImagesMovedError as moved:
        if not source_exists(dataset):
            raise moved from None
        project = Project.open(folder, dataset=dataset)
        print(f"project {project.folder}: its images moved; re-pointed to {project.dataset.source}")
        return project
    if resolve_source(dataset) != project.dataset.source:
        source = project.dataset.source
        project.close()
        raise ConfigError(f"{dataset}: project {project.folder} holds the images of {source}",
                          hint=f"embed {source} into it, or other images into another --project folder")
    return project


def _warn_of_images_smaller_than_patch(project: Project, named: int = 5) -> None:
    """On stderr: the images that hold no patch vector, being smaller than one patch (the first
    `named` of them by name)."""
    reasons = [reason for record in project.dataset if (reason := project.smaller_than_patch(record.id))]
    if not reasons:
        return
    print(f"warning: {len(reasons)} of {len(project.dataset)} image(s) hold no patch vectors:", file=sys.stderr)
    for reason in reasons[:named]:
        print(f"  {reason}", file=sys.stderr)
    if len(reasons) > named:
        print(f"  and {len(reasons) - named} more", file=sys.stderr)
    print("  hint: a project keeps its patch size; for a smaller one, embed into another --project folder with "
          "--patch-size", file=sys.stderr)


# a new project's settings where the command line gives none (an existing project keeps its own)
NEW_PROJECT = {"patch_size": (96, 96), "min_cells": MIN_CELLS, "pooling": POOLING, "passes": 1, "border": True, "normalization": "auto",
               "flat_field": "none"}


def _check_same_settings(project: Project, args) -> None:
    """Every embedding setting the command line gives must be the existing project's: its
    vectors were made with those (a setting not given is the project's)."""
    differing = project.differing_settings(
        patch_size=args.patch_size, backbone=args.backbone, passes=args.passes, min_cells=args.min_cells, border=args.border,
        pooling=args.pooling, channels=args.channels, normalization=args.normalization, flat_field=args.flat_field,
    )
    for name, (recorded, wanted) in differing.items():
        raise ConfigError(
            f"--no-border: project {project.folder} was made with the border grid" if name == "border"
            else f"--{name.replace('_', '-')}: project {project.folder} was made with {setting_text(name, recorded)}, "
                 f"not {setting_text(name, wanted)}",
            hint="leave the option out to use the project's own, or use another --project folder for other settings",
        )


def cmd_info(args, quiet: bool) -> int:
    source = target_of(args)
    target = Path(source)
    if ProjectLayout(target).exists():
        project = Project.open(target, read_only=True)
        print(project.summary())
        if project.geometry is None:  # nothing is embedded before the patch size is known
            print("embeddings: none yet (the first prototype fixes the patch size)")
            return 0
        missing = project.failed_images()
        print(f"embeddings cached: {len(project.dataset) - len(missing)}/{len(project.dataset)}")
        try:
            print(f"index: {len(project.load_index())} patch vectors")
        except SimSearchError:
            print("index: not built (run `simsearch embed`)")
    elif target.expanduser().exists() or is_glob_pattern(source):
        print(Dataset.open(source, verify=args.decode).summary())
        if not args.decode:
            print("files checked by their headers only (quick): `simsearch info --decode` or `simsearch embed` "
                  "decodes every image and names those it cannot read")
    else:
        raise ProjectError(f"info: no project and no images at '{source}' (it does not exist)",
                           hint="give a project folder, or images: a folder, a glob pattern or a text file "
                                "listing them")
    return 0


def cmd_search(args, quiet: bool) -> int:
    project = Project.open(args.project, read_only=True)
    project.set_device(args.device)
    record = project.dataset.find(args.image)
    if args.at is not None:
        print("simsearch search: --at Y,X is deprecated and goes in the next release; use --point X,Y "
              "(x first, as in --box X0,Y0,X1,Y1)", file=sys.stderr)
        if len(args.at) != 2:
            raise ConfigError("--at: give Y,X")
        y, x = args.at
    elif args.point is not None:
        if len(args.point) != 2:
            raise ConfigError("--point: give X,Y")
        x, y = args.point
    else:
        if len(args.box) != 4:
            raise ConfigError("--box: give X0,Y0,X1,Y1")
        x0, y0, x1, y1 = args.box
        y, x = (y0 + y1) / 2, (x0 + x1) / 2
    query = project.patch_vector(record.id, y, x)
    hits = project.load_index().search(query, k=args.k)
    rows = [
        (rank + 1, image_name(hits.image_ids[0, rank]), float(hits.centres[0, rank, 0]), float(hits.centres[0, rank, 1]), float(hits.scores[0, rank]))
        for rank in range(hits.scores.shape[1]) if hits.image_ids[0, rank]
    ]
    print(f"{'rank':>4}  {'similarity':>10}  {'x':>7}  {'y':>7}  image")
    for rank, image_id, cy, cx, score in rows:
        print(f"{rank:>4}  {score:10.4f}  {cx:7.1f}  {cy:7.1f}  {image_id}")
    if args.csv:
        write_csv(args.csv, ["rank", "image", "x", "y", "similarity"],
                  ((r, i, f"{cx:.1f}", f"{cy:.1f}", f"{s:.5f}") for r, i, cy, cx, s in rows))
    return 0
