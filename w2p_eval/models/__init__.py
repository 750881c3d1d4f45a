"""Generators (WAV2PIX and baselines), checkpoints and the model registry."""
