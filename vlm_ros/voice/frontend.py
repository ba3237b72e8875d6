"""The voice front end: audio stream -> utterances -> transcripts -> send / say-that-again.

:class:`VoiceFrontEnd` joins the three ROS-free parts (``vad``, ``transcriber``, ``gate``) and is
what both the ROS voice node and ``vlm-ros listen`` run.  Its two halves are called separately on
purpose: ``push`` (VAD, ~0.2 ms per 32 ms of audio) keeps up with any audio source in real time,
``recognise`` (Whisper, hundreds of ms) runs on the caller's worker thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlm_ros.voice.audio import SAMPLE_RATE, Resampler, read_wav
from vlm_ros.voice.gate import CommandGate, Decision, GateConfig
from vlm_ros.voice.transcriber import Transcriber, Transcript
from vlm_ros.voice.vad import SileroVad, Utterance, UtteranceSegmenter, VadConfig, find_utterances

_GAP = np.zeros(SAMPLE_RATE // 5, np.float32)  # 0.2 s between utterances joined for Whisper


@dataclass(frozen=True)
class VoiceResult:
    """One utterance's outcome: the voice node's ``~/result`` JSON."""

    transcript: Transcript
    decision: Decision
    start_s: float = 0.0  # where the utterance lies in its stream
    end_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.decision.status, "command": self.decision.command,
                "message": self.decision.message, "reason": self.decision.reason,
                "stop": self.decision.stop, **self.transcript.to_dict(),
                "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}


class VoiceFrontEnd:
    """Streaming audio in (any rate), :class:`VoiceResult` per utterance out."""

    def __init__(self, transcriber: Transcriber, vad_config: VadConfig | None = None,
                 gate_config: GateConfig | None = None, vad: SileroVad | None = None) -> None:
        self.transcriber = transcriber
        self.segmenter = UtteranceSegmenter(vad_config, vad)
        self.gate = CommandGate(gate_config)
        self._resampler: Resampler | None = None

    def push(self, samples: np.ndarray, rate: int = SAMPLE_RATE) -> list[Utterance]:
        """Mono float32 at ``rate``; returns the utterances that ended in this chunk."""
        if self._resampler is None or self._resampler.rate_in != rate:
            # A rate change (a new source) starts a new stream: close what was in progress.
            pending = self.flush() if self._resampler is not None else []
            self._resampler = Resampler(rate, SAMPLE_RATE)
            return [*pending, *self.segmenter.push(self._resampler.process(samples))]
        return self.segmenter.push(self._resampler.process(samples))

    def flush(self) -> list[Utterance]:
        """End of stream (or push-to-talk released): the utterance in progress, if any."""
        tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)
        self._resampler = None
        return [*self.segmenter.push(tail), *self.segmenter.flush()]

    def recognise(self, utterance: Utterance) -> VoiceResult:
        transcript = self.transcriber.transcribe(utterance.audio)
        return VoiceResult(transcript, self.gate.decide(transcript), utterance.start_s,
                           utterance.end_s)

    def recognise_audio(self, audio: np.ndarray) -> VoiceResult:
        """Push-to-talk: one recording that is one utterance (VAD trims it; silence -> empty)."""
        return self.recognise(_join(find_utterances(audio, self.segmenter.config,
                                                    self.segmenter.vad), len(audio)))


def transcribe_file(path: str | Path, transcriber: Transcriber,
                    vad_config: VadConfig | None = None, vad: SileroVad | None = None) -> Transcript:
    """A WAV file's speech as one transcript (`vlm-ros transcribe`).

    VAD keeps only the speech (a silent file gives empty text and confidence 0, never Whisper's
    hallucinations on silence); ``duration_s`` is the file's length and ``latency_ms`` covers
    VAD and transcription, not reading the file.
    """
    audio = read_wav(path)
    started = time.perf_counter()
    utterances = find_utterances(audio, vad_config, vad)
    transcript = (transcriber.transcribe(_join(utterances, len(audio)).audio) if utterances
                  else Transcript("", transcriber.language or "en", 0.0, 0.0, 0.0))
    return Transcript(text=transcript.text, language=transcript.language,
                      confidence=transcript.confidence, duration_s=len(audio) / SAMPLE_RATE,
                      latency_ms=(time.perf_counter() - started) * 1000.0,
                      segments=transcript.segments)


def _join(utterances: list[Utterance], total_samples: int) -> Utterance:
    """Several utterances as one (0.2 s apart); no utterances -> an empty one."""
    if not utterances:
        return Utterance(np.zeros(0, np.float32), 0.0, total_samples / SAMPLE_RATE)
    pieces: list[np.ndarray] = []
    for utterance in utterances:
        pieces.extend([utterance.audio, _GAP])
    return Utterance(np.concatenate(pieces[:-1]), utterances[0].start_s, utterances[-1].end_s)
