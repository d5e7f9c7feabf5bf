"""Experiment (issue 17): the saved Pos+Neg+Selflearn trials' class maps (the model alone, the
probe beside it, their mean) times a gate from the similarity to the trial's prototypes (cosine
on the pretrained embedding, the best over prototypes and rotations, 0 below 0), scored as
eval scores a trial. 'model', 'probe' and 'avg' reproduce eval's own figures; 'avg*sim' ranks
as the similarity gate the CPU preset now has (the geometric mean; 'sqrt(avg*sim)').

    python benchmarks/results/issue17-gate/gate.py EVAL-ARGS --out EVAL-OUT

EVAL-ARGS and EVAL-OUT: those of the finished evaluation (P and N: the first of --prototypes
and --negatives; run.sh)."""
import sys
from dataclasses import replace
import numpy as np
from simsearch.cli.main import build_parser
from simsearch.cli.model import plan_from_args
from simsearch.curation.session import Curation
from simsearch.evaluate.report import split, auto_patch_sizes
from simsearch.evaluate.simulate import SimulatedUser, Trial
from simsearch.evaluate.metrics import Scored, score_class
from simsearch.inference.predict import Predictor, detections_from_levels
from simsearch.io.images import Dataset
from simsearch.io.truth import read_truth
from simsearch.project.project import Project


def unit_rows(v):
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

args = build_parser(["eval"]).parse_args(["eval"] + sys.argv[1:])
plan = plan_from_args(args)
label = plan.classes[0]
dataset = Dataset.open(plan.images)
truth = read_truth(plan.truth, label=label, images=dataset)
automatic = [c for c in plan.classes if plan.patch_sizes.get(c) == "auto"]
plan = replace(plan, patch_sizes={**plan.patch_sizes, **auto_patch_sizes(truth, automatic)})
train_ids, test_ids = split(dataset, plan)
base = Project.open(next((plan.out / "base").iterdir()), dataset=plan.images)
user = SimulatedUser(base, truth, train_ids, test_ids, label=label, displayed=plan.displayed, workdir=plan.out / "work",
                     settings=plan.training, device="cpu", seed=plan.seed)
gt = [a for i in test_ids for a in user.truth_of[i]]
rule = user.rules[user.matching]
P, N = plan.prototypes[0], plan.negatives[0]
strategy = plan.strategies[0]
table = {}
for r in range(plan.repeats):
    folder = user.trial_folder(Trial(label, P, N, strategy, r))
    project = Project.open(folder, dataset=plan.images)
    pred = Predictor(project, device="cpu")
    protos = unit_rows(Curation(project).prototype_vectors(label))
    names = pred.class_names[:-1]
    variants = {}
    for image_id in test_ids:
        image = base.dataset.read(image_id)
        for scale, embedder in pred.embedders.items():
            _, vectors = zip(*embedder.iter_rows(image))
            v = np.concatenate(vectors)
            model = pred._softmax(pred.classifier, np.ascontiguousarray(v[..., :pred.dim]))
            probe = pred._softmax(pred.probe_classifier, np.ascontiguousarray(v[..., pred.dim:]))
            sim = (unit_rows(v[..., pred.dim:].reshape(-1, pred.dim)) @ protos.T).max(1).reshape(v.shape[:2])
            gate = np.clip(sim, 0, None)[..., None]
            avg = 0.5 * model + 0.5 * probe
            maps = {"model": model, "probe": probe, "avg": avg, "avg*sim": avg * gate, "model*sim": model * gate,
                    "probe*sim": probe * gate, "sim": np.repeat(sim[..., None], model.shape[-1], -1),
                    "avg*sim^2": avg * gate ** 2, "sqrt(avg*sim)": np.sqrt(avg * gate)}
            for key, m in maps.items():
                level = [(scale, embedder.geometry, m)]
                for d in detections_from_levels(level, names, dict.fromkeys(names, -1.0), image_id):
                    if d.class_name == label:
                        scored = Scored(user.test_names[image_id], label, d.y, d.x, d.confidence)
                        variants.setdefault(key, []).append(scored)
    for key, found in variants.items():
        table.setdefault(key, []).append(score_class(found, gt, label, rule).pr_auc)
    print(f"r{r}", "  ".join(f"{k} {v[-1]:.3f}" for k, v in table.items()), flush=True)
for k, v in table.items():
    print(f"{k:>14}: {np.mean(v):.3f} ± {np.std(v):.3f}  ({', '.join(f'{x:.3f}' for x in v)})")
