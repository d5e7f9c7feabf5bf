"""Layer 4, the project: its folder layout, settings, SQLite store, embedding cache and index."""
