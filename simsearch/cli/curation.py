"""`simsearch` subcommands for the iterative patch selection loop (one action per call;
every action is saved in the project store as it is made)."""
from __future__ import annotations

import sys

from simsearch.cli.commands import (FLAT_FIELD_HELP, MIN_CELLS_HELP, NO_BORDER_HELP, NORMALIZATION_HELP, POOLING_HELP, SCALES_HELP, add_backbone, add_parser, add_project,
                                     add_tiles, box, channel_list, patch_size, show_tiles)
from simsearch.curation.importer import import_annotations
from simsearch.curation.results import Suggestion
from simsearch.curation.session import Curation
from simsearch.util.errors import ConfigError
from simsearch.features.geometry import MIN_CELLS, POOLING
from simsearch.io.images import Dataset
from simsearch.io.flatfield import FLAT_FIELD_MODES
from simsearch.io.preprocess import NORMALIZATION_MODES
from simsearch.io.tables import write_csv
from simsearch.cli.progress import ProgressBar
from simsearch.project.project import Project


def add_commands(sub) -> None:
    """Add the curation subcommands to an argparse subparsers object (handler in defaults)."""
    create = add_parser(sub, "create")
    create.add_argument("dataset", help="folder (recursive), glob pattern, or text file of image paths")
    add_project(create)
    create.add_argument("--patch-size", type=patch_size, help="patch size S or HxW px (default: the first prototype's)")
    create.add_argument("--displayed", type=int, default=6, help="number of displayed images, chosen at random (default 6)")
    create.add_argument("--displayed-images", nargs="+", metavar="IMAGE", help="name the displayed images instead")
    create.add_argument("--seed", type=int, default=0, help="seed for choosing the displayed images")
    add_backbone(create)
    create.add_argument("--channels", type=channel_list, help="channels to use, e.g. 0 or 0,2,3 (default: up to the first 3)")
    create.add_argument("--scales", help=SCALES_HELP)
    create.add_argument("--normalization", default="auto", choices=NORMALIZATION_MODES, help=NORMALIZATION_HELP)
    create.add_argument("--flat-field", default="none", choices=FLAT_FIELD_MODES, help=FLAT_FIELD_HELP)
    create.add_argument("--no-border", dest="border", action="store_false", help=NO_BORDER_HELP)
    create.add_argument("--min-cells", type=int, default=MIN_CELLS, help=MIN_CELLS_HELP)
    create.add_argument("--pooling", type=float, default=POOLING, help=POOLING_HELP)

    displayed = add_parser(sub, "displayed")
    displayed.add_argument("count", type=int, nargs="?", help="choose this many at random (seeded); "
                           "without it or --images the command lists them")
    displayed.add_argument("--images", nargs="+", metavar="IMAGE", help="name them instead (ids, paths or file names)")
    displayed.add_argument("--seed", type=int, default=0, help="seed for choosing them (default 0)")
    add_project(displayed)

    klass = add_parser(sub, "class")
    klass_sub = klass.add_subparsers(dest="action", required=True)
    for action, args in (("add", ("name",)), ("rename", ("old", "new")), ("delete", ("name",)), ("restore", ("file",)),
                         ("list", ())):
        parser = klass_sub.add_parser(action, help="a class deleted before, from the file `delete` saved it to"
                                      if action == "restore" else None)
        for arg in args:
            parser.add_argument(arg)
        if action == "add":
            parser.add_argument("--threshold", type=float, default=0.5, help="similarity threshold (default 0.5)")
        add_project(parser)

    proto = add_parser(sub, "prototype")
    proto_sub = proto.add_subparsers(dest="action", required=True)
    add = proto_sub.add_parser("add")
    add.add_argument("class_name", metavar="CLASS")
    add.add_argument("image", help="image id, relative path or file name")
    add.add_argument("box", type=box, nargs="?",
                     help="X0,Y0,X1,Y1 in pixels (a box starting with a minus: --box=-5,-5,27,27, or -- before it)")
    add.add_argument("--box", type=box, dest="box_option", metavar="X0,Y0,X1,Y1", help="the box, as an option")
    add_project(add)
    delete = proto_sub.add_parser("delete")
    delete.add_argument("id", type=int)
    add_project(delete)
    listing = proto_sub.add_parser("list")
    add_project(listing)

    suggest = add_parser(sub, "suggest")
    suggest.add_argument("class_name", metavar="CLASS")
    suggest.add_argument("--threshold", type=float, help="similarity threshold (default: the class's stored one)")
    suggest.add_argument("--save-threshold", action="store_true", help="store --threshold as the class's threshold")
    suggest.add_argument("--csv", help="also write the suggestions to this CSV file")
    add_tiles(suggest, "suggestion")
    add_project(suggest)

    flag = add_parser(sub, "flag")
    flag.add_argument("class_name", metavar="CLASS")
    flag.add_argument("numbers", type=int, nargs="+", help="suggestion numbers, as `simsearch suggest` lists them")
    flag.add_argument("--unflag", action="store_true", help="take the flags back")
    add_project(flag)

    confirm = add_parser(sub, "confirm")
    confirm.add_argument("class_name", metavar="CLASS")
    confirm.add_argument("--threshold", type=float, help="similarity threshold (default: the class's stored one)")
    add_project(confirm)

    similar = add_parser(sub, "similar")
    similar.add_argument("class_name", metavar="CLASS")
    similar.add_argument("-k", type=int, default=20, help="number of hits (default 20)")
    add_tiles(similar, "hit")
    add_project(similar)

    background = add_parser(sub, "background")
    background_sub = background.add_subparsers(dest="action", required=True)
    propose = background_sub.add_parser("propose")
    propose.add_argument("--count", type=int, default=20, help="most and least similar patches each (default 20)")
    add_project(propose)
    add_tiles(propose, "candidate")
    listing = background_sub.add_parser("list")
    add_tiles(listing, "candidate")
    add_project(listing)
    add_project(background_sub.add_parser("confirm"))
    bg_flag = background_sub.add_parser("flag", help="flag candidates (by number in `background list`) as not background")
    bg_flag.add_argument("numbers", type=int, nargs="+", help="candidate numbers, as `simsearch background list` lists them")
    bg_flag.add_argument("--unflag", action="store_true", help="take the flags back")
    add_project(bg_flag)

    noisy = add_parser(sub, "noisy")
    noisy.add_argument("--cap", type=int, help="at most this many noisy patches per class")
    noisy.add_argument("--background-per-image", type=int, default=4,
                       help="background patches per undisplayed image, most and least like the prototypes each (default 4)")
    noisy.add_argument("--seed", type=int, default=0, help="seed of the random choices (default 0)")
    noisy.add_argument("--restart", action="store_true", help="discard earlier noisy patches first")
    add_project(noisy)

    importer = add_parser(sub, "import")
    importer.add_argument("csv_file")
    add_project(importer)

    for parser, handler in (
        (create, cmd_create), (displayed, cmd_displayed), (klass, cmd_class), (proto, cmd_prototype), (suggest, cmd_suggest),
        (flag, cmd_flag), (confirm, cmd_confirm), (similar, cmd_similar), (background, cmd_background),
        (noisy, cmd_noisy), (importer, cmd_import),
    ):
        parser.set_defaults(handler=handler)


def cmd_create(args, quiet: bool) -> int:
    dataset = Dataset.open(args.dataset)
    bar = ProgressBar(len(dataset), "normalization", quiet=quiet)
    project = Project.create(
        args.project, dataset, patch_size=args.patch_size, backbone=args.backbone, weights=args.weights,
        channels=args.channels, progress=lambda done, total: bar.update(done), scales=args.scales,
        displayed=args.displayed_images or min(args.displayed, len(dataset)), seed=args.seed,
        normalization=args.normalization, border=args.border, min_cells=args.min_cells,
        pooling=args.pooling, flat_field=args.flat_field,
    )
    with project:
        print(f"created project {project.folder}")
        print(project.summary())
    return 0


def _open(args) -> tuple[Project, Curation]:
    project = Project.open(args.project)
    return project, Curation(project)


def cmd_displayed(args, quiet: bool) -> int:
    if args.count is not None and args.images:
        raise ConfigError("displayed: give a count or --images, not both")
    project, curation = _open(args)
    with project:
        if args.count is not None or args.images:
            project.choose_displayed(args.count, names=args.images, seed=args.seed)
            if curation.prototypes():
                print("note: prototypes, negatives and positives curated on other images are kept")
        for image_id in project.displayed:
            print(project.dataset.by_id(image_id).relpath)
        print(f"{len(project.displayed)} displayed, {len(project.undisplayed)} undisplayed (noisy examples come from these)")
    return 0


def cmd_class(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        if args.action == "add":
            curation.add_class(args.name, similarity_threshold=args.threshold)
        elif args.action == "rename":
            curation.rename_class(args.old, args.new)
        elif args.action == "delete":
            saved = curation.delete_class(args.name)
            print(f"deleted {args.name}; everything curated for it is saved in {saved} "
                  f"(simsearch class restore {saved} brings it back)")
        elif args.action == "restore":
            print(f"restored {curation.restore_class(args.file).name}")
        for info in curation.classes():
            counts = curation.class_counts(info.name)
            state = "confirmed" if info.confirmed else "open"
            print(f"{info.name:<16} threshold {info.similarity_threshold:+.3f}  prototypes {counts.prototypes}  "
                  f"negatives {counts.negatives}  positives {counts.positives}  {state}")
    return 0


def cmd_prototype(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        if args.action == "add":
            if (args.box is None) == (args.box_option is None):
                raise ConfigError("prototype add: give the box once, as X0,Y0,X1,Y1 or --box=X0,Y0,X1,Y1")
            added = curation.add_prototype(args.class_name, args.image, args.box or args.box_option)
            print(f"added prototype {added.id} of {added.class_name} in {added.image}")
        elif args.action == "delete":
            curation.remove_prototype(args.id)
        for proto in curation.prototypes():
            x0, y0, x1, y1 = proto.box
            print(f"{proto.id:>4}  {proto.class_name:<16} {proto.image}  box {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}")
    return 0


def _print_suggestions(suggestions: list[Suggestion], csv_path: str | None = None) -> None:
    """One line per suggestion; `size`: its box side in px (the patch's, or its level's in a scale pyramid)."""
    print(f"{'#':>4}  {'similarity':>10}  {'x':>7}  {'y':>7}  {'size':>4}  flag  image")
    for number, s in enumerate(suggestions, start=1):
        print(f"{number:>4}  {s.similarity:10.4f}  {s.x:7.1f}  {s.y:7.1f}  {s.box[2] - s.box[0]:4.0f}  "
              f"{'  x ' if s.flagged else '    '}  {s.image}")
    if csv_path:
        write_csv(csv_path, ["number", "class", "image", "x", "y", "similarity", "flagged", "size"], (
            [number, s.class_name, s.image, f"{s.x:.1f}", f"{s.y:.1f}", f"{s.similarity:.5f}", int(s.flagged),
             f"{s.box[2] - s.box[0]:.0f}"] for number, s in enumerate(suggestions, start=1)))


def cmd_suggest(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        if args.save_threshold:
            if args.threshold is None:
                raise ConfigError("--save-threshold needs --threshold")
            curation.set_threshold(args.class_name, args.threshold)
        suggestions = curation.suggestions(args.class_name, args.threshold)
        _print_suggestions(suggestions, args.csv)
        flagged = sum(s.flagged for s in suggestions)
        images = len({s.image_id for s in suggestions})
        print(f"{len(suggestions)} suggestion(s) in {images} image(s), {flagged} flagged")
        show_tiles(project, suggestions, args.tiles)
        if not curation.prototypes(args.class_name):
            print(f"note: class {args.class_name!r} has no prototype yet, so nothing is suggested\n"
                  f"  hint: add one, e.g. simsearch prototype add {args.class_name} IMAGE X0,Y0,X1,Y1", file=sys.stderr)
    return 0


def _pick(items: list, numbers: list[int], what: str) -> list:
    bad = [n for n in numbers if not 1 <= n <= len(items)]
    if bad:
        raise ConfigError(f"{what}: no number(s) {bad}; there are {len(items)}")
    return [items[n - 1] for n in numbers]


def cmd_flag(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        chosen = _pick(curation.suggestions(args.class_name), args.numbers, "suggestions")
        for suggestion in chosen:
            curation.flag_negative(suggestion, flagged=not args.unflag)
        print(f"{'unflagged' if args.unflag else 'flagged'} {len(chosen)} suggestion(s) of {args.class_name}")
    return 0


def cmd_confirm(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        positives = curation.confirm_class(args.class_name, args.threshold)
        info = curation.class_info(args.class_name)
        print(f"{args.class_name}: {len(positives)} clean positive(s) at threshold {info.similarity_threshold:+.3f}, "
              f"{curation.class_counts(args.class_name).negatives} negative(s)")
    return 0


def cmd_similar(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        print(f"{'rank':>4}  {'similarity':>10}  {'x':>7}  {'y':>7}  {'size':>4}  image")
        hits = curation.most_similar_anywhere(args.class_name, args.k)
        for rank, hit in enumerate(hits, start=1):
            size = project.geometry_at(hit.level).patch_size[1]
            print(f"{rank:>4}  {hit.score:10.4f}  {hit.x:7.1f}  {hit.y:7.1f}  {size:4d}  {hit.image}")
        show_tiles(project, hits, args.tiles)
    return 0


def cmd_background(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        if args.action == "propose":
            candidates = curation.propose_background(args.count)
        elif args.action == "flag":
            candidates = curation.background_candidates()
            for candidate in _pick(candidates, args.numbers, "background candidates"):
                curation.flag_not_background(candidate, flagged=not args.unflag)
            candidates = curation.background_candidates()
        elif args.action == "confirm":
            kept = curation.confirm_background()
            print(f"{len(kept)} clean background patch(es)")
            return 0
        else:
            candidates = curation.background_candidates()
        print(f"{'#':>4}  {'extreme':>7}  {'similarity':>10}  {'x':>7}  {'y':>7}  background  image")
        for number, c in enumerate(candidates, start=1):
            print(f"{number:>4}  {c.extreme:>7}  {c.similarity:10.4f}  {c.x:7.1f}  {c.y:7.1f}  "
                  f"{'yes' if c.is_background else 'NO ':>10}  {c.image}")
        show_tiles(project, candidates, getattr(args, "tiles", None))
    return 0


def cmd_noisy(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        if args.restart:
            curation.clear_noisy()
        bar = ProgressBar(max(1, len(project.undisplayed)), "noisy extraction", quiet=quiet)
        for event in curation.iter_noisy(cap_per_class=args.cap, background_per_image=args.background_per_image, seed=args.seed):
            bar.update(event.done)
        for info in curation.classes():
            print(f"{info.name:<16} {curation.class_counts(info.name).noisy} noisy patch(es)")
        print(f"{'background':<16} {curation.background_counts().noisy} noisy patch(es)")
    return 0


def cmd_import(args, quiet: bool) -> int:
    project, curation = _open(args)
    with project:
        counts = import_annotations(project, curation, args.csv_file)
        already = f" ({counts['already']} line(s) were there already)" if counts["already"] else ""
        print(f"imported {counts['prototype']} prototype(s) and {counts['negative']} negative(s) from {args.csv_file}{already}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `simsearch` command")
