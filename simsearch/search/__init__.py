"""Layer 3, search: similarity maps, peaks over one level or a pyramid, blobs, the FAISS patch index."""
