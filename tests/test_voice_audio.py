"""Audio in: WAV decoding, resampling to 16 kHz, and voice-activity segmentation."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
from voice_speech import add_noise, pad, silence, speak

from vlm_ros.voice.audio import (
    SAMPLE_RATE,
    AudioError,
    Resampler,
    read_wav,
    read_wav_native,
    resample,
    write_wav,
)
from vlm_ros.voice.vad import UtteranceSegmenter, VadConfig, find_utterances


def _tone(frequency: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(rate * seconds)) / rate)).astype(
        np.float32)


def _dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.fft.rfftfreq(samples.size, 1.0 / rate)[np.argmax(spectrum)])


def _write_pcm(path: Path, frames: np.ndarray, rate: int, width: int) -> Path:
    """frames: (n, channels) floats in [-1, 1] -> PCM WAV of ``width`` bytes per sample."""
    n, channels = frames.shape
    if width == 1:
        raw = (frames * 127 + 128).round().astype(np.uint8).tobytes()
    elif width == 2:
        raw = (frames * 32767).round().astype("<i2").tobytes()
    elif width == 3:
        ints = (frames.reshape(-1) * 8388607).round().astype("<i4")
        raw = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raw = (frames * 2147483647).round().astype("<i4").tobytes()
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(raw)
    return path


# ---------------------------------------------------------------------------- resampling
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000, 16000])
def test_resampling_keeps_pitch_and_duration(rate: int) -> None:
    out = resample(_tone(440.0, rate), rate)
    assert out.dtype == np.float32
    assert len(out) == SAMPLE_RATE  # one second in, one second out
    assert _dominant_frequency(out, SAMPLE_RATE) == pytest.approx(440.0, abs=2.0)
    expected = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(SAMPLE_RATE) / SAMPLE_RATE)
    assert np.max(np.abs(out[100:-100] - expected[100:-100])) < 1e-3


@pytest.mark.parametrize("rate", [44100, 48000])
def test_streamed_chunks_give_the_same_samples_as_one_call(rate: int) -> None:
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, rate * 2).astype(np.float32)
    whole = resample(audio, rate)
    resampler, pieces, position = Resampler(rate), [], 0
    rng = np.random.default_rng(2)
    while position < audio.size:
        size = int(rng.integers(1, 2500))
        pieces.append(resampler.process(audio[position:position + size]))
        position += size
    pieces.append(resampler.flush())
    np.testing.assert_allclose(np.concatenate(pieces), whole, atol=1e-6)


def test_downsampling_removes_tones_above_the_new_nyquist() -> None:
    # 10 kHz cannot exist at 16 kHz; without the anti-alias filter it would fold to 6 kHz.
    out = resample(_tone(10000.0, 48000), 48000)
    assert np.sqrt(np.mean(out[200:-200] ** 2)) < 1e-3


# ---------------------------------------------------------------------------- WAV files
@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_wav_of_every_width_and_stereo_reads_as_16k_mono(tmp_path: Path, width: int) -> None:
    left = _tone(300.0, 44100)
    frames = np.stack([left, left], axis=1)  # identical channels: the mono mix is the tone
    path = _write_pcm(tmp_path / "tone.wav", frames, 44100, width)
    audio = read_wav(path)
    assert len(audio) == SAMPLE_RATE
    assert _dominant_frequency(audio, SAMPLE_RATE) == pytest.approx(300.0, abs=2.0)
    tolerance = 0.02 if width == 1 else 1e-3
    assert np.max(np.abs(audio[200:-200])) == pytest.approx(0.5, abs=tolerance)


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    tone = _tone(1000.0, SAMPLE_RATE)
    write_wav(tmp_path / "t.wav", tone)
    samples, rate = read_wav_native(tmp_path / "t.wav")
    assert rate == SAMPLE_RATE
    np.testing.assert_allclose(samples, tone, atol=1e-4)


def test_bad_files_raise_one_clear_audio_error(tmp_path: Path) -> None:
    (tmp_path / "text.wav").write_text("not audio at all")
    (tmp_path / "empty.wav").write_bytes(b"")
    cases = {tmp_path / "missing.wav": "not found", tmp_path / "text.wav": "not a PCM WAV",
             tmp_path / "empty.wav": "not a PCM WAV", tmp_path: "not found"}
    for path, words in cases.items():
        with pytest.raises(AudioError, match=words):
            read_wav(path)


def test_a_wav_with_no_samples_reads_as_empty(tmp_path: Path) -> None:
    write_wav(tmp_path / "none.wav", np.zeros(0, np.float32))
    assert read_wav(tmp_path / "none.wav").size == 0


# ---------------------------------------------------------------------------- VAD
def test_silence_and_steady_noise_hold_no_utterance() -> None:
    assert find_utterances(silence(3.0)) == []
    hiss = np.random.default_rng(0).normal(0.0, 0.05, 3 * SAMPLE_RATE).astype(np.float32)
    assert find_utterances(hiss) == []


def test_two_commands_are_two_utterances_at_the_right_times() -> None:
    grab, stop = speak("grab the red cup"), speak("stop")
    audio = np.concatenate([silence(1.0), grab, silence(1.0), stop, silence(0.8)])
    utterances = find_utterances(audio)
    assert len(utterances) == 2
    first, second = utterances
    grab_end = 1.0 + grab.size / SAMPLE_RATE
    stop_start = grab_end + 1.0
    # Each utterance covers its speech (espeak pads its files with a little silence).
    assert 0.6 < first.start_s < 1.2 and grab_end - 0.3 < first.end_s < grab_end + 0.4
    assert stop_start - 0.3 < second.start_s < stop_start + 0.3
    assert first.end_s < second.start_s
    assert all(u.audio.dtype == np.float32 and u.duration_s < 3.0 for u in utterances)


def test_noisy_speech_is_still_found() -> None:
    audio = add_noise(pad(speak("go to the chair on the left")), snr_db=15.0, kind="pink")
    assert len(find_utterances(audio)) == 1


def test_chunked_stream_gives_the_same_utterances_as_the_whole_file() -> None:
    audio = np.concatenate([pad(speak("grab the red cup"), 0.5, 1.0), pad(speak("stop"), 0, 0.8)])
    whole = find_utterances(audio)
    segmenter = UtteranceSegmenter()
    streamed = []
    for start in range(0, audio.size, 733):  # odd chunk size: windows straddle chunks
        streamed += segmenter.push(audio[start:start + 733])
    streamed += segmenter.flush()
    assert [(u.start_s, u.end_s) for u in streamed] == [(u.start_s, u.end_s) for u in whole]


def test_an_utterance_is_handed_on_before_the_stream_ends() -> None:
    # Barge-in depends on this: the segment closes after min_silence_ms, not at end of stream.
    segmenter = UtteranceSegmenter(VadConfig(min_silence_ms=400))
    done = segmenter.push(np.concatenate([pad(speak("stop"), 0.5, 0.0), silence(0.6)]))
    assert len(done) == 1 and not segmenter.in_speech


def test_long_speech_is_cut_at_max_utterance() -> None:
    speech = np.concatenate([speak("grab the red cup and put it in the blue bowl")] * 3)
    utterances = find_utterances(pad(speech), VadConfig(max_utterance_s=3.0))
    assert len(utterances) >= 2
    assert all(u.duration_s <= 3.0 + 0.05 for u in utterances)


def test_vad_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        VadConfig(threshold=1.5)
    with pytest.raises(ValueError):
        VadConfig(min_silence_ms=-1)
