"""The send / say-that-again policy, and the confidence formula it reads."""

from __future__ import annotations

import math

import pytest

from vlm_ros.voice.gate import SAY_AGAIN, CommandGate, GateConfig
from vlm_ros.voice.transcriber import SegmentScore, Transcript, confidence_of


def _heard(text: str, confidence: float = 0.7) -> Transcript:
    return Transcript(text=text, language="en", confidence=confidence, duration_s=1.5,
                      latency_ms=300.0)


def test_confident_command_is_sent_as_heard() -> None:
    decision = CommandGate().decide(_heard("Grab the red cup."))
    assert decision.send and decision.status == "sent"
    assert decision.command == "Grab the red cup."
    assert not decision.stop and decision.message == ""


@pytest.mark.parametrize("text", ["", "   ", "...", " ?! "])
def test_no_words_is_rejected_with_say_that_again(text: str) -> None:
    decision = CommandGate().decide(_heard(text, confidence=0.9))
    assert decision.status == "rejected" and not decision.send
    assert decision.message == SAY_AGAIN
    assert "no words" in decision.reason


def test_low_confidence_is_rejected_and_says_why() -> None:
    decision = CommandGate(GateConfig(min_confidence=0.4)).decide(_heard("grab the cup", 0.25))
    assert decision.status == "rejected" and decision.message == SAY_AGAIN
    assert decision.reason == "confidence 0.25 below 0.40"
    assert decision.command == ""


def test_stop_passes_from_its_own_lower_floor() -> None:
    gate = CommandGate(GateConfig(min_confidence=0.4, stop_min_confidence=0.2))
    assert gate.decide(_heard("Stop.", 0.3)).send  # below min_confidence, above the stop floor
    assert gate.decide(_heard("Stop.", 0.3)).stop
    too_unsure = gate.decide(_heard("Stop.", 0.1))
    assert too_unsure.status == "rejected" and too_unsure.stop


def test_wake_word_gates_commands_but_never_stop() -> None:
    gate = CommandGate(GateConfig(wake_word="hey robot"))
    woken = gate.decide(_heard("Hey, Robot! Grab the red cup."))
    assert woken.send and woken.command == "Grab the red cup."
    ignored = gate.decide(_heard("grab the red cup"), now=100.0)
    assert ignored.status == "ignored" and ignored.message == ""  # not a "say that again"
    assert gate.decide(_heard("stop")).send  # stop needs no wake word
    assert gate.decide(_heard("hey robotics grab the cup"), now=100.0).status == "ignored"


def test_wake_word_alone_arms_the_next_utterance() -> None:
    gate = CommandGate(GateConfig(wake_word="robot", wake_window_s=8.0))
    assert gate.decide(_heard("Robot."), now=10.0).status == "listening"
    assert gate.decide(_heard("go to the dog"), now=15.0).send
    assert gate.decide(_heard("go to the dog"), now=16.0).status == "ignored"  # used up
    gate.decide(_heard("Robot"), now=20.0)
    assert gate.decide(_heard("go to the dog"), now=29.0).status == "ignored"  # window over


def test_chinese_wake_word_matches_unsegmented_text() -> None:
    gate = CommandGate(GateConfig(wake_word="机器人"))
    decision = gate.decide(_heard("机器人，抓取红色杯子"))
    assert decision.send and decision.command == "抓取红色杯子"


def test_confidence_formula() -> None:
    one = SegmentScore("grab the red cup", avg_logprob=-0.4, no_speech_prob=0.1, tokens=5)
    assert confidence_of([one]) == pytest.approx(math.exp(-0.4) * 0.9)
    two = SegmentScore("now", avg_logprob=-1.0, no_speech_prob=0.5, tokens=1)
    # Token-weighted (tokens + 1, as faster-whisper averages): 6 and 2.
    expected = math.exp((6 * -0.4 + 2 * -1.0) / 8) * (1 - (6 * 0.1 + 2 * 0.5) / 8)
    assert confidence_of([one, two]) == pytest.approx(expected)
    assert confidence_of([]) == 0.0


def test_gate_config_rejects_out_of_range_thresholds() -> None:
    with pytest.raises(ValueError):
        GateConfig(min_confidence=1.5)
