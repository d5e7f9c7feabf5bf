"""Layer 1, input: reading images, tables and ground truth; channels and intensity normalisation."""
