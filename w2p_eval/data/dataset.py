"""PairDataset: one split of one protocol of a prepared dataset folder, as torch tensors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from w2p_eval.data.audio import SAMPLE_RATE, load_audio, preprocess_wave
from w2p_eval.data.images import image_to_tensor, load_image_rgb
from w2p_eval.data.folder import DataFolder, open_dataset
from w2p_eval.errors import InputError
from w2p_eval.lazy import torch


class PairDataset:
    """Speech-face pairs of ``split`` under ``protocol`` (splits come from the manifest, never reshuffled).

    A map-style dataset (``len`` + ``[i]``), which is all torch's DataLoader asks for; it does not subclass
    ``torch.utils.data.Dataset`` so that defining it imports no torch (:mod:`w2p_eval.lazy`).

    Items are dicts:
      - ``audio``: float32 [1, T], T = round(16000 * audio_seconds), normalised by max|x| and
        pre-emphasised (0.95) as in WAV2PIX;
      - ``image``: float32 [3, image_size, image_size] in [-1, 1];
      - ``label``: int64 index into ``self.identities`` (sorted, all identities of the dataset);
      - ``pair_id``, ``identity``: str.
    ``cache=True`` keeps decoded items in memory (small datasets, many epochs).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike | DataFolder,
        split: str = "train",
        protocol: str = "seen",
        image_size: int = 64,
        audio_seconds: float = 1.0,
        cache: bool = True,
    ):
        self.data_dir: DataFolder = open_dataset(data_dir)  # path-like: data_dir / rel is a file of the dataset
        self.info = self.data_dir.info
        self.identities: list[str] = list(self.data_dir.identities)
        self.n_identities = len(self.identities)
        self.df = self.data_dir.split(split, protocol)  # only this split's files are content-checked
        self.split, self.protocol = split, protocol
        self.image_size = int(image_size)
        self.audio_seconds = float(audio_seconds)
        self.n_samples = int(round(SAMPLE_RATE * self.audio_seconds))
        too_short = self.df["audio_duration"] + 1e-3 < self.audio_seconds
        if too_short.any():
            row = self.df[too_short].iloc[0]
            raise InputError(
                f"expected pairs with at least {self.audio_seconds:.2f} s of audio, got "
                f"{row['audio_duration']:.2f} s for pair {row['pair_id']} ({int(too_short.sum())} such pairs)"
            )
        self._label = {name: i for i, name in enumerate(self.identities)}
        self._cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.df)

    def load_audio(self, i: int) -> np.ndarray:
        row = self.df.iloc[i]
        x = load_audio(self.data_dir / row["audio_path"], float(row["audio_start"]), self.audio_seconds)
        return preprocess_wave(x, self.n_samples)

    def load_image(self, i: int) -> np.ndarray:
        """The real face as stored: uint8 [H, W, 3] RGB at its original size."""
        return load_image_rgb(self.data_dir / self.df.iloc[i]["image_path"])

    def __getitem__(self, i: int) -> dict:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        row = self.df.iloc[i]
        item = {
            "audio": torch.from_numpy(self.load_audio(i)).unsqueeze(0),
            "image": image_to_tensor(self.load_image(i), self.image_size),
            "label": torch.tensor(self._label[row["identity"]], dtype=torch.long),
            "pair_id": str(row["pair_id"]),
            "identity": str(row["identity"]),
        }
        if self._cache is not None:
            self._cache[i] = item
        return item

    @property
    def labels(self) -> np.ndarray:
        return np.array([self._label[n] for n in self.df["identity"]], dtype=np.int64)
