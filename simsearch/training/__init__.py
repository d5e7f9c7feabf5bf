"""Layer 6, training: augmentations, contrastive losses, the patch model, the staged training loop and
the check on held-out curated examples."""
