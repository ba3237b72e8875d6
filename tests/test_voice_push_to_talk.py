"""The talk button's release tail (vlm_ros/voice/push_to_talk.py), on a clock we move by hand."""

import pytest

from vlm_ros.voice.push_to_talk import PushToTalk


def test_audio_counts_only_while_held_and_within_the_tail() -> None:
    talk = PushToTalk(release_tail_s=0.3)
    assert not talk.accepts(0.0)  # not pressed yet
    assert talk.press() is False
    assert talk.accepts(1.0)
    talk.release(2.0)
    assert talk.accepts(2.29)  # recorded before the release, arriving late
    assert not talk.due(2.29)
    assert not talk.accepts(2.3)
    assert talk.due(2.3)
    assert not talk.due(2.4)  # once per release
    assert not talk.accepts(2.4)


def test_a_press_inside_the_tail_ends_the_last_utterance_first() -> None:
    talk = PushToTalk(release_tail_s=0.5)
    talk.press()
    talk.release(1.0)
    assert talk.press() is True  # the caller flushes, then a new utterance starts
    assert not talk.due(10.0)  # that release is settled
    assert talk.accepts(10.0)


def test_a_release_without_a_press_does_nothing() -> None:
    talk = PushToTalk(release_tail_s=0.3)
    talk.release(1.0)
    assert not talk.accepts(1.1) and not talk.due(5.0)


def test_zero_tail_ends_at_the_release_and_negative_is_refused() -> None:
    talk = PushToTalk(release_tail_s=0.0)
    talk.press()
    talk.release(1.0)
    assert not talk.accepts(1.0) and talk.due(1.0)
    with pytest.raises(ValueError, match="release tail"):
        PushToTalk(release_tail_s=-0.1)
    with pytest.raises(ValueError, match="release tail"):
        PushToTalk(release_tail_s=float("nan"))


def test_held_for_good_without_push_to_talk() -> None:
    talk = PushToTalk(talking=True)
    assert talk.accepts(0.0) and talk.accepts(1e9) and not talk.due(1e9)
