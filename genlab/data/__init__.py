"""Data sets (each item a dict with an "image" in [-1, 1], shape (C, H, W), and a "label")
and the resumable loading that feeds the trainer."""
