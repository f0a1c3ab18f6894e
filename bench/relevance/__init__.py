"""The relevance benchmark and its corpus of real published items (see CORPUS.md)."""
