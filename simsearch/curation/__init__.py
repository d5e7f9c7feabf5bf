"""Curation: the project store and the iterative patch selection session."""
