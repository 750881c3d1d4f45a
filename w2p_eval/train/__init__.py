"""Training: the WAV2PIX GAN loop (gan.py, steps.py), data-parallel helpers (ddp.py), run setup (run.py)
and the baselines' fitting (baselines.py). Entry point for other code: ``run.run_training``."""
