"""Spoken commands over real DDS: the voice node (its own process) -> the real vlm_ros node.

The vlm_ros node runs as in tests/test_node.py (RosGraph: a subprocess fed a real photo by a
PhotoCamera).  The voice node runs as a user starts it (`vlm-ros voice --ros-args ...`), reading
an espeak-ng WAV file or an audio topic that this test publishes, and everything the test asserts
arrives over DDS: the voice node's ``~/result`` lines and the vlm_ros node's results and goals.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("rclpy")  # skipped, not broken, where rclpy is missing

from photos import load_photo
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from ros_harness import RosGraph
from std_msgs.msg import Bool, Int16MultiArray, String
from voice_speech import add_noise, pad, save, silence, speak

from vlm_ros import scenes
from vlm_ros.tools.rig import NodeProcess
from vlm_ros.voice.audio import SAMPLE_RATE, resample

pytestmark = [pytest.mark.slow, pytest.mark.ros]

CAMERA_POSE = "[0.0, 0.0, 1.0, 0.0, 0.0, 0.0]"


class VoiceMonitor(Node):
    """The test's side of the voice node: its ~/result lines, an audio topic and ~/talk."""

    def __init__(self) -> None:
        super().__init__("vlm_voice_test_monitor")
        latched = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.results: list[dict[str, Any]] = []
        self.create_subscription(String, "/vlm_voice/result",
                                 lambda msg: self.results.append(json.loads(msg.data)), latched)
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        self.audio_pub = self.create_publisher(Int16MultiArray, "/mic/audio", reliable)
        self.talk_pub = self.create_publisher(Bool, "/vlm_voice/talk", 10)

    def wait_for(self, predicate, timeout_s: float = 60.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for result in list(self.results):
                if predicate(result):
                    return result
            time.sleep(0.05)
        return None

    def play(self, audio_16k: np.ndarray, rate: int = 48000, channels: int = 2) -> None:
        """Publish audio as a driver would: PCM16 at ``rate``, interleaved, 20 ms per message,
        at real-time pace."""
        native = resample(audio_16k, SAMPLE_RATE, rate)
        pcm = (np.clip(native, -1, 1) * 32767).astype(np.int16)
        frames = np.repeat(pcm[:, None], channels, axis=1).reshape(-1)
        step = int(rate * 0.02) * channels
        started = time.monotonic()
        for index, offset in enumerate(range(0, frames.size, step)):
            time.sleep(max(0.0, started + index * 0.02 - time.monotonic()))
            self.audio_pub.publish(Int16MultiArray(data=frames[offset:offset + step].tolist()))


def start_voice(*params: str) -> NodeProcess:
    """`vlm-ros voice --ros-args ...` in its own process, its log kept for failure messages."""
    return NodeProcess([a for p in params for a in ("-p", p)], subcommand="voice",
                       env={"HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def graph():
    graph = RosGraph(["-p", f"camera_pose_in_base:={CAMERA_POSE}", "-p", "follow_rate_hz:=5.0",
                      "-p", "image_reliability:=reliable"])
    yield graph
    graph.close()


@pytest.fixture()
def monitor(graph: RosGraph):
    node = VoiceMonitor()
    graph.executor.add_node(node)
    yield node
    graph.executor.remove_node(node)
    node.destroy_node()


def _node_result_for(graph: RosGraph, command: str, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for result in list(graph.client.results):
            if (result.get("instruction") or {}).get("text") == command:
                return result
        time.sleep(0.05)
    raise AssertionError(f"the vlm_ros node never answered {command!r}; node log:\n"
                         + graph.node.tail(20))


def test_spoken_grab_the_red_cup_becomes_a_pick_of_the_red_cup(
        graph: RosGraph, monitor: VoiceMonitor, tmp_path: Path) -> None:
    graph.show(*scenes.coffee())
    grasps = graph.listener.count("grasp_pose")
    audio = add_noise(pad(speak("grab the red cup"), 1.0, 1.0), 15.0, seed=5)
    voice = start_voice(f"wav_path:={save(tmp_path / 'grab.wav', audio)}", "input:=wav",
                         "wav_realtime:=false")
    try:
        heard = monitor.wait_for(lambda r: r.get("status") == "sent")
        assert heard is not None, voice.tail()
        assert heard["text"].lower().strip(" .") == "grab the red cup"
        assert heard["command"] == heard["text"] and heard["message"] == ""
        assert 0.4 <= heard["confidence"] <= 1.0 and heard["language"] == "en"
        result = _node_result_for(graph, heard["command"])
        assert result["status"] == "ok", result["message"]
        assert result["instruction"]["action"] == "pick"
        assert result["targets"][0]["label"] == "cup"
        assert graph.wait_for("grasp_pose", grasps + 1)
        end = monitor.wait_for(lambda r: r.get("status") == "end_of_input")
        assert end is not None and end["utterances"] == 1 and end["sent"] == 1
    finally:
        voice.stop()


def test_silence_only_wav_sends_no_command(graph: RosGraph, monitor: VoiceMonitor,
                                           tmp_path: Path) -> None:
    results_before = len(graph.client.results)
    voice = start_voice(f"wav_path:={save(tmp_path / 'quiet.wav', silence(3.0))}",
                         "input:=wav", "wav_realtime:=false")
    try:
        end = monitor.wait_for(lambda r: r.get("status") == "end_of_input")
        assert end is not None, voice.tail()
        assert end["utterances"] == 0 and end["sent"] == 0
        assert not [r for r in monitor.results if r.get("status") == "sent"]
        time.sleep(1.0)  # anything sent would have been answered by now
        assert len(graph.client.results) == results_before
    finally:
        voice.stop()


def test_spoken_stop_interrupts_following_over_an_audio_topic(
        graph: RosGraph, monitor: VoiceMonitor) -> None:
    rgb = load_photo("dog")
    h, w = rgb.shape[:2]
    graph.show(rgb, scenes.tabletop_depth(w, h, near_m=2.0, far_m=8.0),
               scenes.intrinsics_for(w, h))
    voice = start_voice("input:=topic", "audio_topic:=/mic/audio", "audio_sample_rate:=48000",
                         "audio_channels:=2", "audio_reliability:=reliable")
    try:
        deadline = time.monotonic() + 60.0
        while monitor.audio_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert monitor.audio_pub.get_subscription_count() > 0, voice.tail()
        # A malformed message (3 samples cannot be stereo) is an error line, not a crash.
        monitor.audio_pub.publish(Int16MultiArray(data=[1, 2, 3]))
        assert monitor.wait_for(lambda r: r.get("status") == "error", 10.0), voice.tail()

        assert graph.say("follow the dog")["status"] == "ok"  # the robot is now busy
        goals = graph.listener.count("goal_pose")
        assert graph.wait_for("goal_pose", goals + 2, timeout_s=4.0)
        stops = graph.listener.count("stop")
        monitor.play(add_noise(np.concatenate([silence(0.5), speak("stop"), silence(1.0)]),
                               20.0, seed=6))
        heard = monitor.wait_for(lambda r: r.get("stop") and r.get("status") == "sent")
        assert heard is not None, voice.tail()
        assert graph.wait_for("stop", stops + 1, timeout_s=10.0)
        assert _node_result_for(graph, heard["command"])["instruction"]["action"] == "stop"
        time.sleep(0.5)  # a follow grounding in flight when the stop arrived is suppressed
        after_stop = graph.listener.count("goal_pose")
        time.sleep(1.5)
        assert graph.listener.count("goal_pose") == after_stop
        assert voice.process.poll() is None
    finally:
        voice.stop()


def test_push_to_talk_release_ends_the_utterance(graph: RosGraph,
                                                 monitor: VoiceMonitor) -> None:
    graph.show(*scenes.coffee())
    # A long release tail: on a loaded CI machine the node can take the release a second
    # before the last chunks of audio (separate topics, no ordering between them).
    voice = start_voice("input:=topic", "audio_topic:=/mic/audio", "push_to_talk:=true",
                         "talk_release_tail_s:=1.5", "audio_sample_rate:=48000",
                         "audio_channels:=2", "audio_reliability:=reliable")
    try:
        deadline = time.monotonic() + 60.0
        while monitor.talk_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert monitor.talk_pub.get_subscription_count() > 0, voice.tail()
        monitor.play(pad(speak("go to the table"), 0.3, 0.3))  # not talking: ignored
        monitor.talk_pub.publish(Bool(data=True))
        time.sleep(0.2)
        # No trailing silence: only releasing the talk button can end this utterance.  A second
        # of silence first: the press travels on its own topic too, and under load it can be
        # taken after the first audio chunks (the speech must not start before it counts).
        monitor.play(np.concatenate([silence(1.0), speak("grab the red cup")]))
        monitor.talk_pub.publish(Bool(data=False))
        heard = monitor.wait_for(lambda r: r.get("status") == "sent")
        assert heard is not None, (monitor.results, voice.tail())
        assert heard["text"].lower().strip(" .") == "grab the red cup"
        assert _node_result_for(graph, heard["command"])["instruction"]["action"] == "pick"
        assert all("table" not in r.get("text", "").lower() for r in monitor.results)
    finally:
        voice.stop()


@pytest.mark.parametrize("parameter, words", [
    ("input:=telepathy", "input must be one of microphone, wav, topic"),
    ("talk_release_tail_s:=-0.5", "talk_release_tail_s: release tail must be >= 0 s"),
])
def test_bad_parameters_stop_the_voice_node_with_a_clear_message(parameter: str,
                                                                 words: str) -> None:
    voice = start_voice(parameter)
    try:
        assert voice.process.wait(timeout=60) == 2
        time.sleep(0.2)
        assert any(words in line for line in voice.log), voice.tail()
        assert not any("Traceback" in line for line in voice.log)
    finally:
        voice.stop()


def test_readme_documents_every_voice_parameter_with_its_default() -> None:
    from vlm_ros.ros.voice_node import VOICE_PARAMETERS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Voice", 1)[1].split("\n## ", 1)[0]
    for name, (default, _description) in VOICE_PARAMETERS.items():
        row = re.search(rf"^\| `{re.escape(name)}` \| `([^`]*)` \|", section, re.MULTILINE)
        assert row, f"voice parameter {name} missing from the README's Voice section"
        assert json.loads(row.group(1)) == default, name
