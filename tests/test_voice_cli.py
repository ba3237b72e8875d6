"""`vlm-ros transcribe` and `vlm-ros listen` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from voice_speech import add_noise, pad, save, silence, speak

from vlm_ros.voice import default_model_path

pytestmark = pytest.mark.slow

TRANSCRIPT_KEYS = {"text", "language", "confidence", "duration_s", "latency_ms"}


def run_cli(*args: str, timeout_s: float = 180.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # nothing here may reach for a model hub
    return subprocess.run([sys.executable, "-m", "vlm_ros.cli", *args], capture_output=True,
                          text=True, timeout=timeout_s, env=env, stdin=subprocess.DEVNULL)


def test_transcribe_json_prints_the_transcript(tmp_path: Path) -> None:
    audio = add_noise(pad(speak("grab the red cup"), 1.0, 1.0), 15.0, seed=4)
    wav = save(tmp_path / "grab the red cup.wav", audio)
    proc = run_cli("transcribe", str(wav), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) == TRANSCRIPT_KEYS
    assert result["text"].lower().strip(" .") == "grab the red cup"
    assert result["language"] == "en"
    assert 0.4 <= result["confidence"] <= 1.0
    assert result["duration_s"] == pytest.approx(audio.size / 16000, abs=0.01)
    assert result["latency_ms"] > 0
    plain = run_cli("transcribe", str(wav))
    assert plain.returncode == 0 and plain.stdout.strip().lower() == "grab the red cup."


def test_transcribe_of_silence_is_empty(tmp_path: Path) -> None:
    proc = run_cli("transcribe", str(save(tmp_path / "quiet.wav", silence(2.0))), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["text"] == "" and result["confidence"] == 0.0 and result["duration_s"] == 2.0


@pytest.mark.parametrize(("args", "message"), [
    (["missing.wav"], "audio file not found: missing.wav"),
    (["NOTAWAV"], "not a PCM WAV file"),
    (["GOOD", "--model", "Systran/faster-whisper-small"], "pass a local CTranslate2"),
    (["GOOD", "--model", "TINYEN", "--language", "zh"], "English-only"),
])
def test_transcribe_errors_are_one_line_not_a_traceback(tmp_path: Path, args: list[str],
                                                        message: str) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEjunk")
    good = save(tmp_path / "good.wav", pad(speak("stop")))
    names = {"NOTAWAV": str(tmp_path / "bad.wav"), "GOOD": str(good),
             "TINYEN": str(default_model_path())}
    proc = run_cli("transcribe", *[names.get(a, a) for a in args])
    assert proc.returncode == 2
    assert proc.stderr.startswith("vlm-ros: error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def _microphone_usable() -> bool:
    from vlm_ros.voice.microphone import MicrophoneError, find_microphone

    try:
        find_microphone()
    except MicrophoneError:
        return False
    return True


def test_listen_without_a_microphone_fails_with_a_clear_message() -> None:
    if _microphone_usable():
        pytest.skip("this machine has a working microphone; listen would start recording")
    proc = run_cli("listen", timeout_s=60.0)
    assert proc.returncode == 2
    assert proc.stderr.startswith("vlm-ros: error: ")
    assert "PortAudio" in proc.stderr or "microphone" in proc.stderr or "input device" in (
        proc.stderr)
    assert "Traceback" not in proc.stderr
