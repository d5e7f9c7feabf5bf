"""`simsearch` subcommands for training, confidence thresholds, whole-dataset processing and
the headless end-to-end run."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from simsearch.cli.commands import (CLUSTER_HELP, FLAT_FIELD_HELP, MIN_CELLS_HELP, NO_BORDER_HELP, NORMALIZATION_HELP, EVAL_POOLING_HELP, add_backbone, add_device, add_parser, add_project,
                                     add_quiet, at_least, add_throughput, channel_list, check_cluster, int_list, on_cluster, pooling_or_auto,
                                     positive_int, set_throughput, add_tiles, show_tiles)
from simsearch.curation.session import Curation
from simsearch.util.errors import ConfigError
from simsearch.evaluate.metrics import MATCHING_RULES
from simsearch.evaluate.simulate import STRATEGIES
from simsearch.io.flatfield import FLAT_FIELD_MODES
from simsearch.io.preprocess import NORMALIZATION_MODES
from simsearch.evaluate.report import EvalPlan, evaluate
from simsearch.features.geometry import MIN_CELLS
from simsearch.io.images import Dataset
from simsearch.inference.cluster import iter_process_on_cluster
from simsearch.inference.process import iter_process, write_results
from simsearch.cli.progress import ProgressBar
from simsearch.project.project import Project
from simsearch.inference.review import REVIEW_ORDERS, Review
from simsearch.cli.runner import run, training_settings
from simsearch.training.loop import TRAINING_STRATEGIES, TrainSettings, iter_train, model_check

# `simsearch eval`'s strategies unless given: similarity search and the probe, the two yardsticks (the report says
# whether training beat both), the paper's Pos and Pos+Neg+Selflearn, and full supervision
DEFAULT_EVAL_STRATEGIES = "similarity,probe,pos,pos+neg+selflearn,supervised"


def add_commands(sub) -> None:
    """Add train, review, threshold, process, run and eval to an argparse subparsers object."""

    trainer = add_parser(sub, "train")
    trainer.add_argument("--strategy", default="pos+neg+selflearn", choices=TRAINING_STRATEGIES,
                         help="the paper's stages and data to use (default pos+neg+selflearn; probe: the classifier alone, "
                              "seconds on a CPU; README, 'Training, detection and exports')")
    trainer.add_argument("--preset", default="cpu", choices=TrainSettings.PRESETS, help="epochs and batch sizes (paper: GPU)")
    add_training_choices(trainer)
    add_device(trainer)
    trainer.add_argument("--from-last", action="store_true",
                         help="fine-tune the last model instead of starting from the pretrained backbone")
    trainer.add_argument("--progress", choices=("bar", "json"), default="bar",
                         help="json: one line of JSON per progress event on stdout (for programs driving the training)")
    add_project(trainer)
    trainer.set_defaults(handler=cmd_train)

    review = add_parser(sub, "review")
    review.add_argument("class_name", nargs="?", metavar="CLASS",
                        help="the class to review (answers without it go to the class listed last)")
    review.add_argument("--count", type=int, default=20, help="items in a new batch (default 20)")
    review.add_argument("--order", default="uncertain", choices=REVIEW_ORDERS,
                        help="uncertain: nearest the confidence threshold first (default); confident; diverse")
    review.add_argument("--images", type=int, default=200, help="undisplayed images the items come from, at most (default 200)")
    review.add_argument("--accept", type=int, nargs="+", default=[], metavar="N", help="items that are the class")
    review.add_argument("--reject", type=int, nargs="+", default=[], metavar="N", help="items that are not the class")
    review.add_argument("--clear", type=int, nargs="+", default=[], metavar="N", help="take these answers back")
    review.add_argument("--list", action="store_true", help="show the current batch instead of proposing a new one")
    add_tiles(review, "item")
    add_device(review)
    add_project(review)
    review.set_defaults(handler=cmd_review)

    threshold = add_parser(sub, "threshold")
    threshold.add_argument("class_name", metavar="CLASS")
    threshold.add_argument("value", type=float)
    add_project(threshold)
    threshold.set_defaults(handler=cmd_threshold)

    process = add_parser(sub, "process")
    process.add_argument("--out", required=True, help="results folder")
    process.add_argument("--images", help="another folder, glob or list of images (default: the project's dataset)")
    process.add_argument("--segmentation", action="store_true", help="also write label images")
    add_device(process)
    process.add_argument("--cluster", help=CLUSTER_HELP)
    add_throughput(process)
    process.add_argument("--progress", choices=("bar", "json"), default="bar",
                         help="json: one line of JSON per image on stdout, then one with the results (for programs)")
    add_project(process)
    process.set_defaults(handler=cmd_process)

    runner = add_parser(sub, "run")
    runner.add_argument("config", help="run configuration (YAML)")
    add_quiet(runner)
    runner.set_defaults(handler=cmd_run)
    _add_eval_command(sub)


def _train_bar(quiet: bool):
    bars: dict = {}

    def show(event) -> None:
        if event.stage == "done":
            return
        key = (event.stage, event.epoch)
        if key not in bars:
            bars[key] = ProgressBar(event.steps, f"{event.stage} epoch {event.epoch}/{event.epochs}", quiet=quiet)
        bars[key].update(event.step, f"loss {event.loss:.4f} {event.patches_per_s:.0f} patches/s")

    return show


def cmd_train(args, quiet: bool) -> int:
    # training writes only files of its own (checkpoints, the model), never the store: read-only,
    # so that it can run while the project is open elsewhere (the terminal UI trains this way)
    with Project.open(args.project, read_only=True) as project:
        settings = chosen_training(args, strategy=args.strategy)
        show = _train_bar(quiet) if args.progress == "bar" else _json_progress
        for event in iter_train(project, settings, device=args.device, from_last=args.from_last):
            show(event)
        if args.progress == "bar":  # json: the events said it all
            print(f"the model in {project.layout.model} was trained on this curation and these settings: reused"
                  if event.reused else f"model saved in {project.layout.model}")
            for check in model_check(project):
                print(check.verdict())
    return 0


def cmd_review(args, quiet: bool) -> int:
    with Project.open(args.project) as project:
        curation = Curation(project)
        answers = {"accepted": args.accept, "rejected": args.reject, None: args.clear}
        given = [n for numbers in answers.values() for n in numbers]
        class_name = args.class_name
        if given:
            class_name = class_name or curation.last_reviewed_class()
            if class_name is None:
                raise ConfigError("review: no batch listed yet", hint="list one first: simsearch review CLASS")
            twice = sorted({n for n in given if given.count(n) > 1})
            if twice:
                raise ConfigError(f"review: item(s) {twice} given more than one answer")
            listed = {item.number for item in curation.review_items(class_name)}
            unknown = sorted(set(given) - listed)
            if unknown:
                raise ConfigError(f"review of {class_name!r}: no item numbered {unknown} in the current batch ({len(listed)} item(s))")
            for answer, numbers in answers.items():
                if numbers:
                    curation.answer_review(class_name, numbers, answer)
        elif not args.list:
            if class_name is None:
                raise ConfigError("review: name the class to review", hint="e.g. simsearch review WBC --count 20")
            review = Review(project, device=args.device, max_images=args.images)
            bar = ProgressBar(len(review.image_ids), "running the model on undisplayed images", quiet=quiet)
            for event in review.iter_prepare():
                bar.update(event.done)
            review.propose(class_name, count=args.count, order=args.order)
        class_name = class_name or curation.last_reviewed_class()
        if class_name is None:
            raise ConfigError("review: no batch listed yet", hint="list one first: simsearch review CLASS")
        items = _print_review(curation, class_name)
        show_tiles(project, items, args.tiles, numbers=[item.number for item in items])
    return 0


def _print_review(curation: Curation, class_name: str) -> list:
    """The class's current batch, listed; returns its items."""
    items = curation.review_items(class_name)
    threshold = curation.class_info(class_name).confidence_threshold
    print(f"review of {class_name} (confidence threshold {threshold:.2f}): {len(items)} item(s); "
          f"answer with --accept N.. (it is {class_name}) and --reject N.. (it is not)")
    print(f"{'#':>4}  {'answer':>8}  {'confidence':>10}  {'x':>7}  {'y':>7}  image")
    for item in items:
        print(f"{item.number:>4}  {item.answer or '-':>8}  {item.confidence:10.3f}  {item.x:7.1f}  {item.y:7.1f}  {item.image}")
    counts = curation.class_counts(class_name)
    print(f"answers so far for {class_name}: {counts.accepted} accepted, {counts.rejected} rejected (simsearch train learns from them)")
    return items


def _json_progress(event) -> None:
    print(json.dumps(dataclasses.asdict(event)), flush=True)


def cmd_threshold(args, quiet: bool) -> int:
    with Project.open(args.project) as project:
        curation = Curation(project)
        curation.set_confidence_threshold(args.class_name, args.value)
        for info in curation.classes():
            print(f"{info.name:<16} confidence threshold {info.confidence_threshold:.3f}")
    return 0


def cmd_process(args, quiet: bool) -> int:
    check_cluster(args.cluster)
    with Project.open(args.project, read_only=True) as project:
        set_throughput(project, args)
        images = Dataset.open(args.images) if args.images else None
        total = len(images or project.dataset)
        bar = ProgressBar(total, "processing", quiet=quiet or args.progress == "json")
        failed = 0
        with on_cluster(args.cluster) as client:
            events = (iter_process(project, args.out, images=images, device=args.device) if client is None else
                      iter_process_on_cluster(project, args.out, client, images=images, device=args.device))
            for event in events:
                bar.update(event.done)
                if args.progress == "json":
                    _json_progress(event)
                if event.status == "failed":
                    failed += 1
                    if args.progress == "bar":
                        print(f"  failed: {event.image}: {event.message}")
        manifest = write_results(project, args.out, images=images, segmentation=args.segmentation)
        if args.progress == "json":
            print(json.dumps({"results": str(args.out), "detections": manifest["detections"], "images": total, "failed": failed}),
                  flush=True)
        else:
            print(f"{manifest['detections']} detection(s) in {total} image(s); results in {args.out}")
    return 1 if failed else 0


def cmd_run(args, quiet: bool) -> int:
    bars: dict = {}
    train_bar = _train_bar(quiet)

    def progress(step, event) -> None:
        if step == "train":
            train_bar(event)
        else:
            bars.setdefault(step, ProgressBar(event.total, "processing", quiet=quiet)).update(event.done)

    run(args.config, progress=progress)
    return 0


def _add_eval_command(sub) -> None:
    evaluation = add_parser(sub, "eval")
    evaluation.add_argument("--images", required=True, help="images folder, glob or list")
    evaluation.add_argument("--truth", required=True, help="ground truth: CSV (image,class,x,y or boxes), VOC folder, COCO or BBBC041 JSON, "
                                                                 "a folder of YOLO .txt labels or of GeoJSON (QuPath), or a folder of instance-label images or of one mask "
                                                                 "per object (their objects are of the first of --classes)")
    evaluation.add_argument("--train-list", help="training image names, one per line")
    evaluation.add_argument("--test-list", help="test image names, one per line")
    evaluation.add_argument("--test-fraction", type=float, default=0.25,
                            help="without --test-list: the share of the images held out for testing (default 0.25)")
    evaluation.add_argument("--classes", required=True, help="comma-separated class names")
    evaluation.add_argument("--patch-size", default="auto",
                            help="S for all classes, or CLASS=S,CLASS=S; 'auto' (default): the median box side (boxes needed)")
    evaluation.add_argument("--prototypes", type=int_list, default=[5, 10],
                            help="prototypes per class the simulated user marks, e.g. 5,10: one set of trials each (default 5,10)")
    evaluation.add_argument("--negatives", type=int_list, default=[5],
                            help="wrong suggestions it flags before it confirms, e.g. 0,5 (default 5)")
    evaluation.add_argument("--strategies", default=DEFAULT_EVAL_STRATEGIES,
                            help=f"comma-separated, of: {', '.join(STRATEGIES)} (default {DEFAULT_EVAL_STRATEGIES}: the "
                                 "probe is the yardstick training must beat, and takes seconds)")
    evaluation.add_argument("--repeats", type=int, default=3,
                            help="trials per setting, each with other displayed images and prototypes (default 3)")
    evaluation.add_argument("--displayed", type=int, default=6, help="images the simulated user is shown (default 6)")
    evaluation.add_argument("--seed", type=int, default=0, help="seed of the trials' random choices (default 0)")
    evaluation.add_argument("--preset", default="cpu", choices=TrainSettings.PRESETS,
                            help="training settings: cpu (short, the default) or paper (the paper's epochs, for a GPU)")
    add_training_choices(evaluation)
    add_backbone(evaluation)
    evaluation.add_argument("--review-rounds", type=int, default=0,
                            help="review rounds after training: the simulated user answers the model's own detections, then retrains")
    evaluation.add_argument("--review-size", type=int, default=20, help="items answered per review round (default 20)")
    evaluation.add_argument("--review-images", type=int, default=100,
                            help="undisplayed training images the review items come from, at most (default 100)")
    evaluation.add_argument("--retrain", type=int, default=1,
                            help="train N times on the same curated data with training seeds 0..N-1 and report the spread")
    evaluation.add_argument("--joint", action="store_true",
                            help="also trials whose project holds every class at once, as a user's does (one patch size)")
    evaluation.add_argument("--scales", default="",
                            help="the similarity search's scale pyramid, e.g. 0.5,1,2 (object sizes relative to the patch); "
                                 "'auto': per class, levels a factor 2 apart covering its 5th-95th percentile box sides; "
                                 "prototypes are then marked with their object's own box")
    evaluation.add_argument("--normalization", default="auto", choices=NORMALIZATION_MODES, help=NORMALIZATION_HELP)
    evaluation.add_argument("--flat-field", default="none", choices=FLAT_FIELD_MODES, help=FLAT_FIELD_HELP)
    evaluation.add_argument("--no-border", dest="border", action="store_false", help=NO_BORDER_HELP)
    evaluation.add_argument("--min-cells", type=int, default=MIN_CELLS, help=MIN_CELLS_HELP)
    evaluation.add_argument("--pooling", type=pooling_or_auto, default="auto", help=EVAL_POOLING_HELP)
    evaluation.add_argument("--channels", type=channel_list,
                            help="image channels to use, e.g. 0 or 0,2 (default: up to the first 3), as for embed")
    evaluation.add_argument("--matching", default="patch", choices=MATCHING_RULES,
                            help="scoring: 'patch', the paper's radius (0.3 x the patch width) for every object; 'object', "
                                 "0.3 x the larger of the patch and the object's box (objects larger than the patch)")
    add_device(evaluation)
    evaluation.add_argument("--out", required=True,
                            help="folder for report.md, results.json and the PR curves; a rerun resumes its finished trials")
    add_quiet(evaluation)
    evaluation.set_defaults(handler=cmd_eval)


def add_training_choices(parser) -> None:
    """The options that change a preset's training or detection: --classifier-copies, --probe-share and
    --similarity-gate."""
    parser.add_argument("--classifier-copies", type=positive_int, default=None, metavar="N",
                        help="the classifier stage learns from each example's embedding and N-1 augmented copies' "
                             "(default 16; 4 until 2026-12-05)")
    parser.add_argument("--probe-share", type=at_least(float, 0, "a share", most=1), default=None, metavar="S",
                        help="detection averages the trained model's probabilities with a linear probe's on the pretrained "
                             "features, S of the probe's (default: the preset's, cpu 0.5, paper 0: the model alone)")
    parser.add_argument("--similarity-gate", choices=("on", "off"), default=None,
                        help="detection scores each class as the geometric mean of its probability and the similarity "
                             "to its prototypes (default: the preset's, cpu on, paper off)")


def chosen_training(args, **section) -> TrainSettings:
    """The training settings of the --preset (and --classifier-copies, --probe-share and
    --similarity-gate when given) and `section`."""
    extra = {} if args.probe_share is None else {"probe_share": args.probe_share}
    if args.classifier_copies is not None:
        extra["classifier_copies"] = args.classifier_copies
    if args.similarity_gate is not None:
        extra["similarity_gate"] = args.similarity_gate == "on"
    return training_settings({"preset": args.preset, **section, **extra})


def _patch_sizes(text: str, classes: list[str]) -> dict[str, int | str]:
    def size(value: str) -> int | str:
        value = value.strip()
        return "auto" if value == "auto" else int(value)
    try:
        if "=" not in text:
            return {c: size(text) for c in classes}
        sizes = {k.strip(): size(v) for k, v in (item.rsplit("=", 1) for item in text.split(","))}
    except ValueError:
        raise ConfigError(f"--patch-size: expected S, auto or CLASS=S,CLASS=auto, got {text!r}") from None
    missing = [c for c in classes if c not in sizes]
    if missing:
        raise ConfigError(f"--patch-size: no size for {missing}")
    return sizes


def plan_from_args(args) -> EvalPlan:
    """The evaluation `simsearch eval` arguments describe."""
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    return EvalPlan(
        images=args.images, truth=args.truth, out=Path(args.out), classes=classes,
        patch_sizes=_patch_sizes(args.patch_size, classes), prototypes=args.prototypes, negatives=args.negatives,
        strategies=[s.strip() for s in args.strategies.split(",")], repeats=args.repeats, seed=args.seed,
        displayed=args.displayed, train_list=args.train_list, test_list=args.test_list,
        test_fraction=args.test_fraction, backbone=args.backbone, weights=args.weights,
        training=chosen_training(args), device=args.device, review_rounds=args.review_rounds,
        review_size=args.review_size, review_images=args.review_images, retrain=args.retrain, joint=args.joint,
        scales=args.scales, matching=args.matching, normalization=args.normalization, flat_field=args.flat_field, border=args.border,
        channels=args.channels, min_cells=args.min_cells, pooling=args.pooling,
    )


def cmd_eval(args, quiet: bool) -> int:
    evaluate(plan_from_args(args))
    print((Path(args.out) / "report.md").read_text())
    return 0
