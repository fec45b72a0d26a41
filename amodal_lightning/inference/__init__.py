"""Inference: layer-after-layer prediction with the model's own masks fed back."""
