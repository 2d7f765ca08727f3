"""CLIP search tab: image indexes, text and image search, explanations, zero-shot labels."""
