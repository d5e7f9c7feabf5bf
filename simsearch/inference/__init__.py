"""Layer 7, inference: the predictor, processing of whole datasets, exports, and review of the
model's detections."""
