"""Realistic calibration inputs: photo crops, rendered text, synthesised speech and tones, real sentences."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

SEED = 0

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Quantization maps floating point weights to eight bit integers.",
    "Please turn off the lights in the kitchen before you leave.",
    "The train to Lisbon leaves from platform four at nine fifteen.",
    "Heavy rain is expected across the northern valleys tonight.",
    "She measured the latency of the model on a small ARM board.",
    "Our quarterly revenue grew by twelve percent year over year.",
    "Can you recommend a good book about the history of mathematics?",
    "The patient reported mild headaches and trouble sleeping.",
    "A transformer encoder turns a sentence into a fixed size vector.",
    "I would like to return these shoes, they are two sizes too small.",
    "The committee postponed the vote until after the holidays.",
    "Add two cups of flour and a pinch of salt, then stir gently.",
    "Edge devices run models without a connection to the cloud.",
    "The museum opens at ten and closes at six on weekdays.",
    "Wind turbines produced a record amount of power last winter.",
    "He forgot his umbrella on the bus again this morning.",
    "The new firmware update fixes a bug in the bluetooth stack.",
    "Researchers found a new species of frog in the rainforest.",
    "Set an alarm for six thirty tomorrow morning, please.",
    "The stock market closed slightly lower after a volatile session.",
    "Our team won the regional football championship on Sunday.",
    "This camera detects faces and blurs them before uploading.",
    "The library has extended its opening hours during exams.",
    "Could you translate this paragraph into Portuguese for me?",
    "A small convolutional network estimates the pitch of a voice.",
    "Traffic on the motorway is backed up for seven kilometres.",
    "The garden needs watering twice a day in this heat.",
    "Mix the paint carefully so the colour stays consistent.",
    "The server crashed because the disk was completely full.",
    "Scientists observed a distant galaxy through the new telescope.",
    "My grandmother grows tomatoes, beans and courgettes every summer.",
    "The hotel room had a lovely view of the harbour.",
    "Neural networks can be compressed by pruning and quantization.",
    "The orchestra rehearsed the symphony for three long hours.",
    "Remember to back up your photos before resetting the phone.",
    "The airline cancelled dozens of flights because of the storm.",
    "He speaks French fluently and is learning Japanese.",
    "Please send me the invoice by the end of the week.",
    "The bridge will be closed for repairs until March.",
    "A good night's sleep improves memory and concentration.",
    "The recipe calls for fresh basil, garlic and olive oil.",
    "Voice assistants listen for a wake word before recording.",
    "The factory switched to solar panels to cut energy costs.",
    "Children under twelve travel free on weekends.",
    "The detective examined the footprints near the window.",
    "Our office is moving to a bigger building next month.",
    "The river flooded the fields after days of heavy rain.",
    "This laptop battery lasts about ten hours on a single charge.",
    "The referee showed him a yellow card for the late tackle.",
    "Optical character recognition reads text from scanned pages.",
    "We watched the sunset from the top of the hill.",
    "The bakery on the corner sells the best croissants in town.",
    "The vaccine was tested on thousands of volunteers.",
    "Turn left at the next roundabout and follow the signs.",
    "The software engineer refactored the legacy payment module.",
    "Penguins huddle together to survive the antarctic winter.",
    "The concert was sold out within minutes of going on sale.",
    "I need a table for four people at eight o'clock tonight.",
    "The spacecraft entered orbit around Mars after a long journey.",
    "Her presentation on climate policy impressed the audience.",
    "The printer on the third floor is out of toner again.",
    "A sudden frost damaged most of the vineyard's grapes.",
    "The documentary explores the life of deep sea creatures.",
    "Check the tyre pressure before driving on the motorway.",
    "The students built a robot that sorts recycling automatically.",
    "Interest rates are likely to remain unchanged this quarter.",
    "The cat fell asleep on the warm windowsill.",
    "This app converts speech to text in real time.",
    "The ancient castle overlooks a quiet fishing village.",
]

WORDS = sorted({w.strip(".,?'").lower() for s in SENTENCES for w in s.split() if len(w) > 3})


def photos() -> list[np.ndarray]:
    """scikit-learn's two bundled photographs (china.jpg, flower.jpg) as HxWx3 uint8."""
    from sklearn.datasets import load_sample_images

    return list(load_sample_images().images)


def photo_crops(count: int, size: int | tuple[int, int], seed: int = SEED) -> np.ndarray:
    """count random crops of the bundled photos, resized to size, as N x H x W x 3 float32 in [0, 1]."""
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    images = photos()
    out = np.empty((count, height, width, 3), np.float32)
    for i in range(count):
        image = images[i % len(images)]
        side = int(rng.integers(min(image.shape[:2]) // 4, min(image.shape[:2])))
        y = int(rng.integers(0, image.shape[0] - side + 1))
        x = int(rng.integers(0, image.shape[1] - side + 1))
        crop = Image.fromarray(image[y : y + side, x : x + side]).resize((width, height), Image.BILINEAR)
        out[i] = np.asarray(crop, np.float32) / 255.0
    return out


def imagenet_nchw(count: int, size: int, seed: int = SEED) -> np.ndarray:
    """Photo crops normalised with the ImageNet mean/std, N x 3 x size x size, the usual CNN input."""
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    return ((photo_crops(count, size, seed) - mean) / std).transpose(0, 3, 1, 2).copy()


def text_lines(count: int, height: int, width: int, seed: int = SEED) -> np.ndarray:
    """count images of rendered words (dark text on light paper), N x H x W x 3 float32 in [0, 1]."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = np.empty((count, height, width, 3), np.float32)
    for i in range(count):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))
        font = ImageFont.load_default(size=int(height * rng.uniform(0.45, 0.7)))
        paper = tuple(int(v) for v in rng.integers(200, 256, 3))
        image = Image.new("RGB", (width, height), paper)
        ink = tuple(int(v) for v in rng.integers(0, 70, 3))
        ImageDraw.Draw(image).text((int(rng.integers(2, 12)), height // 6), words, fill=ink, font=font)
        out[i] = np.asarray(image, np.float32) / 255.0
    return out


def documents(count: int, size: int, seed: int = SEED) -> np.ndarray:
    """count page-like images with several rendered text lines, N x size x size x 3 in [0, 1]."""
    line = -(-size // 6)
    lines = text_lines(count * 6, line, size, seed)
    return lines.reshape(count, 6 * line, size, 3)[:, :size]


def tones(count: int, length: int, rate: int, seed: int = SEED) -> np.ndarray:
    """count harmonic tones (random f0 80-800 Hz, vibrato, noise) of length samples, float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / rate
    out = np.empty((count, length), np.float32)
    for i in range(count):
        f0 = rng.uniform(80, 800) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 7) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        wave_ = sum(rng.uniform(0.1, 1) / k * np.sin(k * phase) for k in range(1, 6))
        wave_ = wave_ + rng.normal(0, rng.uniform(0.001, 0.05), length)
        out[i] = 0.5 * wave_ / np.abs(wave_).max()
    return out


@functools.lru_cache(maxsize=4)
def speech(rate: int = 16000) -> np.ndarray:
    """All SENTENCES spoken by espeak-ng (several voices and speeds) at rate Hz, one float32 stream.

    Falls back to tones when espeak-ng is not installed (apt-get install espeak-ng).
    """
    if not shutil.which("espeak-ng"):
        return tones(len(SENTENCES), rate * 2, rate).reshape(-1)
    pieces = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, sentence in enumerate(SENTENCES):
            path = Path(tmp) / f"{i}.wav"
            voice = ["en", "en-us", "en+f3", "en+m3"][i % 4]
            cmd = ["espeak-ng", "-v", voice, "-s", str(130 + 10 * (i % 5)), "-w", str(path), sentence]
            subprocess.run(cmd, check=True, capture_output=True)
            pieces.append(_resample(*_read_wav(path), rate))
            pieces.append(np.zeros(rate // 4, np.float32))
    return np.concatenate(pieces)


def speech_clips(count: int, length: int, rate: int = 16000, seed: int = SEED) -> np.ndarray:
    """count random windows of length samples from the synthesised speech, with a little noise."""
    stream = speech(rate)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(stream) - length, count)
    clips = np.stack([stream[s : s + length] for s in starts])
    return (clips + rng.normal(0, 0.003, clips.shape)).astype(np.float32)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit mono wav file as float32 in [-1, 1] and its sample rate."""
    with wave.open(str(path)) as handle:
        frames = handle.readframes(handle.getnframes())
        return np.frombuffer(frames, np.int16).astype(np.float32) / 32768.0, handle.getframerate()


def _resample(signal: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling (good enough for calibration audio)."""
    if rate == target:
        return signal
    positions = np.arange(int(len(signal) * target / rate)) * rate / target
    return np.interp(positions, np.arange(len(signal)), signal).astype(np.float32)
