"""Push-to-talk from the browser: PCM16 recordings -> the project's voice front end.

The browser records while the talk button is held and sends 16-bit mono PCM at its audio
context's rate; :class:`BrowserVoice` turns one recording into one :class:`VoiceResult` with the
very code `vlm-ros listen` and the voice node run: resampling to 16 kHz
(:func:`vlm_ros.voice.audio.resample`), silero-vad trimming and Whisper
(:meth:`VoiceFrontEnd.recognise_audio`) and the confidence gate (:class:`CommandGate` inside the
front end: below ``min_confidence`` nothing is sent, "say that again"; stop from the lower
``stop_min_confidence``).  Models load on a background thread at start; until then (or when the
``voice`` extra is missing) the page says why the talk button is off.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlm_ros.voice.audio import SAMPLE_RATE, AudioError, pcm_to_float, resample

MAX_RECORDING_S = 30.0  # a held button longer than this is cut (memory bound per browser)


@dataclass(frozen=True)
class VoiceSettings:
    language: str = "en"
    model: str = ""
    device: str = "cpu"
    compute_type: str = "int8"
    min_confidence: float = 0.4
    stop_min_confidence: float = 0.2


class BrowserVoice:
    """Loads the front end once; ``recognise`` is called from one worker thread at a time."""

    def __init__(self, settings: VoiceSettings | None = None) -> None:
        self.settings = settings or VoiceSettings()
        self.state = "loading"  # loading | ready | unavailable
        self.reason = ""
        self._frontend: Any = None
        self._lock = threading.Lock()
        self._loaded = threading.Event()

    def load(self) -> None:
        """Load VAD + Whisper (call on a background thread); never raises."""
        try:
            from vlm_ros.voice.frontend import VoiceFrontEnd
            from vlm_ros.voice.gate import GateConfig
            from vlm_ros.voice.transcriber import Transcriber, TranscriberConfig
            from vlm_ros.voice.vad import VadConfig

            s = self.settings
            transcriber = Transcriber(TranscriberConfig(model=s.model, device=s.device,
                                                        compute_type=s.compute_type,
                                                        language=s.language))
            frontend = VoiceFrontEnd(transcriber, VadConfig(),
                                     GateConfig(min_confidence=s.min_confidence,
                                                stop_min_confidence=s.stop_min_confidence))
            transcriber.warmup()
            self._frontend, self.state = frontend, "ready"
        except Exception as exc:  # ImportError (no voice extra), a missing model, ...
            self.state = "unavailable"
            self.reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            self._loaded.set()

    def wait_loaded(self, timeout_s: float) -> bool:
        return self._loaded.wait(timeout_s)

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "reason": self.reason,
                "language": self.settings.language,
                "min_confidence": self.settings.min_confidence}

    def recognise(self, pcm16: bytes, rate: int) -> dict[str, Any]:
        """One push-to-talk recording -> the voice node's result JSON (``status`` sent /
        rejected / ..., ``command`` to publish when sent, ``text``, ``confidence``, ...)."""
        if self._frontend is None:
            return {"status": "error", "message": f"voice is {self.state} {self.reason}".strip()}
        if not 8000 <= rate <= 192000:
            raise AudioError(f"unsupported sample rate {rate}")
        samples = np.frombuffer(pcm16[: len(pcm16) // 2 * 2], dtype="<i2")
        audio = resample(pcm_to_float(samples), rate, SAMPLE_RATE)
        with self._lock:
            result = self._frontend.recognise_audio(audio)
        return result.to_dict()
