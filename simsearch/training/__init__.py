"""Layer 6, training: augmentations (augment.py), contrastive losses (losses.py), the patch model
(model.py), what a run learns from (records.py, crops.py), seeded sampling (sampling.py), the
stages as objects, each with its data, loss, trainable layers and schedule (stages.py), the run
with checkpoints and resume (loop.py), the saved model (saved.py) and the check on held-out
curated examples (check.py)."""
