"""WAV clips (standard-library `wave`) as fixed-length mono waveforms or log-mel features (numpy)."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgeq.errors import InputError


@dataclass(frozen=True)
class AudioOptions:
    """Clip rate, length (`seconds` None: the model input's fixed length) and features."""

    sample_rate: int = 16000  # clips at another rate are resampled (linear interpolation)
    seconds: float | None = None
    features: Literal["waveform", "logmel"] = "waveform"
    n_mels: int = 64
    n_fft: int = 400
    hop: int = 160


def read_wav(path: Path, rate: int) -> np.ndarray:
    """A mono float32 waveform in [-1, 1] at `rate` Hz (8/16/24/32-bit PCM, channels averaged)."""
    try:
        with wave.open(str(path), "rb") as clip:
            width, channels, source_rate = clip.getsampwidth(), clip.getnchannels(), clip.getframerate()
            raw = clip.readframes(clip.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise InputError(f"cannot read {path} as a PCM WAV file: {exc}") from None
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 3:
        bytes3 = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        padded = np.concatenate([np.zeros((len(bytes3), 1), np.uint8), bytes3], axis=1)
        samples = padded.copy().view("<i4")[:, 0].astype(np.float32) / 2**31
    elif width in (2, 4):
        samples = np.frombuffer(raw, f"<i{width}").astype(np.float32) / 2 ** (8 * width - 1)
    else:
        raise InputError(f"{path}: {8 * width}-bit WAV samples are not supported (8/16/24/32-bit PCM)")
    mono = samples.reshape(-1, channels).mean(axis=1)
    if source_rate == rate or len(mono) == 0:
        return mono
    times = np.arange(round(len(mono) * rate / source_rate)) / rate
    return np.interp(times, np.arange(len(mono)) / source_rate, mono).astype(np.float32)


def fit_length(waveform: np.ndarray, length: int) -> np.ndarray:
    """Cut to `length` samples, or pad the end with silence."""
    return np.pad(waveform[:length], (0, max(0, length - len(waveform))))


def log_mel(waveform: np.ndarray, rate: int, options: AudioOptions) -> np.ndarray:
    """[n_mels, frames] log-mel energies: Hann-windowed STFT power, triangular mel filters, log(x + 1e-6)."""
    n_fft, hop = options.n_fft, options.hop
    padded = np.pad(
        waveform, (n_fft // 2, n_fft // 2), mode="reflect" if len(waveform) > n_fft // 2 else "constant"
    )
    frames = 1 + (len(padded) - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    power = np.abs(np.fft.rfft(padded[index] * np.hanning(n_fft), axis=1)) ** 2
    return np.log(power @ _mel_filters(rate, n_fft, options.n_mels).T + 1e-6).T.astype(np.float32)


def _mel_filters(rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular filters evenly spaced on the HTK mel scale, [n_mels, n_fft // 2 + 1]."""
    mel = np.linspace(0, 2595 * np.log10(1 + rate / 2 / 700), n_mels + 2)
    edges = 700 * (10 ** (mel / 2595) - 1)
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising, falling = (bins - lower) / (centre - lower), (upper - bins) / (upper - centre)
    return np.maximum(0, np.minimum(rising, falling))
