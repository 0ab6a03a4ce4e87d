"""Shared torch pieces: pure loss functions, layers, backbones and heads, the batch type, and the trainer."""
