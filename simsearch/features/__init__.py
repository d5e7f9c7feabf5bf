"""Layer 2, features: pretrained backbones, patch geometry and the scale pyramid, dense patch embeddings."""
