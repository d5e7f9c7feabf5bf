"""Layer 0, utilities every layer may use: the error types, atomic files, memory release, tensors."""
