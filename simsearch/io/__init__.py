"""Reading images and datasets."""
