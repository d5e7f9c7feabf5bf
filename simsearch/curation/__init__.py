"""Layer 5, curation: the iterative patch selection session (prototypes, suggestions, background, noisy
patches) and annotation import."""
