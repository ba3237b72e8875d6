"""Voice-activity detection: a 16 kHz stream -> utterances (speech with a little padding).

silero-vad (PyPI ``silero-vad``, weights shipped in the wheel) scores each 32 ms window (512
samples) with a speech probability.  :class:`UtteranceSegmenter` turns those scores into
utterances with hysteresis: speech starts at ``threshold``, continues while the score stays above
``threshold - 0.15``, and ends after ``min_silence_ms`` below it.  An utterance is handed on the
moment its end is seen, which is what lets a spoken "stop" reach the robot one short silence after
it was said, whatever the robot is doing.

The same segmenter serves microphones, audio topics and files (a file is one stream pushed at
once), so a WAV file in a test exercises exactly the code a microphone does.  The model runs
through onnxruntime (a faster-whisper dependency anyway), one thread, about 0.2 ms per window.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from vlm_ros.voice.audio import SAMPLE_RATE

WINDOW = 512  # samples per silero-vad window at 16 kHz (32 ms)
_HYSTERESIS = 0.15  # silero's own convention: speech ends below threshold - 0.15


class VadError(RuntimeError):
    """silero-vad is not installed or its model cannot be loaded."""


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5  # speech probability that starts an utterance
    min_silence_ms: int = 400  # this much silence ends it (the barge-in delay for "stop")
    speech_pad_ms: int = 200  # audio kept before the first and after the last speech window
    min_speech_ms: int = 150  # shorter blips (a click, a cough) are dropped
    max_utterance_s: float = 15.0  # longer speech is cut here and handed on in pieces

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"vad threshold must be in (0, 1), got {self.threshold}")
        if self.min_silence_ms < 0 or self.speech_pad_ms < 0 or self.min_speech_ms < 0:
            raise ValueError("vad durations must not be negative")
        if self.max_utterance_s <= 1.0:
            raise ValueError(f"max_utterance_s must exceed 1 s, got {self.max_utterance_s}")


@dataclass
class Utterance:
    """One stretch of speech: 16 kHz mono float32 and where it lies in the stream."""

    audio: np.ndarray = field(repr=False)
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return len(self.audio) / SAMPLE_RATE


class SileroVad:
    """silero-vad's ONNX model: speech probability of consecutive 512-sample windows."""

    def __init__(self) -> None:
        try:
            import torch
        except ImportError as exc:
            raise VadError("voice activity detection needs torch and silero-vad: "
                           "pip install -e '.[voice]'") from exc
        # Importing silero_vad calls torch.set_num_threads(1) as a side effect; keep the
        # process's setting for everything else that uses torch.
        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad

            with warnings.catch_warnings():  # its importlib.resources.path call is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                self._model = load_silero_vad(onnx=True)
        except ImportError as exc:
            raise VadError("voice activity detection needs silero-vad and onnxruntime: "
                           "pip install -e '.[voice]'") from exc
        except Exception as exc:  # a broken install: say which part failed
            raise VadError(f"cannot load the silero-vad model: {exc}") from exc
        finally:
            torch.set_num_threads(threads)
        self._torch = torch

    def reset(self) -> None:
        """Forget the recurrent state (a new, unrelated stream follows)."""
        self._model.reset_states()

    def probability(self, window: np.ndarray) -> float:
        """Speech probability of the next 512 samples of the stream."""
        return float(self._model(self._torch.from_numpy(window), SAMPLE_RATE).item())


class UtteranceSegmenter:
    """Push 16 kHz audio in any chunk sizes; get utterances back as soon as each one ends."""

    def __init__(self, config: VadConfig | None = None, vad: SileroVad | None = None) -> None:
        self.config = config or VadConfig()
        self.vad = vad or SileroVad()
        self._pad = _windows(self.config.speech_pad_ms)
        self._end_silence = max(1, _windows(self.config.min_silence_ms))
        self._min_speech = _windows(self.config.min_speech_ms)
        self._max_windows = _windows(self.config.max_utterance_s * 1000.0)
        self.reset()

    def reset(self) -> None:
        self.vad.reset()
        self._leftover = np.zeros(0, np.float32)
        self._window_index = 0  # windows scored so far in this stream
        self._preroll: deque[np.ndarray] = deque(maxlen=self._pad)
        self._speech: list[np.ndarray] = []  # windows of the utterance in progress
        self._start_window = 0
        self._first_voiced = 0  # index in _speech of the first window above threshold
        self._last_voiced = 0  # index in _speech of the last window above threshold
        self._silence_run = 0
        self.last_probability = 0.0

    @property
    def in_speech(self) -> bool:
        return bool(self._speech)

    def push(self, samples: np.ndarray) -> list[Utterance]:
        samples = np.asarray(samples, np.float32).reshape(-1)
        if self._leftover.size:
            samples = np.concatenate([self._leftover, samples])
        usable = len(samples) - len(samples) % WINDOW
        self._leftover = samples[usable:].copy()
        done: list[Utterance] = []
        for start in range(0, usable, WINDOW):
            utterance = self._step(np.ascontiguousarray(samples[start:start + WINDOW]))
            if utterance is not None:
                done.append(utterance)
        return done

    def flush(self) -> list[Utterance]:
        """End of stream: the utterance in progress (if long enough); then a fresh state."""
        done: list[Utterance] = []
        if self._leftover.size:
            tail = np.zeros(WINDOW, np.float32)
            tail[: self._leftover.size] = self._leftover
            self._leftover = np.zeros(0, np.float32)
            utterance = self._step(tail)
            if utterance is not None:
                done.append(utterance)
        if self._speech:
            utterance = self._close()
            if utterance is not None:
                done.append(utterance)
        self.reset()
        return done

    # ------------------------------------------------------------------ internals
    def _step(self, window: np.ndarray) -> Utterance | None:
        probability = self.vad.probability(window)
        self.last_probability = probability
        index = self._window_index
        self._window_index += 1
        if not self._speech:
            if probability >= self.config.threshold:
                self._speech = [*self._preroll, window]
                self._start_window = index - len(self._preroll)
                self._first_voiced = self._last_voiced = len(self._speech) - 1
                self._silence_run = 0
                self._preroll.clear()
            else:
                self._preroll.append(window)
            return None
        self._speech.append(window)
        if probability >= self.config.threshold - _HYSTERESIS:
            self._silence_run = 0
            self._last_voiced = len(self._speech) - 1
        else:
            self._silence_run += 1
        if self._silence_run >= self._end_silence:
            return self._close()
        if len(self._speech) >= self._max_windows:
            # Cut a long monologue; the next speech window opens the next piece.
            return self._close()
        return None

    def _close(self) -> Utterance | None:
        """Emit the utterance in progress, trimmed to ``speech_pad_ms`` after its last speech."""
        keep = min(len(self._speech), self._last_voiced + 1 + self._pad)
        windows, trailing = self._speech[:keep], self._speech[keep:]
        voiced = self._last_voiced - self._first_voiced + 1  # windows from first to last speech
        start = self._start_window
        self._speech = []
        self._silence_run = 0
        self._preroll.clear()
        self._preroll.extend(trailing)  # the deque keeps the last speech_pad_ms of it
        if voiced < self._min_speech:
            return None
        audio = np.concatenate(windows)
        start_s = start * WINDOW / SAMPLE_RATE
        return Utterance(audio=audio, start_s=start_s, end_s=start_s + len(audio) / SAMPLE_RATE)


def find_utterances(audio: np.ndarray, config: VadConfig | None = None,
                    vad: SileroVad | None = None) -> list[Utterance]:
    """Every utterance in a whole recording (16 kHz mono float32)."""
    segmenter = UtteranceSegmenter(config, vad)
    return [*segmenter.push(audio), *segmenter.flush()]


def _windows(milliseconds: float) -> int:
    return int(round(milliseconds * SAMPLE_RATE / 1000.0 / WINDOW))
