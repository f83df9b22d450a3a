"""Faster R-CNN: profiles and checkpoints (model), head access (heads), training (train), AP (evaluate)."""
