"""ablate.py TRIAL VARIANT STRATEGY -- EVAL-ARGUMENTS

Train one finished `simsearch eval` trial again on changed curated data and score it on the test
images as eval does (seed 0). TRIAL is the trial's project folder (OUT/work/<trial>), the
evaluation's arguments those of the run that made it (its --out included: its base project holds
the embeddings). VARIANT:
- asis: the curated data unchanged (reproduces the trial's seed-0 PR-AUC);
- nonegs: the user's negatives taken out;
- negs_as_pos: the user's negatives moved to the positives, as a user who knew them for cells
  would have confirmed them.
Eval's training options apply (`--classifier-copies 4`: the old rows' count). Prints one JSON
line. Uses eval's internals (the base project and the simulated user's scoring), so that the
numbers compare with results.json."""
import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from simsearch import Dataset, Project
from simsearch.cli.main import build_parser
from simsearch.cli.model import plan_from_args
from simsearch.evaluate.metrics import score_class
from simsearch.evaluate.report import _base_project, class_sizes, split
from simsearch.evaluate.simulate import SimulatedUser
from simsearch.io.truth import read_truth
from simsearch.training.loop import train

WORK = Path("/tmp/abl/ffwork")
VARIANTS = ("asis", "nonegs", "negs_as_pos")
trial, variant, strategy = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if variant not in VARIANTS:
    raise SystemExit(f"VARIANT: one of {', '.join(VARIANTS)}, not {variant!r}")
argv = ["eval"] + sys.argv[sys.argv.index("--") + 1:]
plan = plan_from_args(build_parser(argv).parse_args(argv))
dataset = Dataset.open(plan.images)
truth = read_truth(plan.truth, label=plan.classes[0], images=dataset)
train_ids, test_ids = split(dataset, plan)
label = plan.classes[0]
sizes = class_sizes(plan, truth)
base = _base_project(plan, dataset, label, sizes[label]["scales"], sizes[label]["pooling"], lambda text: None)
user = SimulatedUser(base, truth, train_ids, test_ids, label=label, displayed=plan.displayed, workdir=WORK,
                     settings=plan.training, device="cpu")
import os; SEED = int(os.environ.get('SEED', '0')); copy = WORK / f"{trial.name}-{variant}-{os.environ.get('ABLATE', 'none')}-s{SEED}"
shutil.rmtree(copy, ignore_errors=True)
shutil.copytree(trial, copy, ignore=shutil.ignore_patterns("model", "training", "*.lock"))
project = Project.open(copy, dataset=plan.images)
project.set_device("cpu")
store = project.store
negatives = store.patches(label, "negative")
if variant in ("nonegs", "negs_as_pos"):
    for patch in negatives:
        store.set_negative(label, patch, flagged=False)
if variant == "negs_as_pos":
    threshold = store.class_info(label).similarity_threshold
    store.confirm_class(label, threshold, store.patches(label, "positive") + negatives)
curated = {"positives": len(store.patches(label, "positive")), "negatives": len(store.patches(label, "negative")),
           "background": len(store.background(confirmed_only=True))}
train(project, replace(plan.training.with_strategy(strategy), seed=plan.training.seed + SEED), device="cpu")
test_truth = [a for i in test_ids for a in user.truth_of[i]]
scored = score_class(user._predict_test(project), test_truth, label, user.rules[user.matching])
print(json.dumps({"trial": trial.name, "variant": variant, "strategy": strategy, **curated,
                  "classifier_copies": plan.training.classifier_copies,
                  "ablate": os.environ.get("ABLATE", ""), "seed": SEED, "pr_auc": round(scored.pr_auc, 4)}), flush=True)
