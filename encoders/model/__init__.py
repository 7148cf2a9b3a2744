"""Torch models: the frozen pin tower stand-in and the trainable query tower."""
