import os, collections
from simsearch import Project
from simsearch.training.loop import TrainSettings, training_records
for r in (0, 1, 2):
    p = Project.open(f"/tmp/std-v5/ff-g16-plt/work/Platelets_P10_N5_pos+neg+selflearn_r{r}", dataset="/tmp/bccd16/images", read_only=True)
    rec = training_records(p, TrainSettings.preset("cpu", "pos+neg+selflearn"))
    print(os.environ.get("ABLATE", "none"), r, "held", dict(collections.Counter(l for _, l in rec.held_out)),
          "clean", dict(collections.Counter(l for _, l in rec.clean)))
