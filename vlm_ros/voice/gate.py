"""Send or not: the policy between a transcript and the robot's command topic.

A misheard command is worse than none, so a transcript is only forwarded when Whisper was sure
enough (``min_confidence``, default 0.4 - see transcriber.py for the formula).  Below that, or
with no words at all, nothing is sent and the user hears "say that again".

Stop is the exception, by design: missing a spoken "stop" costs more than a spurious one, so a
transcript that parses as stop is sent from the lower ``stop_min_confidence`` (default 0.2) and
needs no wake word.

Wake word (optional, e.g. "robot"): other speech is only forwarded when it starts with it ("robot,
grab the red cup" sends "grab the red cup"); the wake word alone arms the next utterance within
``wake_window_s``.  Speech without it is ignored quietly - people talk near robots.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from vlm_ros.core.instruction import parse_instruction
from vlm_ros.voice.transcriber import Transcript

SAY_AGAIN = "say that again"
_WORD_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?")


@dataclass(frozen=True)
class GateConfig:
    min_confidence: float = 0.4
    stop_min_confidence: float = 0.2
    wake_word: str = ""  # "" = every utterance is a command
    wake_window_s: float = 8.0  # after the wake word alone, the next utterance counts

    def __post_init__(self) -> None:
        for name in ("min_confidence", "stop_min_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Decision:
    status: str  # sent | rejected (say that again) | ignored (no wake word) | listening
    command: str = ""  # the text to publish when sent
    reason: str = ""  # why it was not sent
    stop: bool = False

    @property
    def send(self) -> bool:
        return self.status == "sent"

    @property
    def message(self) -> str:
        return SAY_AGAIN if self.status == "rejected" else ""


class CommandGate:
    """Stateful only for the wake word's window; otherwise a pure function of the transcript."""

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()
        self._wake_key = [c for c in self.config.wake_word.lower() if c.isalnum()]
        self._armed_until = float("-inf")

    def decide(self, transcript: Transcript, now: float | None = None) -> Decision:
        now = time.monotonic() if now is None else now
        text = transcript.text.strip()
        if not _words(text):
            return Decision("rejected", reason="no words recognised")
        command, woken = self._strip_wake_word(text)
        if self._wake_key and woken and not _words(command):
            self._armed_until = now + self.config.wake_window_s
            return Decision("listening", reason="wake word heard; waiting for the command")
        stop = parse_instruction(command).action == "stop"
        if stop:
            if transcript.confidence < self.config.stop_min_confidence:
                return Decision("rejected", reason=self._low(transcript, stop=True), stop=True)
            return Decision("sent", command=command, stop=True)
        if self._wake_key and not woken:
            if now > self._armed_until:
                return Decision("ignored", reason="no wake word")
        if transcript.confidence < self.config.min_confidence:
            return Decision("rejected", reason=self._low(transcript, stop=False))
        self._armed_until = float("-inf")
        return Decision("sent", command=command)

    def _low(self, transcript: Transcript, stop: bool) -> str:
        floor = self.config.stop_min_confidence if stop else self.config.min_confidence
        return f"confidence {transcript.confidence:.2f} below {floor:.2f}"

    def _strip_wake_word(self, text: str) -> tuple[str, bool]:
        """(text after the wake word, whether it was there).  Case, spaces and punctuation are
        ignored ("Hey, Robot!" matches "hey robot"), and CJK wake words work unsegmented."""
        if not self._wake_key:
            return text, False
        position, matched = 0, 0
        while matched < len(self._wake_key):
            if position >= len(text):
                return text, False
            char = text[position].lower()
            position += 1
            if not char.isalnum():
                continue
            if char != self._wake_key[matched]:
                return text, False
            matched += 1
        if position < len(text) and text[position].isalnum() and self._wake_key[-1].isascii():
            return text, False  # "robot" must not match "robotic ..."
        return text[position:].lstrip(" ,.!?;:-，。！？、").strip(), True


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD_RE.findall(text)]
