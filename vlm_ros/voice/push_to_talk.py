"""The talk button of push-to-talk, with a release tail.

Audio and the button arrive on separate topics (or from a microphone thread and a topic), and
nothing orders one against the other: under load the release can be taken while audio recorded
with the button still held waits in a DDS queue.  Cutting the utterance at the release then
drops its last words ("grab the red cup" heard as "grab").  So audio that arrives within
``release_tail_s`` of the release still belongs to the utterance, and the utterance ends when
the tail has passed.  Plain state with the time passed in: the node holds the lock and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PushToTalk:
    release_tail_s: float = 0.3
    talking: bool = False
    _release_at: float | None = None

    def __post_init__(self) -> None:
        if not self.release_tail_s >= 0.0:
            raise ValueError(f"release tail must be >= 0 s, got {self.release_tail_s}")

    def press(self) -> bool:
        """The button went down.  True when a released utterance still in its tail must end
        first (the next press starts a new utterance, it does not extend the last one)."""
        pending = self._release_at is not None
        self._release_at = None
        self.talking = True
        return pending

    def release(self, now: float) -> None:
        """The button went up: audio keeps counting for ``release_tail_s``."""
        if self.talking:
            self.talking = False
            self._release_at = now + self.release_tail_s

    def accepts(self, now: float) -> bool:
        """Does audio arriving now belong to an utterance?"""
        return self.talking or (self._release_at is not None and now < self._release_at)

    def due(self, now: float) -> bool:
        """True once per release, when its tail has passed: end the utterance now."""
        if self._release_at is not None and now >= self._release_at:
            self._release_at = None
            return True
        return False
