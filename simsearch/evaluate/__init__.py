"""Evaluation: centre matching, precision-recall, PR-AUC and AP (paper Sec. III-C)."""
