"""The SimSearch terminal UI (Textual). Uses only the engine's public API (`import simsearch`)."""
