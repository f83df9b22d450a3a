"""Pseudo labels: the method registry, the labels folder, post-processing and the generator."""
