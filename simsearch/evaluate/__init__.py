"""Layer 8, evaluation: a simulated user on annotated data, centre matching, precision-recall, PR-AUC
and AP (paper Sec. III-C), reports."""
