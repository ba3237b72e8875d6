"""Audio in: WAV files and PCM buffers -> 16 kHz mono float32, the one format VAD and ASR take.

Everything downstream (silero-vad, Whisper) works on 16 kHz mono float32 in [-1, 1], so every
source converts here, once.  Resampling is a windowed-sinc interpolator that keeps its history
between calls: a microphone or an audio topic delivers arbitrary chunks at 44.1 or 48 kHz, and
resampling each chunk on its own would click at every chunk boundary.  Whole files go through the
same code in one call, so a file and the same audio streamed in pieces give the same samples.

Errors are :class:`AudioError` with one line naming the file or buffer and the problem (the CLI
prints it; the node logs it and keeps running).
"""

from __future__ import annotations

import math
import wave
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000  # what silero-vad and Whisper expect
_SINC_ZERO_CROSSINGS = 16  # per side; > 60 dB stop band with the Blackman window
_MAX_WAV_SECONDS = 3600.0  # an hour: refuse to decode more than that into memory
_BLOCK = 4096  # outputs per vectorised step (bounds the temporary tap matrices to a few MB)


class AudioError(ValueError):
    """Audio that cannot be read or converted (missing file, unsupported format, bad buffer)."""


def pcm_to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM (int16/int32/uint8) or float samples -> float32 in [-1, 1]."""
    if samples.dtype == np.uint8:  # 8-bit WAV is unsigned with 128 as zero
        return (samples.astype(np.float32) - 128.0) / 128.0
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    if samples.dtype == np.int32:
        return (samples.astype(np.float64) / 2147483648.0).astype(np.float32)
    if np.issubdtype(samples.dtype, np.floating):
        return np.clip(np.nan_to_num(samples.astype(np.float32)), -1.0, 1.0)
    raise AudioError(f"unsupported sample type {samples.dtype}")


def to_mono(samples: np.ndarray, channels: int) -> np.ndarray:
    """Interleaved frames of ``channels`` -> one channel (the mean)."""
    if channels < 1:
        raise AudioError(f"bad channel count {channels}")
    if channels == 1:
        return samples
    if samples.size % channels:
        raise AudioError(f"{samples.size} samples do not split into {channels} channels")
    return samples.reshape(-1, channels).mean(axis=1, dtype=np.float32)


class Resampler:
    """Streaming windowed-sinc resampler for any pair of rates (e.g. 44100 -> 16000).

    ``process`` returns the output samples whose whole filter support has arrived; ``flush``
    pads with silence and returns the rest.  Concatenated outputs do not depend on how the input
    was chunked.  When downsampling, the cutoff sits at the output Nyquist frequency (anti-alias).
    """

    def __init__(self, rate_in: int, rate_out: int = SAMPLE_RATE) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise AudioError(f"bad sample rates {rate_in} -> {rate_out}")
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self._cutoff = min(1.0, self.rate_out / self.rate_in)  # of the input Nyquist
        self._half_width = math.ceil(_SINC_ZERO_CROSSINGS / self._cutoff)  # input samples
        # Output k sits at input position k * up / down; rational rates repeat their fractional
        # phase every `down` outputs, so the kernels are computed once per phase.
        common = math.gcd(self.rate_in, self.rate_out)
        self._up, self._down = self.rate_in // common, self.rate_out // common
        self._offsets = np.arange(-self._half_width + 1, self._half_width + 1, dtype=np.int64)
        self._kernels = self._kernel_table() if not self.passthrough else None
        # History starts with half a filter of silence so output 0 lines up with input 0.
        self._buffer = np.zeros(self._half_width, np.float32)
        self._buffer_start = -self._half_width  # absolute input index of _buffer[0]
        self._emitted = 0  # output samples produced so far

    @property
    def passthrough(self) -> bool:
        return self.rate_in == self.rate_out

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        if self.passthrough:
            return chunk.copy()
        self._buffer = np.concatenate([self._buffer, chunk])
        return self._emit(self._buffer_start + len(self._buffer))

    def flush(self) -> np.ndarray:
        """The remaining output for the input seen so far (the stream's tail)."""
        if self.passthrough:
            return np.zeros(0, np.float32)
        received = self._buffer_start + len(self._buffer)  # input samples pushed, absolute
        total = -(-received * self._down // self._up)  # ceil: a partial last period counts
        self._buffer = np.concatenate([self._buffer, np.zeros(self._half_width + 1, np.float32)])
        return self._emit(self._buffer_start + len(self._buffer), limit=total)

    def _emit(self, available: int, limit: int | None = None) -> np.ndarray:
        # Output k is centred on input position t = k * step and needs inputs up to
        # floor(t) + half_width.
        last = (available - 1 - self._half_width) * self._down // self._up
        if limit is not None:
            last = min(last, limit - 1)
        if last < self._emitted:
            return np.zeros(0, np.float32)
        blocks = [self._interpolate(start, min(start + _BLOCK, last + 1))
                  for start in range(self._emitted, last + 1, _BLOCK)]
        out = np.concatenate(blocks)
        self._emitted = last + 1
        # Drop history no future output can reach.
        keep_from = self._emitted * self._up // self._down - self._half_width + 1
        drop = max(0, keep_from - self._buffer_start)
        if drop:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
        return out

    def _interpolate(self, first: int, stop: int) -> np.ndarray:
        """Outputs first..stop-1 from the buffered input (polyphase: one kernel per phase)."""
        k = np.arange(first, stop, dtype=np.int64)
        base, phase = np.divmod(k * self._up, self._down)  # exact integer positions
        taps = base[:, None] + self._offsets[None, :]  # absolute input indices
        values = self._buffer[taps - self._buffer_start]
        return np.einsum("ij,ij->i", values, self._kernels[phase]).astype(np.float32)

    def _kernel_table(self) -> np.ndarray:
        """Windowed-sinc taps for every fractional phase j/down of an output between inputs."""
        fraction = np.arange(self._down, dtype=np.float64) / self._down
        distance = fraction[:, None] - self._offsets[None, :]  # in input samples
        window = np.clip(np.abs(distance) / self._half_width, 0.0, 1.0)
        blackman = 0.42 + 0.5 * np.cos(np.pi * window) + 0.08 * np.cos(2 * np.pi * window)
        kernel = self._cutoff * np.sinc(self._cutoff * distance) * blackman
        return kernel.astype(np.float32)


def resample(samples: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """A whole clip from ``rate_in`` to ``rate_out`` (float32, same duration)."""
    resampler = Resampler(rate_in, rate_out)
    return np.concatenate([resampler.process(samples), resampler.flush()])


def read_wav(path: str | Path) -> np.ndarray:
    """A PCM WAV file (8/16/24/32-bit integer, any rate, any channel count) -> 16 kHz mono
    float32."""
    samples, rate = read_wav_native(path)
    return resample(samples, rate)


def read_wav_native(path: str | Path) -> tuple[np.ndarray, int]:
    """A PCM WAV file -> (mono float32 at the file's own rate, that rate)."""
    p = Path(path)
    if not p.is_file():
        raise AudioError(f"audio file not found: {p}")
    try:
        with wave.open(str(p), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.getnframes()
            if rate <= 0 or frames / rate > _MAX_WAV_SECONDS:
                raise AudioError(f"{p}: {frames} frames at {rate} Hz is not a usable recording")
            raw = wav.readframes(frames)
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a PCM WAV file: {p} ({exc})") from exc
    except OSError as exc:
        raise AudioError(f"cannot read audio file {p}: {exc.strerror or exc}") from exc
    usable = len(raw) - len(raw) % (width * channels)  # a truncated last frame is dropped
    return to_mono(_decode_pcm(raw[:usable], width, p), channels), rate


def _decode_pcm(raw: bytes, width: int, path: Path) -> np.ndarray:
    if width == 1:
        return pcm_to_float(np.frombuffer(raw, np.uint8))
    if width == 2:
        return pcm_to_float(np.frombuffer(raw, "<i2"))
    if width == 3:  # 24-bit: place the three bytes in the top of an int32
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        value = (triples[:, 0] << 8) | (triples[:, 1] << 16) | (triples[:, 2] << 24)
        return pcm_to_float(value.astype(np.int32))
    if width == 4:
        return pcm_to_float(np.frombuffer(raw, "<i4"))
    raise AudioError(f"{path}: unsupported sample width {width * 8} bits")


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Mono float samples in [-1, 1] -> a 16-bit PCM WAV file (recordings, test fixtures)."""
    pcm = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(rate))
        wav.writeframes((pcm * 32767.0).round().astype("<i2").tobytes())
