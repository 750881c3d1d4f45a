"""Baselines that bracket WAV2PIX, behind the same FaceGenerator protocol.

- :class:`MeanFace`: the mean training face; ignores the audio (floor: chance identity accuracy).
- :class:`RandomReal`: a real training face of a random identity, chosen from a seeded hash of the
  pair id (fully realistic faces at chance identity: separates realism from identity).
- :class:`SpeakerRetrieval`: identify the speaker from the audio (resemblyzer embedding + linear
  head), return that identity's medoid training face (the "retrieval" upper bound).
- :class:`RealFaces`: the real face paired with each audio (the ceiling of every metric).
- :class:`GenderOracle`: the mean training face of the speaker's gender, given the true gender (what "only
  gender learnt" scores on every metric).

``l1_regression`` is WAV2PIX without the discriminator (w2p_eval.models.wav2pix). The fitting lives in
w2p_eval.train.baselines; checkpoints hold only tensors and builtins (weights_only-loadable).
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F

from w2p_eval.errors import InputError
from w2p_eval.judges.voice import embed_waves, load_voice_encoder, undo_pre_emphasis
from w2p_eval.models.base import FaceGenerator
from w2p_eval.registry import Entry


def _common(gen: FaceGenerator, ckpt: dict) -> None:
    gen.image_size = int(ckpt["image_size"])
    gen.audio_seconds = float(ckpt["audio_seconds"])
    gen.identities = list(ckpt["identities"])
    gen.config = dict(ckpt.get("config", {}))


def _state(ckpt: dict, model: str, keys: tuple[str, ...]) -> dict:
    state = ckpt.get("state", {}).get(model)
    if not isinstance(state, dict) or any(k not in state for k in keys):
        have = sorted(state) if isinstance(state, dict) else None
        raise InputError(f"expected {model} checkpoint state with {list(keys)}, got {have} ({ckpt.get('path')})")
    return state


def _resize(faces: torch.Tensor, size: int) -> torch.Tensor:
    """float [B, 3, h, w] -> [B, 3, size, size] (bilinear, antialiased) when sizes differ."""
    if faces.shape[-1] == size and faces.shape[-2] == size:
        return faces
    return F.interpolate(faces, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _to_float(faces_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float32 [B, 3, H, W] in [0, 1]."""
    return faces_uint8.permute(0, 3, 1, 2).float() / 255.0


class MeanFace(FaceGenerator):
    """The per-pixel mean of the training faces, returned for every input."""

    model_name = "mean_face"

    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.float().clone())  # [3, S, S] in [0, 1]

    def generate(self, batch: dict) -> torch.Tensor:
        b = batch["audio"].shape[0]
        return self.mean.unsqueeze(0).expand(b, -1, -1, -1).clone()

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "MeanFace":
        gen = cls(_state(ckpt, "mean_face", ("mean",))["mean"])
        _common(gen, ckpt)
        return gen.to(device)


def pair_choice(seed: int, pair_id: str, salt: str, n: int) -> int:
    """A reproducible index in [0, n) from (seed, pair_id, salt): sha256, independent of batch order."""
    digest = hashlib.sha256(f"{int(seed)}|{salt}|{pair_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % int(n)


class RandomReal(FaceGenerator):
    """A real training face of a random identity (uniform over identities, then over that identity's faces).

    The choice depends only on (seed, pair_id), so a re-run gives the same faces and a different
    seed gives different ones.
    """

    model_name = "random_real"

    def __init__(self, pool: torch.Tensor, pool_labels: torch.Tensor, seed: int):
        super().__init__()
        self.register_buffer("pool", pool.to(torch.uint8).clone())  # [N, S, S, 3] uint8
        self.register_buffer("pool_labels", pool_labels.long().clone())  # [N]
        self.seed = int(seed)
        self._by_label = [torch.nonzero(self.pool_labels == k).flatten().tolist()
                          for k in sorted(set(self.pool_labels.tolist()))]

    def choose(self, pair_ids: list[str]) -> list[int]:
        """Pool rows for each pair id."""
        out = []
        for pid in pair_ids:
            members = self._by_label[pair_choice(self.seed, pid, "identity", len(self._by_label))]
            out.append(members[pair_choice(self.seed, pid, "face", len(members))])
        return out

    def generate(self, batch: dict) -> torch.Tensor:
        idx = torch.tensor(self.choose(list(batch["pair_id"])), device=self.pool.device)
        return _resize(_to_float(self.pool[idx]), self.image_size)

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "RandomReal":
        st = _state(ckpt, "random_real", ("pool", "pool_labels", "seed"))
        gen = cls(st["pool"], st["pool_labels"], int(st["seed"]))
        _common(gen, ckpt)
        return gen.to(device)


class SpeakerRetrieval(FaceGenerator):
    """Speaker classifier on the audio, then the predicted identity's medoid training face.

    ``weight`` float32 [K, 256] and ``bias`` [K] map resemblyzer embeddings to identity logits;
    ``medoids`` uint8 [K, S, S, 3] holds one training face per identity (zeros for identities without
    training faces, whose bias is -1e4 so they are never predicted).
    """

    model_name = "speaker_retrieval"

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, medoids: torch.Tensor,
                 speaker_weights: str | None = None):
        super().__init__()
        self.register_buffer("weight", weight.float().clone())
        self.register_buffer("bias", bias.float().clone())
        self.register_buffer("medoids", medoids.to(torch.uint8).clone())
        self.speaker_weights = speaker_weights
        self._encoder = None

    def encoder(self):
        if self._encoder is None:
            self._encoder = load_voice_encoder(self.speaker_weights, device=str(self.weight.device))
        return self._encoder

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """PairDataset audio float [B, 1, T] (peak-normalised, pre-emphasised) -> embeddings [B, 256]."""
        waves = undo_pre_emphasis(audio.reshape(audio.shape[0], -1)).astype("float32")
        emb = embed_waves(self.encoder(), list(waves), device=str(self.weight.device))
        return torch.from_numpy(emb).to(self.weight.device)

    def logits(self, batch: dict) -> torch.Tensor:
        """Identity logits float32 [B, K]."""
        return self.embed(batch["audio"]) @ self.weight.T + self.bias

    def generate(self, batch: dict) -> torch.Tensor:
        pred = self.logits(batch).argmax(dim=1)
        return _resize(_to_float(self.medoids[pred]), self.image_size)

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "SpeakerRetrieval":
        head = _state(ckpt, "head", ("weight", "bias"))
        st = _state(ckpt, "speaker_retrieval", ("medoids",))
        gen = cls(head["weight"], head["bias"], st["medoids"], ckpt.get("config", {}).get("speaker_weights"))
        _common(gen, ckpt)
        return gen.to(device)


class RealFaces(FaceGenerator):
    """The real face paired with each audio: ``(batch["image"] + 1) / 2`` exactly."""

    model_name = "real_faces"

    def generate(self, batch: dict) -> torch.Tensor:
        return (batch["image"] + 1) / 2

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "RealFaces":
        gen = cls()
        _common(gen, ckpt)
        return gen.to(device)


class GenderOracle(FaceGenerator):
    """The mean training face of the speaker's gender, the gender given (labels or the attribute judge).

    ``means`` float32 [3, 3, S, S] in [0, 1]: the mean training face of the female speakers, of the male
    speakers, and of all (row 2, for an identity of unknown gender or a gender without training faces);
    ``identity_gender`` int64 [K]: the row of each identity (index into ``identities``).
    """

    model_name = "gender_oracle"
    GENDERS = ("f", "m")

    def __init__(self, means: torch.Tensor, identity_gender: torch.Tensor):
        super().__init__()
        self.register_buffer("means", means.float().clone())
        self.register_buffer("identity_gender", identity_gender.long().clone())

    def generate(self, batch: dict) -> torch.Tensor:
        rows = self.identity_gender[batch["label"].to(self.identity_gender.device)]
        return self.means[rows].clone()

    @classmethod
    def from_checkpoint(cls, ckpt: dict, device: str = "cpu") -> "GenderOracle":
        st = _state(ckpt, "gender_oracle", ("means", "identity_gender"))
        if st["means"].shape[0] != 3 or st["identity_gender"].numel() != len(ckpt["identities"]):
            raise InputError(f"expected gender_oracle state with 3 mean faces and one gender per identity, got "
                             f"{tuple(st['means'].shape)} and {st['identity_gender'].numel()} ({ckpt.get('path')})")
        gen = cls(st["means"], st["identity_gender"])
        _common(gen, ckpt)
        return gen.to(device)


# registered models (w2p_eval.models.registry.MODELS): meta trainer = the function that trains it, baseline
REGISTER_MODELS = (
    Entry("mean_face", "MeanFace", "the mean training face (ignores the audio)",
          {"trainer": "w2p_eval.train.baselines:train", "baseline": True}, order=30),
    Entry("gender_oracle", "GenderOracle", "the mean training face of the true gender",
          {"trainer": "w2p_eval.train.baselines:train", "baseline": True}, order=40),
    Entry("random_real", "RandomReal", "a real face of a random identity",
          {"trainer": "w2p_eval.train.baselines:train", "baseline": True}, order=50),
    Entry("speaker_retrieval", "SpeakerRetrieval", "speaker identified from the audio -> that identity's medoid face",
          {"trainer": "w2p_eval.train.baselines:train", "baseline": True}, order=60),
    Entry("real_faces", "RealFaces", "the real paired face (the ceiling)",
          {"trainer": "w2p_eval.train.baselines:train", "baseline": True}, order=70),
)
