"""Microphone input through sounddevice (PortAudio), when the machine has both.

sounddevice is a pure-Python wheel; the PortAudio library it loads comes from the system
(Debian: ``apt-get install libportaudio2``).  Every way this can be missing - no sounddevice, no
PortAudio, no input device - is one :class:`MicrophoneError` with a sentence saying what to do,
raised before any model is loaded, so ``vlm-ros listen`` fails in a second with that sentence.
"""

from __future__ import annotations

import queue
from typing import Any

import numpy as np

from vlm_ros.voice.audio import AudioError

BLOCK_S = 0.032  # one VAD window of audio per callback at 16 kHz


class MicrophoneError(AudioError):
    """No usable microphone (library, driver or device missing)."""


def _sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as exc:
        raise MicrophoneError("microphone input needs the sounddevice package: "
                              "pip install -e '.[voice]'") from exc
    except OSError as exc:  # sounddevice raises OSError when libportaudio is absent
        raise MicrophoneError(f"microphone input needs the PortAudio library ({exc}): "
                              "sudo apt-get install libportaudio2") from exc
    return sounddevice


def find_microphone(device: str | int | None = None) -> dict[str, Any]:
    """The input device's description (name, default_samplerate, ...) or MicrophoneError."""
    sd = _sounddevice()
    target: str | int | None = device
    if isinstance(device, str):
        target = int(device) if device.strip().isdigit() else (device.strip() or None)
    try:
        info = sd.query_devices(target, kind="input")
    except (ValueError, sd.PortAudioError) as exc:
        which = f"microphone {device!r}" if target is not None else "a default microphone"
        raise MicrophoneError(f"no usable input device: cannot open {which} ({exc}); "
                              "list devices with: python -m sounddevice") from exc
    if int(info.get("max_input_channels", 0)) < 1:
        raise MicrophoneError(f"device {info.get('name')!r} has no input channels")
    return dict(info)


class Microphone:
    """An open input stream; ``read`` returns mono float32 blocks at ``rate``."""

    def __init__(self, device: str | int | None = None, rate: int = 0) -> None:
        sd = _sounddevice()
        info = find_microphone(device)
        self.name = str(info.get("name", "microphone"))
        self.rate = int(rate or info.get("default_samplerate") or 16000)
        self._blocks: queue.Queue[np.ndarray] = queue.Queue(maxsize=2000)  # ~1 min of audio
        self.overflows = 0
        try:
            self._stream = sd.InputStream(device=info.get("index", device), channels=1,
                                          samplerate=self.rate, dtype="float32",
                                          blocksize=int(self.rate * BLOCK_S),
                                          callback=self._on_block)
            self._stream.start()
        except (ValueError, sd.PortAudioError) as exc:
            raise MicrophoneError(f"cannot record from {self.name!r} at {self.rate} Hz: "
                                  f"{exc}") from exc

    def _on_block(self, indata: np.ndarray, _frames: int, _time: Any, status: Any) -> None:
        # PortAudio's thread: copy and hand over, nothing else.
        if status:
            self.overflows += 1
        try:
            self._blocks.put_nowait(indata[:, 0].copy())
        except queue.Full:
            self.overflows += 1

    def read(self, timeout_s: float = 0.1) -> np.ndarray | None:
        try:
            return self._blocks.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def drain(self) -> None:
        """Drop what was recorded so far (push-to-talk: start clean)."""
        while self.read(0.0) is not None:
            pass

    def close(self) -> None:
        self._stream.stop()
        self._stream.close()

    def __enter__(self) -> Microphone:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
