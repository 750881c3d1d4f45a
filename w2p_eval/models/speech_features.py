"""The audio front ends of the field's generators, in torch, from a PairDataset batch.

A PairDataset clip is peak-normalised and pre-emphasised (0.95, WAV2PIX's input). Both front ends
first undo that pre-emphasis (:func:`raw_wave`), scale to the int16 range the originals read, then:

- :func:`wen_fbank` (Wen et al. 2019, ``mfcc.py`` ``MFCC(nfilt=64, lowerf=20, upperf=7200, nfft=1024,
  wlen=0.025)`` + ``utils.get_fbank``): pre-emphasis 0.97, 400-sample Hamming frames every 160 samples
  (``int(T / 160 + 1)`` frames, the last ones zero-padded), power spectrum (1024-point FFT), 64 Sphinx
  triangular mel filters (height 2 / width in Hz), log (floored at 1e-5), then each band's mean and
  standard deviation over the clip removed -> float32 [B, 64, frames].
- :func:`sf2f_logfbank` (SF2F ``utils/wav2mel.py`` = python_speech_features ``logfbank`` with its
  defaults: pre-emphasis 0.97, 400-sample rectangular frames every 160 samples, ``1 + ceil((T - 400) /
  160)`` frames, 512-point power spectrum / 512, 40 unit-height mel filters 0-8000 Hz, log (zeros -> eps)),
  normalised like the original's ``vox_mel`` (mean 10.9915, std 3.1661) -> float32 [B, 40, frames].

Neither original's voice activity detection is applied: the dataset's windows are already cut.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from w2p_eval.data.audio import SAMPLE_RATE

DATASET_PRE_EMPHASIS = 0.95  # data/audio.preprocess_wave
INT16 = 32768.0
HOP = 160        # 10 ms at 16 kHz (both originals)
WIN = 400        # 25 ms
VOX_MEL_MEAN, VOX_MEL_STD = 10.9915, 3.1661  # SF2F datasets/utils.py, over VoxCeleb


def raw_wave(audio: torch.Tensor) -> torch.Tensor:
    """PairDataset audio float32 [B, 1, T] (peak-normalised, pre-emphasised 0.95) -> the peak-normalised
    wave float32 [B, T] in [-1, 1] (the pre-emphasis undone: y[t] = x[t] + 0.95 y[t-1], exactly)."""
    x = audio.reshape(audio.shape[0], -1).double()
    n = x.shape[1]
    # y = x * A^-1 with A the bidiagonal pre-emphasis matrix: y[t] = sum_k 0.95^(t-k) x[k], done in blocks
    # of 256 samples so the powers stay representable (0.95^256 ~ 2e-6; exact by carrying the block's end).
    block = 256
    powers = DATASET_PRE_EMPHASIS ** torch.arange(block, dtype=torch.float64, device=x.device)
    lower = torch.tril(powers[(torch.arange(block)[:, None] - torch.arange(block)[None, :]).clamp(min=0)])
    out, carry = [], torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, n, block):
        chunk = x[:, start:start + block]
        m = chunk.shape[1]
        y = chunk @ lower[:m, :m].T + carry[:, None] * (DATASET_PRE_EMPHASIS * powers[:m])[None, :]
        out.append(y)
        carry = y[:, -1]
    return torch.cat(out, dim=1).float()


def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_inv(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@functools.lru_cache(maxsize=None)
def sphinx_filters(nfilt: int = 64, nfft: int = 1024, lowerf: float = 20.0, upperf: float = 7200.0,
                   sr: int = SAMPLE_RATE) -> np.ndarray:
    """Sphinx mel filter matrix float64 [nfft // 2 + 1, nfilt] (Wen's ``mfcc.MFCC``)."""
    filters = np.zeros((nfft // 2 + 1, nfilt))
    dfreq = sr / nfft
    melmin, melmax = _mel(lowerf), _mel(upperf)
    edges = _mel_inv(melmin + (melmax - melmin) / (nfilt + 1) * np.arange(nfilt + 2))
    for j in range(nfilt):
        left, center, right = (int(round(edges[j + k] / dfreq)) for k in range(3))
        height = 2.0 / ((right - left) * dfreq)
        for f in range(left + 1, center):
            filters[f, j] = (f - left) * height / (center - left)
        filters[center, j] = height
        for f in range(center + 1, right):
            filters[f, j] = (f - right) * height / (center - right)
    return filters


@functools.lru_cache(maxsize=None)
def psf_filters(nfilt: int = 40, nfft: int = 512, sr: int = SAMPLE_RATE) -> np.ndarray:
    """python_speech_features ``get_filterbanks`` (0 Hz to sr / 2): float64 [nfilt, nfft // 2 + 1]."""
    points = _mel_inv(np.linspace(_mel(0), _mel(sr / 2), nfilt + 2))
    bins = np.floor((nfft + 1) * points / sr).astype(int)
    fbank = np.zeros((nfilt, nfft // 2 + 1))
    for j in range(nfilt):
        for i in range(bins[j], bins[j + 1]):
            fbank[j, i] = (i - bins[j]) / (bins[j + 1] - bins[j])
        for i in range(bins[j + 1], bins[j + 2]):
            fbank[j, i] = (bins[j + 2] - i) / (bins[j + 2] - bins[j + 1])
    return fbank


def _pre_emphasis(x: torch.Tensor, alpha: float = 0.97) -> torch.Tensor:
    return torch.cat([x[:, :1], x[:, 1:] - alpha * x[:, :-1]], dim=1)


def wen_fbank(audio: torch.Tensor) -> torch.Tensor:
    """PairDataset audio [B, 1, T] -> Wen et al.'s normalised 64-band log filterbanks float32 [B, 64, frames]
    (frames = int(T / 160 + 1); 101 for 1 s)."""
    x = _pre_emphasis(raw_wave(audio).double() * INT16)
    n_frames = int(x.shape[1] / HOP + 1)
    x = F.pad(x, (0, (n_frames - 1) * HOP + WIN - x.shape[1]))
    frames = x.unfold(1, WIN, HOP)[:, :n_frames] * torch.hamming_window(WIN, periodic=False, dtype=x.dtype,
                                                                         device=x.device)
    power = torch.fft.rfft(frames, n=1024).abs() ** 2
    filt = torch.from_numpy(sphinx_filters()).to(power)
    logspec = torch.log((power @ filt).clamp(min=1e-5))  # [B, frames, 64]
    logspec = logspec - logspec.mean(dim=1, keepdim=True)
    logspec = logspec / (logspec.std(dim=1, keepdim=True, unbiased=False) + np.finfo(np.float32).eps)
    return logspec.transpose(1, 2).float()


def n_frames_sf2f(n_samples: int) -> int:
    """python_speech_features' frame count for ``n_samples``: 1 + ceil((n - 400) / 160), at least 1."""
    return 1 if n_samples <= WIN else 1 + math.ceil((n_samples - WIN) / HOP)


def sf2f_logfbank(audio: torch.Tensor) -> torch.Tensor:
    """PairDataset audio [B, 1, T] -> SF2F's normalised 40-band log mel spectrogram float32 [B, 40, frames]
    (frames = 1 + ceil((T - 400) / 160); 99 for 1 s)."""
    x = _pre_emphasis(raw_wave(audio).double() * INT16)
    n = x.shape[1]
    n_frames = n_frames_sf2f(n)
    x = F.pad(x, (0, (n_frames - 1) * HOP + WIN - n))
    frames = x.unfold(1, WIN, HOP)[:, :n_frames]
    power = torch.fft.rfft(frames, n=512).abs() ** 2 / 512.0
    feat = power @ torch.from_numpy(psf_filters().T).to(power)
    feat = torch.where(feat == 0, torch.full_like(feat, np.finfo(float).eps), feat)
    return ((torch.log(feat) - VOX_MEL_MEAN) / VOX_MEL_STD).transpose(1, 2).float()


def segments(mel: torch.Tensor, length: int, stride: int) -> torch.Tensor:
    """Mel [B, C, L] -> sliding-window segments [B, N, C, length] (SF2F's ``get_all_mel_segments_of_id``
    windows; N = 1 + (L - length) // stride, at least 1: a clip shorter than ``length`` is one segment)."""
    if mel.shape[2] <= length:
        return mel[:, None]
    return mel.unfold(2, length, stride).permute(0, 2, 1, 3).contiguous()
