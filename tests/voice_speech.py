"""Real speech for the voice tests: Debian's espeak-ng speaks a sentence into a WAV file.

The speech is synthesised, not recorded, but it is real audio through the whole chain (22.05 kHz
PCM from espeak-ng, resampled, VAD, Whisper).  Noise is mixed in with numpy at a stated SNR
(speech power measured over the voiced samples only).  scripts/ensure_espeak.sh installs espeak-ng.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

from vlm_ros.voice.audio import SAMPLE_RATE, read_wav, write_wav

VOICE = "en-us"
SPEED_WPM = 150


def require_espeak() -> None:
    # An error, not a skip: a skipped speech test looks like a passing one in a CI summary.
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed: run bash scripts/ensure_espeak.sh "
                    "(or apt-get install espeak-ng)")


@functools.lru_cache(maxsize=64)
def _spoken(text: str, voice: str, speed: int) -> np.ndarray:
    require_espeak()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                       check=True, capture_output=True, timeout=60)
        return read_wav(path)


def speak(text: str, voice: str = VOICE, speed: int = SPEED_WPM) -> np.ndarray:
    """``text`` spoken by espeak-ng: 16 kHz mono float32 (a fresh copy)."""
    return _spoken(text, voice, speed).copy()


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(round(seconds * SAMPLE_RATE)), np.float32)


def pad(audio: np.ndarray, before_s: float = 0.7, after_s: float = 0.7) -> np.ndarray:
    return np.concatenate([silence(before_s), audio, silence(after_s)])


def pink_noise(samples: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise (fans, traffic, room rumble) with unit standard deviation."""
    freqs = np.fft.rfftfreq(samples)
    spectrum = rng.normal(size=freqs.size) + 1j * rng.normal(size=freqs.size)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, samples)
    return (noise / noise.std()).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, kind: str = "white", seed: int = 0) -> np.ndarray:
    """``audio`` plus noise ``snr_db`` below the speech power (voiced samples only)."""
    rng = np.random.default_rng(seed)
    voiced = audio[np.abs(audio) > 1e-3]
    speech_power = float(np.mean(voiced**2)) if voiced.size else 1e-6
    noise = (pink_noise(audio.size, rng) if kind == "pink"
             else rng.standard_normal(audio.size).astype(np.float32))
    scaled = noise * np.sqrt(speech_power / 10.0 ** (snr_db / 10.0))
    return np.clip(audio + scaled, -1.0, 1.0).astype(np.float32)


def reversed_speech(text: str) -> np.ndarray:
    """Speech played backwards: the VAD hears a voice, but no language is in it."""
    return speak(text)[::-1].copy()


def save(path: Path, audio: np.ndarray) -> Path:
    write_wav(path, audio)
    return path
