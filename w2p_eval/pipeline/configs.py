"""Locate the shipped YAML configs (baselines/*.yaml in a source checkout) with a built-in fallback."""

from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[2] / "baselines"


def config_for(name: str) -> dict | Path:
    """``baselines/<name>.yaml`` when present (source checkout), else ``{"model": <model>}`` so the
    trainer's own DEFAULTS apply (an installed wheel without the YAML files)."""
    path = CONFIG_DIR / f"{name}.yaml"
    if path.is_file():
        return path
    model = "wav2pix" if name.startswith("wav2pix") else name
    cfg: dict = {"model": model}
    if name == "wav2pix_128":
        cfg["image_size"] = 128
    if name == "l1_regression":
        cfg["adversarial"] = False
    return cfg
