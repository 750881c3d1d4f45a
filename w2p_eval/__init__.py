"""w2p-eval: train WAV2PIX and honest baselines, and score them the way papers do."""

__version__ = "0.1.0"
