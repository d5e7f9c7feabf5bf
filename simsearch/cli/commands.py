"""The `simsearch` subcommands: each one's name, one-line help and the module of this package
that defines it (loaded only when the command runs, so `simsearch --help` loads no library),
and the argument types the commands share."""
from __future__ import annotations

import argparse
from contextlib import contextmanager
from pathlib import Path

# name: (module in simsearch.cli, one-line help); the one list of commands
COMMANDS = {
    "embed": ("dataset", "create/open a project and embed every image of a dataset"),
    "info": ("dataset", "describe a project (or a dataset, without creating anything)"),
    "search": ("dataset", "the patches most similar to one patch, across the whole dataset"),
    "create": ("curation", "create a project for curation (embedding happens when needed)"),
    "displayed": ("curation", "show or choose the displayed images (those curated; the rest give noisy examples)"),
    "class": ("curation", "add, rename, delete or list ROI classes"),
    "prototype": ("curation", "add, delete or list prototypes"),
    "suggest": ("curation", "list a class's suggestions on the displayed images"),
    "flag": ("curation", "flag suggestions (by number in `suggest`) as not-this-class"),
    "confirm": ("curation", "unflagged suggestions above the threshold become clean positives"),
    "similar": ("curation", "the patches most similar to a class anywhere in the dataset (FAISS)"),
    "background": ("curation", "curate background (Algorithm 1)"),
    "noisy": ("curation", "extract noisy patches from the undisplayed images (resumable)"),
    "import": ("curation", "import prototypes and negatives from a CSV (kind,class,image,x0,y0,x1,y1)"),
    "train": ("model", "train the model (resumes an interrupted run)"),
    "review": ("model", "judge the model's own detections on undisplayed images; the answers feed the next training"),
    "threshold": ("model", "set a class's confidence threshold for detections"),
    "process": ("model", "run the trained model on the whole dataset (or --images) and export"),
    "run": ("model", "every step, headless, from a YAML file (see README)"),
    "eval": ("model", "the paper's simulated-user evaluation on an annotated dataset"),
    "tui": ("tui", "the terminal UI: open a project, or create one from images"),
}

SCALES_HELP = ("object sizes to search besides the patch's, relative to it, e.g. 0.5,1,2 (a scale pyramid: each "
               "level costs an embedding, 1/s^2 of the patch level's); 'auto': levels a factor 2 apart that cover "
               "the prototype boxes (default: the patch size only)")


CLUSTER_HELP = ("run on a Dask cluster: local (one worker per GPU, else one per 2 cores), local:N (N workers), "
                "or the address of a running scheduler, e.g. tcp://HOST:8786 (README, 'Clusters'); needs "
                "pip install 'simsearch[cluster]'")


NORMALIZATION_HELP = ("auto (default): each image by its own intensity range where the images' ranges differ widely "
                      "(different exposures or gains), else one range for the dataset; dataset: the paper's one range; "
                      "image: each image's own")
FLAT_FIELD_HELP = ("take the dataset's fixed background (uneven illumination, dust on the optics: a per-pixel percentile "
                   "of up to 256 of its images, all of one size) out of every image: divide for transmitted light "
                   "(brightfield, smears, micrographs), subtract for a dark ground (fluorescence); auto: one of "
                   "these where two halves of the images share the pattern (else none), chosen by which side of the "
                   "values the ground is; none (default) leaves the images as they are")


MIN_CELLS_HELP = ("upsample small patches so that a patch spans at least this many 16-px feature cells per side "
                  "(default 6; projects made before 2026-12-02 have 4): more cells separate touching small objects; "
                  "the embedding cost grows with the square")
POOLING_HELP = ("the width of the Gaussian that pools a patch's feature cells into its vector: its sigma as a fraction "
                "of the patch side (default 0.15, for a patch that frames one object; projects made before 2026-12-03 "
                "have 0.25); narrower describes the patch's middle, wider takes in its neighbours")
EVAL_POOLING_HELP = (POOLING_HELP + "; 'auto' (the default here): per class, the width that pools 0.15 x its median "
                     "box side whatever the patch, as a project whose patch is the objects' box does (0.15 x the patch "
                     "for objects given as centres)")
NO_BORDER_HELP = ("keep every patch inside the image (projects made before the border grid do): without it the patch grid reaches a quarter patch "
                  "beyond the image's edge (the image's median colour there), so objects cut by the edge are found; a project "
                  "keeps the grid it was made with")


BATCH_HELP = ("images of one shape through the network together, up to this many megapixels a batch, e.g. 16 on "
              "a GPU, where one small image at a time leaves it waiting (default 0: one image at a time; same "
              "results to float rounding)")


def add_throughput(parser: argparse.ArgumentParser) -> None:
    """--batch-megapixels and --decode-threads, for `Project.embed_batch_pixels` and `decode_threads`
    (`set_throughput`)."""
    parser.add_argument("--batch-megapixels", type=megapixels, default=0, metavar="MP", help=BATCH_HELP)
    parser.add_argument("--decode-threads", type=positive_int, metavar="N",
                        help="threads decoding the next images while the network runs (default: 1 on a CPU, "
                             "up to 8 beside a GPU)")


def set_throughput(project, args) -> None:
    """The project's batching and decoding as the command line says."""
    project.embed_batch_pixels = args.batch_megapixels
    project.decode_threads = args.decode_threads


def at_least(convert, least: float, what: str, most: float | None = None):
    """An argparse type: `convert(text)`, refused unless it is a number >= `least` (and <=
    `most` when given)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not value >= least or (most is not None and not value <= most):
            bounds = f">= {least}" if most is None else f"from {least} to {most}"
            raise argparse.ArgumentTypeError(f"expected {what} {bounds}, got {text!r}")
        return value
    return parse


positive_int = at_least(int, 1, "a whole number")


def megapixels(text: str) -> int:
    """argparse's type for --batch-megapixels: a number >= 0 of megapixels, as pixels."""
    return int(at_least(float, 0, "a number of megapixels")(text) * 1e6)


def check_cluster(address: str | None) -> None:
    """With --cluster: a valid address, and Dask installed (else a ConfigError, before any work)."""
    if address is not None:
        from simsearch.inference.cluster import check_cluster_address, require_dask

        check_cluster_address(address)
        require_dask()


@contextmanager
def on_cluster(address: str | None):
    """A Dask client for --cluster (closed after), or None without it. Call `check_cluster` first,
    before any work, so that a missing Dask is said at once."""
    if address is None:
        yield None
        return
    from simsearch.inference.cluster import cluster_client

    client = cluster_client(address)
    try:
        yield client
    finally:
        client.close()


def add_parser(sub, name: str) -> argparse.ArgumentParser:
    """The parser of command `name`, with its help from `COMMANDS`."""
    return sub.add_parser(name, help=COMMANDS[name][1], description=COMMANDS[name][1])


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (default): the GPU when torch sees one, else the CPU; or a torch device: cpu, cuda, cuda:1")


def add_backbone(parser: argparse.ArgumentParser) -> None:
    """--backbone and --weights (the names are `simsearch.BACKBONES`, not imported here: the
    CLI's help loads no library)."""
    parser.add_argument("--backbone", default="auto",
                        help="auto (default): resnet18 when its weights can be had, else efficientnet-lite0 (packaged, "
                             "works offline); or resnet18, efficientnet-lite0")
    parser.add_argument("--weights", help="weights file for the backbone (resnet18: torchvision's IMAGENET1K_V1 .pth)")


def add_quiet(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars or info logging")


def add_tiles(parser: argparse.ArgumentParser, item: str) -> None:
    """--tiles DIR: each listed item as DIR/N.png, to judge by looking (`write_tiles`)."""
    parser.add_argument("--tiles", metavar="DIR", help=f"also write each listed {item} as DIR/N.png (N as listed: the "
                                                       "patch, its box drawn, with some surroundings), to judge by looking")


def show_tiles(project, items, folder, numbers=None) -> None:
    """Write the listed items' tiles where --tiles asks, and say where they are."""
    if not folder or not items:
        return
    from simsearch.curation.tiles import MAX_TILES, write_tiles

    written = write_tiles(project, items, folder, numbers=numbers)
    more = f" (the first {MAX_TILES} of {len(items)})" if len(items) > len(written) else ""
    print(f"tiles: {len(written)} in {Path(folder).resolve()}{more}, each named by its number")


def add_project(parser: argparse.ArgumentParser) -> None:
    """--project (and -q) for a command that works on a project."""
    parser.add_argument("--project", default="simsearch-project", help="project folder (default: %(default)s)")
    add_quiet(parser)


def add_target(parser: argparse.ArgumentParser, *, default: str | None, metavar: str, help: str) -> None:
    """A positional project or dataset that `--project` gives too, as every curation command
    spells it (`target_of` reads it)."""
    parser.add_argument("target", nargs="?", metavar=metavar, help=help)
    parser.add_argument("--project", dest="project_target", metavar="PROJECT", help=f"the same as {metavar}")
    parser.set_defaults(target_default=default)


def target_of(args: argparse.Namespace) -> str | None:
    """The target of `add_target`: positional or --project (once), else the default."""
    from simsearch.util.errors import ConfigError

    if args.target and args.project_target and args.target != args.project_target:
        raise ConfigError(f"two projects given: '{args.target}' and --project '{args.project_target}'",
                          hint="give it once, either way")
    return args.project_target or args.target or args.target_default


def int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def patch_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(v) for v in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected S or HxW in pixels, got {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"expected S or HxW in pixels, got {text!r}")
    return parts[0], parts[1]


def box(text: str) -> tuple[float, float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1 in pixels, got {text!r}") from None
    if len(values) != 4:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1 in pixels, got {text!r}")
    return values


def setting_text(name: str, value) -> str:
    """A value of `Project.differing_settings` as a user writes it: a patch size 32x48, channels 0,2."""
    if name == "patch_size":
        return "x".join(map(str, value))
    if name == "channels":
        return ",".join(map(str, value))
    return str(value)


def pooling_or_auto(text: str) -> float | str:
    """argparse's type for eval's --pooling: 'auto' or a number."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto or a fraction of the patch side such as 0.15, got {text!r}") from None


def channel_list(text: str) -> list[int] | None:
    """argparse's type for --channels: `parse_channels`, its error as argparse's."""
    from simsearch.io.preprocess import parse_channels
    from simsearch.util.errors import ConfigError

    try:
        return parse_channels(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
