"""Experiment (issue 17): an output ensemble of the probe and the Pos+Neg+Selflearn model that
one `simsearch eval` run trained on the same curation. Each test image's probability maps of
the two saved trial models are averaged, w * Pos+Neg+Selflearn + (1 - w) * probe, and scored as
the evaluation scores a trial (the same peaks, matching and edge margin); w = 0 and w = 1
reproduce the evaluation's own probe and Pos+Neg+Selflearn scores.

    python benchmarks/results/issue17-standing/ensemble/ensemble.py EVAL-ARGS --out EVAL-OUT

EVAL-ARGS and EVAL-OUT: those of the finished evaluation (P 10, N 5; see ../run-cu130.sh and
run.sh here). PAIR=supervised-probe,supervised averages the two baselines' models instead
(the probe's model first)."""
import os
import sys
from simsearch.cli.main import build_parser
from simsearch.cli.model import plan_from_args
from simsearch.evaluate.report import split, auto_patch_sizes
from simsearch.evaluate.simulate import BASELINES, SimulatedUser, Trial
from simsearch.evaluate.metrics import Scored, score_class, away_from_edge
from simsearch.inference.predict import Predictor, detections_from_levels
from simsearch.io.images import Dataset
from simsearch.io.truth import read_truth
from simsearch.project.project import Project
from dataclasses import replace

args = build_parser(["eval"]).parse_args(["eval"] + sys.argv[1:])
plan = plan_from_args(args)
label = plan.classes[0]
dataset = Dataset.open(plan.images)
truth = read_truth(plan.truth, label=label, images=dataset)
plan = replace(plan, patch_sizes={**plan.patch_sizes, **auto_patch_sizes(truth, [c for c in plan.classes if plan.patch_sizes.get(c) == "auto"])})
train_ids, test_ids = split(dataset, plan)
base = Project.open(next((plan.out / "base").iterdir()), dataset=plan.images)
user = SimulatedUser(base, truth, train_ids, test_ids, label=label, displayed=plan.displayed, workdir=plan.out / "work",
                     settings=plan.training, device="cpu", seed=plan.seed)
gt = [a for i in test_ids for a in user.truth_of[i]]
W = (0.0, 0.25, 0.5, 0.75, 1.0)
PROBE, MODEL = os.environ.get("PAIR", "probe,pos+neg+selflearn").split(",")
for r in range(plan.repeats):
    preds = {}
    for s in (PROBE, MODEL):
        p, n = (0, 0) if s in BASELINES else (plan.prototypes[0], plan.negatives[0])
        folder = user.trial_folder(Trial(label, p, n, s, r))
        preds[s] = Predictor(Project.open(folder, dataset=plan.images), device="cpu")
    found = {w: [] for w in W}
    for image_id in test_ids:
        image = base.dataset.read(image_id)
        a = preds[PROBE].level_maps(image)
        b = preds[MODEL].level_maps(image)
        names = preds[PROBE].class_names[:-1]
        for w in W:
            levels = [(s, g, (w * mb + (1 - w) * ma)) for (s, g, ma), (_, _, mb) in zip(a, b)]
            for d in detections_from_levels(levels, names, dict.fromkeys(names, 0.0), image_id):
                if d.class_name == label:
                    found[w].append(Scored(user.test_names[image_id], label, d.y, d.x, d.confidence))
    rule = user.rules[user.matching]
    line = []
    for w in W:
        inner = away_from_edge(found[w], gt, user.test_sizes, base.geometry.patch_size[1] / 2)
        line.append(f"w={w}: {score_class(found[w], gt, label, rule).pr_auc:.3f} (edge {score_class(*inner, label, rule).pr_auc:.3f})")
    print(f"r{r}", "; ".join(line), flush=True)
