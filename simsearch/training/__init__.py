"""Training: augmentations, contrastive losses, the patch model and the staged training loop."""
