"""resemblyzer's pretrained speaker encoder (the voice judge) and the per-clip embedding cache.

The encoder is resemblyzer's VoiceEncoder (a 3-layer LSTM on 40-band mel frames, 256-d L2-normalised
embeddings; weights ship inside the resemblyzer wheel). It is rebuilt here and its packaged state dict is
read with ``torch.load(weights_only=True)``; resemblyzer itself is never imported (only its
``pretrained.pt`` is located). Embeddings are computed once per clip and kept in the disk cache's ``speaker``
namespace (:class:`w2p_eval.cache.Cache`: one npz per manifest hash, audio length and encoder weights; an entry
that is edited, truncated, of the wrong shape or not unit-length is recomputed with a warning).

Clip preprocessing (same for training, evaluation and generation): the raw clip (mono, 16 kHz)
is scaled to an RMS of -30 dBFS (both up and down, so the result does not depend on the clip's
gain), then turned into mel frames (25 ms window, 10 ms hop, 40 bands). Because it is gain
invariant, the pre-emphasised, peak-normalised ``batch["audio"]`` of a PairDataset gives the same
embedding once the pre-emphasis is undone (:func:`undo_pre_emphasis`).

Used by the ``speaker_retrieval`` baseline (models/, train/) and the speech-only speaker-ID metric (metrics/).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
from pathlib import Path

import numpy as np

from w2p_eval.cache import Cache, array_problem
from w2p_eval.data.audio import SAMPLE_RATE, load_audio
from w2p_eval.data.manifest import manifest_hash
from w2p_eval.errors import InputError, MissingWeightsError
from w2p_eval.lazy import torch
from w2p_eval.utils import sha256_file

log = logging.getLogger(__name__)

ENCODER_NAME = "resemblyzer-voiceencoder-v1"
EMBED_DIM = 256
N_MELS, WIN, HOP = 40, 400, 160  # resemblyzer hparams: 25 ms window, 10 ms step, 40 mel bands
TARGET_DBFS = -30.0


def _voice_encoder_cls():
    class VoiceEncoder(torch.nn.Module):
        """resemblyzer's speaker encoder: mel frames [B, F, 40] -> L2-normalised embeddings [B, 256]."""

        def __init__(self):
            super().__init__()
            self.lstm = torch.nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = torch.nn.Linear(256, EMBED_DIM)

        def forward(self, mels: torch.Tensor) -> torch.Tensor:
            _, (hidden, _) = self.lstm(mels)
            raw = torch.relu(self.linear(hidden[-1]))
            return raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)

    return VoiceEncoder


def default_weights_path() -> Path | None:
    """``pretrained.pt`` inside the installed resemblyzer package (found without importing it)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "pretrained.pt"


def load_voice_encoder(weights_path: str | os.PathLike | None = None, device: str = "cpu"):
    """The pretrained VoiceEncoder in eval mode. ``weights_path`` defaults to resemblyzer's packaged file.

    Raises MissingWeightsError (one line) when the file is absent, InputError when it is not a
    resemblyzer checkpoint.
    """
    path = require(weights_path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt["model_state"] if isinstance(ckpt, dict) and "model_state" in ckpt else ckpt
        enc = _voice_encoder_cls()()
        state = {k: v for k, v in state.items() if k.startswith(("lstm.", "linear."))}
        enc.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, TypeError, AttributeError, ValueError, pickle.UnpicklingError) as exc:
        raise InputError(f"expected resemblyzer VoiceEncoder weights, got an unusable file {path} "
                         f"({exc.__class__.__name__}: {str(exc)[:120]})") from None
    return enc.to(device).eval()


def normalize_volume(wave: np.ndarray, target_dbfs: float = TARGET_DBFS) -> np.ndarray:
    """Scale float32 [T] audio to an RMS of ``target_dbfs`` (a silent clip stays zero)."""
    wave = np.asarray(wave, dtype=np.float64)
    rms = float(np.sqrt(np.mean(wave**2))) if len(wave) else 0.0
    if rms < 1e-9:
        return np.zeros(len(wave), dtype=np.float32)
    return (wave * (10 ** (target_dbfs / 20) / rms)).astype(np.float32)


def undo_pre_emphasis(y, coef: float = 0.95):
    """Invert WAV2PIX pre-emphasis y[t] = x[t] - coef*x[t-1]: float [..., T] -> x (peak-normalised clip).

    Accepts a numpy array or torch tensor; returns float64 numpy (the recursion is stable for |coef| < 1).
    """
    from scipy.signal import lfilter  # lazy: seconds to import; only speaker audio needs it

    arr = y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)
    return lfilter([1.0], [1.0, -coef], arr.astype(np.float64), axis=-1)


def wave_to_mel(wave: np.ndarray) -> np.ndarray:
    """Raw 16 kHz clip float [T] -> volume-normalised mel power frames float32 [F, 40] (F = T//160 + 1)."""
    import librosa  # lazy: librosa (numba) takes seconds to import

    mel = librosa.feature.melspectrogram(
        y=normalize_volume(wave), sr=SAMPLE_RATE, n_fft=WIN, hop_length=HOP, n_mels=N_MELS
    )
    return mel.astype(np.float32).T


def embed_waves(encoder, waves: list[np.ndarray] | np.ndarray, batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """Raw clips (each float [T], same T) -> speaker embeddings float32 [N, 256], L2-normalised."""
    out = []
    for i in range(0, len(waves), batch_size):
        mels = np.stack([wave_to_mel(w) for w in waves[i:i + batch_size]])
        with torch.no_grad():
            out.append(encoder(torch.from_numpy(mels).to(device)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, EMBED_DIM), np.float32)


def _stamp(path: Path, start: float) -> str:
    """What a cached clip embedding depends on besides the manifest: the audio file's size and mtime."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}:{start:.6f}"


def clip_embeddings(
    data_dir: str | os.PathLike, df, audio_seconds: float, encoder=None, cache_dir: str | os.PathLike | None = None,
    weights_path: str | os.PathLike | None = None, device: str = "cpu",
) -> np.ndarray:
    """Speaker embeddings float32 [len(df), 256] of the manifest rows ``df`` (raw clips, first ``audio_seconds``).

    Cached per clip (pair_id) in one entry per (manifest hash, audio length, encoder weights) of the cache at
    ``cache_dir`` (:class:`w2p_eval.cache.Cache`, namespace ``speaker``); only clips missing there, or whose audio
    file changed (size or mtime: a rebuilt dataset with an identical manifest), are computed. Unreadable clips raise
    InputError naming the file.
    """
    data_hash = manifest_hash(data_dir)  # a DataFolder's hash as read; a path's hashed here
    data_dir = Path(data_dir)
    wpath = Path(weights_path) if weights_path else default_weights_path()
    tag = ENCODER_NAME if weights_path is None else f"custom-{sha256_file(wpath, 8) if wpath and wpath.is_file() else 'missing'}"
    cache = Cache(cache_dir, "speaker", CACHE_VERSION, fmt="npz")
    key = {"name": f"{data_hash}-{audio_seconds:g}s-{tag}", "data": data_hash, "audio_seconds": float(audio_seconds),
           "extractor": tag}
    known: dict[str, np.ndarray] = {}
    stamps: dict[str, str] = {}
    z = cache.load(key, cache_problem)
    if z is not None:
        known = dict(zip(z["pair_ids"].tolist(), z["emb"]))
        stamps = dict(zip(z["pair_ids"].tolist(), z["stamps"].tolist()))
    pair_ids = [str(p) for p in df["pair_id"]]
    now = {p: _stamp(data_dir / a, float(s)) for p, a, s in zip(pair_ids, df["audio_path"], df["audio_start"])}
    missing = [i for i, p in enumerate(pair_ids) if p not in known or stamps.get(p) != now[p]]
    if missing:
        encoder = encoder if encoder is not None else load_voice_encoder(weights_path, device=device)
        log.info("speaker embeddings: computing %d clips (%d cached)", len(missing), len(pair_ids) - len(missing))
        rows = df.iloc[missing]
        waves = [load_audio(data_dir / r.audio_path, float(r.audio_start), audio_seconds) for r in rows.itertuples()]
        emb = embed_waves(encoder, waves, device=device)
        known.update(zip([pair_ids[i] for i in missing], emb))
        stamps.update({pair_ids[i]: now[pair_ids[i]] for i in missing})
        ids = list(known)
        cache.save(key, {"pair_ids": np.array(ids, dtype=str),
                         "emb": np.stack([known[p] for p in ids]).astype(np.float32),
                         "stamps": np.array([stamps.get(p, "") for p in ids], dtype=str)})
    return np.stack([known[p] for p in pair_ids]).astype(np.float32) if pair_ids else np.zeros((0, EMBED_DIM), np.float32)


CACHE_VERSION = 2  # 1: the files this module wrote itself, before w2p_eval.cache
CACHE_SPECS = {"pair_ids": ("U", ("N",), False), "emb": ("float32", ("N", EMBED_DIM), True),
               "stamps": ("U", ("N",), False)}


def cache_problem(z: dict) -> str | None:
    """Why stored clip embeddings cannot be used (:data:`CACHE_SPECS`, unit length, one row per clip); None when
    they can."""
    problem = array_problem(z, CACHE_SPECS)
    norms = np.linalg.norm(z["emb"], axis=1) if problem is None else None
    if norms is not None and not ((np.abs(norms - 1) < 1e-3) | (norms == 0)).all():  # 0: the encoder's all-zero ReLU
        problem = "embeddings that are not unit-length"
    if problem is None and len(set(z["pair_ids"].tolist())) != len(z["pair_ids"]):
        problem = "a clip twice"
    return problem


def fit_linear_head(x: np.ndarray, y: np.ndarray, n_classes: int, c: float = 1.0, seed: int = 0):
    """Multinomial logistic regression on standardised embeddings, folded into one linear map.

    ``x`` float [N, D], ``y`` int [N] in [0, n_classes). Returns (weight float32 [n_classes, D],
    bias float32 [n_classes]) so that ``x @ weight.T + bias`` are the logits. Classes absent from
    ``y`` get bias -1e4 (never predicted). Needs at least 2 classes present.
    """
    from sklearn.linear_model import LogisticRegression  # lazy: sklearn takes ~1 s; only fitting needs it

    present = np.unique(y)
    if len(present) < 2:
        raise InputError(f"expected training clips of at least 2 identities for the speaker classifier, got {len(present)}")
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    clf.fit((x - mu) / sd, y)
    coef, inter = clf.coef_, clf.intercept_
    if len(present) == 2:  # sklearn's binary form: logit(class1) = w.x + b  ->  softmax rows [0, w]
        coef = np.vstack([np.zeros_like(coef), coef])
        inter = np.array([0.0, inter[0]])
    weight = np.zeros((n_classes, x.shape[1]), np.float64)
    bias = np.full(n_classes, -1e4, np.float64)
    weight[present] = coef / sd
    bias[present] = inter - (coef / sd) @ mu
    return weight.astype(np.float32), bias.astype(np.float32)


def require(weights_path: str | os.PathLike | None = None, **options) -> Path:
    """Preflight: the VoiceEncoder weights (``weights_path``, default resemblyzer's packaged file) are on disk
    -> their path; else MissingWeightsError naming the file, the folder and how to get it. Nothing is loaded."""
    path = Path(weights_path) if weights_path else default_weights_path()
    if path is None or not path.is_file():
        packaged = "pip install 'w2p-eval[speaker]' (resemblyzer ships the weights in its wheel)"
        raise MissingWeightsError(
            "resemblyzer VoiceEncoder", path.name if path else "pretrained.pt",
            str(path.parent if path else "the resemblyzer package (not installed)"),
            packaged if not weights_path else f"a VoiceEncoder state dict saved there, or drop speaker_weights and {packaged}",
        )
    return path
