"""Training: augmentations, networks, the training loop (needs the `train` extra)."""
